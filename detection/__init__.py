"""Detectors: the one Detector interface, the model registry, the four-class YOLOv5 and Faster R-CNN models, the
cascades (face finder + crop classifier), and the verbs and reports that run them.

Shared constants, formats and IO come from :mod:`facewear`; nothing here redefines them.
"""
# Importing facewear here (its __init__ runs first) sets the offline environment before any module of this
# package imports ultralytics, torchvision or FiftyOne, so the modules need no `import facewear` of their own.
from facewear.constants import CLASS_NAMES

__all__ = ["CLASS_NAMES"]
