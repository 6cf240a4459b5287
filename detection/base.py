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


def letterbox(img: np.ndarray, size: int, color: int = 114) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Resize keeping the aspect ratio and pad to ``size x size`` (ultralytics' letterbox, centred)."""
    import cv2  # noqa: PLC0415

    h, w = img.shape[:2]
    r = min(size / h, size / w)
    nh, nw = round(h * r), round(w * r)
    out = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nh, nw) != (h, w) else img
    top, left = (size - nh) / 2, (size - nw) / 2
    t, l_ = round(top - 0.1), round(left - 0.1)
    out = cv2.copyMakeBorder(out, t, size - nh - t, l_, size - nw - l_, cv2.BORDER_CONSTANT,
                             value=(color, color, color))
    return out, r, (float(l_), float(t))


def nms(dets: np.ndarray, iou: float, max_det: int = 300) -> np.ndarray:
    """Class-wise NMS on ``(N, 6)`` detections (torchvision's batched_nms)."""
    import torch  # noqa: PLC0415
    from torchvision.ops import batched_nms  # noqa: PLC0415

    if len(dets) == 0:
        return EMPTY
    t = torch.from_numpy(np.ascontiguousarray(dets))
    keep = batched_nms(t[:, :4], t[:, 4], t[:, 5].long(), iou)[:max_det]
    return dets[keep.numpy()]


def load_detector(model: str | Path, imgsz: int | None = None, conf: float = 0.25, iou: float = 0.45,
                  threads: int | None = None) -> Detector:
    """Pick the right detector from a file path or a cascade spec ``FINDER+CLASSIFIER`` (see
    :mod:`classification.cascade`). A ``.pt`` holding a facewear Faster R-CNN checkpoint dict, or an ``.onnx``
    whose metadata ``arch`` starts with ``frcnn``, goes to :mod:`detection.frcnn_detector` (``imgsz`` None: the
    model's own size); any other ``.pt`` / ``.onnx`` to the ultralytics YOLO detectors."""
    from classification.cascade import is_cascade_spec  # noqa: PLC0415

    if is_cascade_spec(model):
        from classification.cascade import load_cascade  # noqa: PLC0415

        return load_cascade(model, imgsz=imgsz, conf=conf, iou=iou, threads=threads)
    p = Path(model)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: model file not found")
    if p.suffix == ".onnx":
        from .frcnn_detector import is_frcnn_onnx  # noqa: PLC0415

        if is_frcnn_onnx(p):  # metadata 'arch' frcnn*
            from .frcnn_detector import OnnxFasterRCNNDetector  # noqa: PLC0415

            return OnnxFasterRCNNDetector(p, imgsz=imgsz, conf=conf, iou=iou, threads=threads)
        from .yolo_detector import OnnxYoloDetector  # noqa: PLC0415

        return OnnxYoloDetector(p, imgsz=imgsz, conf=conf, iou=iou, threads=threads)
    if p.suffix == ".pt":
        from .frcnn import is_frcnn_checkpoint  # noqa: PLC0415

        if is_frcnn_checkpoint(p):  # a facewear checkpoint dict with 'arch' frcnn*
            from .frcnn_detector import FasterRCNNDetector  # noqa: PLC0415

            return FasterRCNNDetector(p, imgsz=imgsz, conf=conf, iou=iou, threads=threads)
        from .yolo_detector import TorchYoloDetector  # noqa: PLC0415

        return TorchYoloDetector(p, imgsz=imgsz or 320, conf=conf, iou=iou, threads=threads)
    raise ValueError(f"{p}: unknown model type {p.suffix!r} (expected .pt or .onnx)")


def model_name(model: str | Path) -> str:
    """A short name for reports: the file name, or ``finder+classifier`` stems for a cascade spec."""
    from classification.cascade import is_cascade_spec, spec_name  # noqa: PLC0415

    if is_cascade_spec(model):
        try:
            return spec_name(model)
        except ValueError:  # a description that merely holds '+'
            pass
    return Path(model).name


def model_bytes(model: str | Path) -> int:
    """Size on disk of a model file, or the sum of a cascade's weight files."""
    from classification.cascade import is_cascade_spec, spec_files  # noqa: PLC0415

    files = spec_files(model) if is_cascade_spec(model) else [Path(model)]
    return sum(f.stat().st_size for f in files)


__all__ = ["Detector", "EMPTY", "letterbox", "nms", "load_detector", "model_bytes", "model_name", "CLASS_NAMES"]
