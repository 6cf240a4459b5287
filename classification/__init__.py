"""Crop classifiers and the cascades behind a face detector (issue 4).

Shared constants, formats and IO come from :mod:`facewear`; nothing here redefines them.
"""
from facewear.constants import CLASS_NAMES

__all__ = ["CLASS_NAMES"]
