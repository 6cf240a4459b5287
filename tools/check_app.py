#!/usr/bin/env python3
"""Thin entry script: check the FiftyOne App of `facewear inspect preds` in headless Chromium.

    python tools/check_app.py                 # tiny generated dataset + predictions; screenshot in build/app_check/
    python tools/check_app.py --name DATASET  # an existing FiftyOne dataset

Exit 0 when the page shows the dataset name and every prediction field, 1 when not, 2 on errors.
Logic: detection.app_check.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detection.app_check import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
