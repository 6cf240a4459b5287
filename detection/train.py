"""``facewear train {yolo}``: one verb, one sub-command per model family (frcnn and cls come with their issues)."""
from __future__ import annotations

import argparse
import importlib

FAMILIES = {
    "yolo": ("detection.yolo", "train the four-class YOLOv5 detector (ultralytics)"),
}


def add_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="family", required=True, metavar="MODEL")
    for name, (mod, help_) in FAMILIES.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        importlib.import_module(mod).add_args(sp)


def run(family: str, **kwargs):
    """Dispatch to ``<module>.run(**kwargs)``."""
    return importlib.import_module(FAMILIES[family][0]).run(**kwargs)
