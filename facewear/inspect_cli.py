"""``facewear inspect {preds,data}``: look at a dataset split, and models' predictions on it, in FiftyOne."""
from __future__ import annotations

import argparse

from .cli import add_subcommands, dispatch

ACTIONS = {
    "preds": ("detection.fiftyone_preds",
              "ground truth plus every model's predictions and COCO evaluation in FiftyOne, worst images first; "
              "launches the App"),
    "data": ("facewear.data.fiftyone_split",
             "load a built dataset into FiftyOne and launch the App (= facewear data inspect)"),
}


def add_args(p: argparse.ArgumentParser) -> None:
    add_subcommands(p, ACTIONS, "action", "ACTION")


def run(action: str, **kwargs):
    """Dispatch to ``<module of action>.run(**kwargs)``."""
    return dispatch(ACTIONS, action, **kwargs)
