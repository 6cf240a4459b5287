"""The one ``Detector`` interface that every model implements.

Given a BGR frame (``HxWx3 uint8``), a detector returns an ``(N, 6)``
float32 array of ``x1, y1, x2, y2, score, class_id`` in that frame's pixels.
``predict``, ``val``, ``export``, ``bench`` and ``inspect`` only use this.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from facewear.constants import CLASS_NAMES

EMPTY = np.zeros((0, 6), np.float32)


@runtime_checkable
class Detector(Protocol):
    """Anything that turns a BGR frame into ``(N, 6)`` detections."""

    names: tuple[str, ...]
    source: str  # file or description, for reports

    def __call__(self, frame: np.ndarray) -> np.ndarray: ...


def nms(dets: np.ndarray, iou: float, max_det: int = 300, agnostic: bool = False) -> np.ndarray:
    """NMS on ``(N, 6)`` detections: class-wise (torchvision's ``batched_nms``), or class-agnostic with
    ``agnostic`` (ultralytics' ``agnostic_nms``: overlapping boxes of different classes compete too, so one
    object keeps one box, the highest-scoring one)."""
    import torch
    from torchvision.ops import batched_nms
    from torchvision.ops import nms as tv_nms

    if len(dets) == 0:
        return EMPTY
    dets = np.asarray(dets, np.float32)
    t = torch.from_numpy(np.ascontiguousarray(dets))
    if agnostic:
        keep = tv_nms(t[:, :4], t[:, 4], iou)[:max_det]
    else:
        keep = batched_nms(t[:, :4], t[:, 4], t[:, 5].long(), iou)[:max_det]
    return dets[keep.numpy()]


class AgnosticNMS:
    """Wraps any :class:`Detector` and applies class-agnostic NMS at ``iou`` to its output.

    Used for detectors that only run class-wise NMS themselves (Faster R-CNN, any object given to predict);
    on output that is already agnostic it changes nothing."""

    def __init__(self, detector: Detector, iou: float = 0.45) -> None:
        self.detector, self.iou = detector, iou
        self.names = tuple(getattr(detector, "names", ()) or ())
        self.source = getattr(detector, "source", type(detector).__name__)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        dets = np.asarray(self.detector(frame), np.float32).reshape(-1, 6)
        if len(dets) < 2:
            return dets
        import torch
        from torchvision.ops import nms as tv_nms

        t = torch.from_numpy(np.ascontiguousarray(dets))
        keep = np.sort(tv_nms(t[:, :4], t[:, 4], self.iou).numpy())  # only removes boxes: the order stays
        return dets[keep]

    def __getattr__(self, name: str):  # imgsz, conf, meta ... of the wrapped detector
        if name == "detector":
            raise AttributeError(name)
        return getattr(self.detector, name)


def load_detector(model: str | Path, imgsz: int | None = None, conf: float = 0.25, iou: float = 0.45,
                  threads: int | None = None, agnostic: bool = False) -> Detector:
    """Pick the right detector from a file path or a cascade spec ``FINDER+CLASSIFIER`` (see
    :mod:`classification.cascade`). A ``.pt`` holding a facewear Faster R-CNN checkpoint dict, or an ``.onnx``
    whose metadata ``arch`` starts with ``frcnn``, goes to :mod:`detection.frcnn_detector` (``imgsz`` None: the
    model's own size); any other ``.pt`` / ``.onnx`` to the ultralytics YOLO detectors.

    ``agnostic``: class-agnostic NMS (one box per object whatever its class) instead of class-wise NMS; the YOLO
    detectors run it in place of their own NMS, other detectors get an :class:`AgnosticNMS` pass on top."""
    det = _load_detector(model, imgsz, conf, iou, threads, agnostic)
    if agnostic and not getattr(det, "agnostic", False):
        det = AgnosticNMS(det, iou)
    return det


def _load_detector(model: str | Path, imgsz: int | None, conf: float, iou: float, threads: int | None,
                   agnostic: bool) -> Detector:
    from classification.cascade import is_cascade_spec

    if is_cascade_spec(model):
        from classification.cascade import load_cascade

        return load_cascade(model, imgsz=imgsz, conf=conf, iou=iou, threads=threads)
    p = Path(model)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: model file not found")
    if p.suffix == ".onnx":
        from .frcnn_detector import is_frcnn_onnx

        if is_frcnn_onnx(p):  # metadata 'arch' frcnn*
            from .frcnn_detector import OnnxFasterRCNNDetector

            return OnnxFasterRCNNDetector(p, imgsz=imgsz, conf=conf, iou=iou, threads=threads)
        from .yolo_detector import OnnxYoloDetector

        return OnnxYoloDetector(p, imgsz=imgsz, conf=conf, iou=iou, threads=threads, agnostic=agnostic)
    if p.suffix == ".pt":
        from .frcnn import is_frcnn_checkpoint

        if is_frcnn_checkpoint(p):  # a facewear checkpoint dict with 'arch' frcnn*
            from .frcnn_detector import FasterRCNNDetector

            return FasterRCNNDetector(p, imgsz=imgsz, conf=conf, iou=iou, threads=threads)
        from .yolo_detector import TorchYoloDetector

        return TorchYoloDetector(p, imgsz=imgsz or 320, conf=conf, iou=iou, threads=threads, agnostic=agnostic)
    raise ValueError(f"{p}: unknown model type {p.suffix!r} (expected .pt or .onnx)")


def model_name(model: str | Path) -> str:
    """A short name for reports: the file name, or ``finder+classifier`` stems for a cascade spec."""
    from classification.cascade import is_cascade_spec, spec_name

    if is_cascade_spec(model):
        try:
            return spec_name(model)
        except ValueError:  # a description that merely holds '+'
            pass
    return Path(model).name


def model_files(model: str | Path) -> list[Path]:
    """The weight files a model spec reads: the file itself, or a cascade's finder and classifier files."""
    from classification.cascade import is_cascade_spec, spec_files

    if is_cascade_spec(model):
        try:
            return [Path(f) for f in spec_files(model)]
        except (ValueError, FileNotFoundError):
            return []
    return [Path(model)]


def model_bytes(model: str | Path) -> int:
    """Size on disk of a model file, or the sum of a cascade's weight files."""
    from classification.cascade import is_cascade_spec, spec_files

    files = spec_files(model) if is_cascade_spec(model) else [Path(model)]
    return sum(f.stat().st_size for f in files)


__all__ = ["AgnosticNMS", "Detector", "EMPTY", "nms", "load_detector", "model_bytes", "model_files",
           "model_name", "CLASS_NAMES"]
