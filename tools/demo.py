#!/usr/bin/env python3
"""Thin entry script: same as `facewear demo ...` (logic lives in the facewear package)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from facewear.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
