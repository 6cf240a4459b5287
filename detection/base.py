"""Former home of the detector contract and the loader, kept as re-exports for callers not yet moved.

The ``Detector`` contract and NMS live in :mod:`detection.detector`; ``load_detector`` and the model-string
helpers in :mod:`detection.registry`. New code imports from those; this module imports both and is imported by
neither, so it closes no cycle. (``predict`` and ``val`` still import from here; delete this file once they don't.)
"""
from __future__ import annotations

from .detector import EMPTY, AgnosticNMS, Detector, nms
from .registry import load_detector, model_bytes, model_files, model_name

__all__ = ["AgnosticNMS", "Detector", "EMPTY", "load_detector", "model_bytes", "model_files", "model_name", "nms"]
