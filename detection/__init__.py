"""Detectors: the four-class YOLOv5 and Faster R-CNN models and the one Detector interface (issues 3 and 5).

Shared constants, formats and IO come from :mod:`facewear`; nothing here redefines them.
"""
from facewear.constants import CLASS_NAMES

__all__ = ["CLASS_NAMES"]
