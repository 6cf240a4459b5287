"""The one ``Detector`` interface that every model implements, and the NMS every detector shares.

Given a BGR frame (``HxWx3 uint8``), a detector returns an ``(N, 6)``
float32 array of ``x1, y1, x2, y2, score, class_id`` in that frame's pixels.
``predict``, ``val``, ``export``, ``bench`` and ``inspect`` only use this. Which class runs a given model file or
spec is :mod:`detection.registry`'s business; this module names no model.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

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


class DetectorWrapper:
    """Base of the wrappers below: a :class:`Detector` around another one, with its ``names`` and ``source``;
    any other attribute (imgsz, conf, meta ...) is the wrapped detector's."""

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.names = tuple(getattr(detector, "names", ()) or ())
        self.source = getattr(detector, "source", type(detector).__name__)

    def __getattr__(self, name: str):  # only reached for attributes the wrapper does not have itself
        if name == "detector":
            raise AttributeError(name)
        return getattr(self.detector, name)


class AgnosticNMS(DetectorWrapper):
    """Wraps any :class:`Detector` and applies class-agnostic NMS at ``iou`` to its output.

    Used for detectors that only run class-wise NMS themselves (Faster R-CNN, any object given to predict);
    on output that is already agnostic it changes nothing."""

    def __init__(self, detector: Detector, iou: float = 0.45) -> None:
        super().__init__(detector)
        self.iou = iou

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        dets = np.asarray(self.detector(frame), np.float32).reshape(-1, 6)
        if len(dets) < 2:
            return dets
        import torch
        from torchvision.ops import nms as tv_nms

        t = torch.from_numpy(np.ascontiguousarray(dets))
        keep = np.sort(tv_nms(t[:, :4], t[:, 4], self.iou).numpy())  # only removes boxes: the order stays
        return dets[keep]


class PadCanvas(DetectorWrapper):
    """Wraps any :class:`Detector`: each frame is placed in the middle of a ``factor`` times larger canvas of
    the letterbox grey (114, as ultralytics pads) before detection, and the boxes are shifted back into the
    frame's pixels. The objects keep their pixel size while the frame grows, so after the model's resize they
    come out ``factor`` times smaller: a diagnostic for how detection depends on object size (a face filling
    the frame against the same face in a larger scene). Raises ValueError for ``factor`` < 1."""

    FILL = 114

    def __init__(self, detector: Detector, factor: float) -> None:
        if not factor >= 1:
            raise ValueError(f"pad factor {factor!r}: must be at least 1 (1: the frame as it is)")
        super().__init__(detector)
        self.factor = float(factor)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        big_h, big_w = round(h * self.factor), round(w * self.factor)
        if (big_h, big_w) == (h, w):
            return np.asarray(self.detector(frame), np.float32).reshape(-1, 6)
        y0, x0 = (big_h - h) // 2, (big_w - w) // 2
        canvas = np.full((big_h, big_w) + frame.shape[2:], self.FILL, frame.dtype)
        canvas[y0:y0 + h, x0:x0 + w] = frame
        dets = np.asarray(self.detector(canvas), np.float32).reshape(-1, 6).copy()
        dets[:, [0, 2]] -= x0
        dets[:, [1, 3]] -= y0
        dets[:, [0, 2]] = dets[:, [0, 2]].clip(0, w)  # as a detector clips to the frame it was given
        dets[:, [1, 3]] = dets[:, [1, 3]].clip(0, h)
        return dets


__all__ = ["AgnosticNMS", "Detector", "DetectorWrapper", "EMPTY", "PadCanvas", "nms"]
