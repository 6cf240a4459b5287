#!/usr/bin/env python3
"""Write weights/coco-start-ab.md from the first epoch of two runs' ultralytics results.csv.

    python tools/ab_report.py runs/ab/coco/results.csv runs/ab/none/results.csv
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from facewear.constants import WEIGHTS_DIR
from facewear.io import write_text

TEMPLATE = """# Does the COCO start help? (YOLOv5n, four classes)

Two runs that differ only in `--init`, both stopped after their first epoch
(the commands ask for 2 epochs so both share one learning-rate schedule):

    facewear train yolo --init coco --epochs 2 --imgsz 320 --batch 16 --workers 1 --fraction 0.1 --project runs/ab --name coco
    facewear train yolo --init none --epochs 2 --imgsz 320 --batch 16 --workers 1 --fraction 0.1 --project runs/ab --name none

10 % of the `facewear4` train split (1,030 images), metrics from ultralytics'
own validation on the full synthetic+real val split (1,860 images) after epoch 1.
Machine: the 2-core AMD EPYC development VM, CPU only (the two runs overlapped
with the main training run, so their times are not comparable).
Written by `python tools/ab_report.py <coco results.csv> <scratch results.csv>`.

| init | mAP50 | mAP50-95 | precision | recall |
|---|---:|---:|---:|---:|
{rows}
The COCO start is far ahead after one short epoch. This says nothing yet about
the end of a long schedule, where scratch training often catches up; a full
A/B (same epochs as the released model) was not run for lack of CPU time.
"""  # noqa: E501 - the commands are copied as they were run


def first_epoch(path: str) -> dict[str, float]:
    with open(path, newline="") as f:
        row = next(csv.DictReader(f))
    return {k.strip(): float(v) for k, v in row.items()}


def main(coco: str, scratch: str) -> None:
    rows = ""
    for label, p in (("COCO backbone+neck (`--init coco`)", coco), ("from scratch (`--init none`)", scratch)):
        r = first_epoch(p)
        rows += (f"| {label} | {r['metrics/mAP50(B)']:.4f} | {r['metrics/mAP50-95(B)']:.4f} | "
                 f"{r['metrics/precision(B)']:.3f} | {r['metrics/recall(B)']:.3f} |\n")
    write_text(WEIGHTS_DIR / "coco-start-ab.md", TEMPLATE.format(rows=rows))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
