"""``facewear train {yolo,frcnn,cls}``: one verb, one sub-command per model family."""
from __future__ import annotations

import argparse

from facewear.cli import add_subcommands, dispatch

FAMILIES = {
    "yolo": ("detection.yolo.train", "train the four-class YOLOv5 detector (ultralytics)"),
    "frcnn": ("detection.frcnn.train", "train the Faster R-CNN baseline (MobileNetV2 + FPN, torchvision)"),
    "cls": ("classification.train", "train a four-class crop classifier (behind a face detector)"),
}


def add_args(p: argparse.ArgumentParser) -> None:
    add_subcommands(p, FAMILIES, "family", "MODEL")


def run(family: str, **kwargs):
    """Dispatch to ``<module>.run(**kwargs)``."""
    return dispatch(FAMILIES, family, **kwargs)
