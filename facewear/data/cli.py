"""``facewear data ACTION``: each action (convert, build, ..., pack, unpack) is a module with add_args and run."""
from __future__ import annotations

import argparse

from ..cli import add_subcommands, dispatch

ACTIONS = {
    "convert": ("facewear.data.convert", "convert annotations between Pascal VOC, YOLO txt and COCO JSON"),
    "build": ("facewear.data.build", "build the four-class dataset and the held-out spec from the raw public data"),
    "stats": ("facewear.data.stats", "count boxes per class, split, source and real/synthetic into datasets/README.md"),
    "review": ("facewear.data.corrections", "flag sunglasses candidates among real faces and write contact sheets"),
    "autobox": ("classification.autobox", "box real photos that have no boxes (CenterFace) and write review sheets, "
                "or apply review decisions"),
    "crops": ("classification.crops", "cut the crop-classifier dataset (train/val/held-out real and synthetic)"),
    "inspect": ("facewear.data.fiftyone_split", "load a built dataset into FiftyOne and launch the App"),
    "pack": ("facewear.data.pack", "write a built dataset into tar shards of a chosen size with a checksum list "
             "(optionally shrunk to the training size), to move it to another machine"),
    "unpack": ("facewear.data.unpack", "verify the shards of facewear data pack and restore the dataset and its spec"),
}


def add_args(p: argparse.ArgumentParser) -> None:
    add_subcommands(p, ACTIONS, "action", "ACTION")


def run(action: str, **kwargs):
    """Dispatch to ``facewear.data.<action>.run(**kwargs)``."""
    return dispatch(ACTIONS, action, **kwargs)
