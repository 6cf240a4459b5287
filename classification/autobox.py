"""``facewear data autobox``: :mod:`facewear.data.realbox` with its class proposals made by the crop classifier.

The data package sits below the classifiers, so it cannot load one; this module loads ``--classifier`` (default:
the released ``weights/facewear-cls.onnx``) and hands it to :func:`facewear.data.realbox.run`. Without the file,
the classes come from the source folders only (as before, with a warning).
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from facewear.constants import WEIGHTS_DIR
from facewear.data import realbox

from .runtime import load_classifier

LOG = logging.getLogger("facewear.autobox")
DEFAULT_CLASSIFIER = WEIGHTS_DIR / "facewear-cls.onnx"


def add_args(p: argparse.ArgumentParser) -> None:
    realbox.add_args(p)


def run(classifier: str | None = None, decisions: str | None = None, **kwargs: Any) -> dict:
    """:func:`facewear.data.realbox.run` with the classifier ``classifier`` (a ``.onnx`` / ``.pt`` path; None: the
    released one) loaded on one thread. Applying ``decisions`` needs no classifier, so none is loaded then.

    Raises what :func:`facewear.data.realbox.run` and :func:`classification.runtime.load_classifier` raise."""
    clf = None
    if not decisions:
        path = Path(classifier) if classifier else DEFAULT_CLASSIFIER
        if path.is_file():
            clf = load_classifier(path, threads=1)
        else:
            LOG.warning("%s: classifier not found; classes come from the folder only", path)
    return realbox.run(classifier=clf, decisions=decisions, **kwargs)


__all__ = ["DEFAULT_CLASSIFIER", "add_args", "run"]
