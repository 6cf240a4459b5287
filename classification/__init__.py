"""Crop classifiers: data, models, training, export and runtime. The cascades that put one behind a face finder
are detectors and live in :mod:`detection.cascade`; nothing here imports :mod:`detection`.

Shared constants, formats and IO come from :mod:`facewear`; nothing here redefines them.
"""
# Importing facewear here (its __init__ runs first) sets the offline environment before any module of this
# package imports ultralytics, torchvision or FiftyOne, so the modules need no `import facewear` of their own.
from facewear.constants import CLASS_NAMES

__all__ = ["CLASS_NAMES"]
