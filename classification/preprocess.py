"""The one face-crop and normalisation step shared by the crop dataset, training, the cascade and ONNX users.

A crop is the square of side ``max(w, h) * (1 + margin)`` centred on the box,
padded by edge replication where it leaves the frame, resized to ``size``.
The network input is RGB, ``/255``, ImageNet mean/std, NCHW float32.
"""
from __future__ import annotations

import cv2
import numpy as np

from facewear.constants import (
    CLS_IMGSZ,
    CLS_MARGIN,
    CLS_MEAN_RGB,
    CLS_STD_RGB,
    CLS_STORE_CONTEXT,
    MIN_BOX_SIDE,
)

MEAN = np.asarray(CLS_MEAN_RGB, np.float32) * 255.0
STD = np.asarray(CLS_STD_RGB, np.float32) * 255.0


def square_crop(frame: np.ndarray, box, size: int = CLS_IMGSZ, margin: float = CLS_MARGIN,
                scale: float = 1.0, shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray | None:
    """BGR ``size x size`` crop around ``box`` (x1, y1, x2, y2); None for an empty or zero-size box.

    ``scale`` and ``shift`` (fractions of the box side) let training imitate a detector's box jitter.
    """
    if frame is None or frame.size == 0 or frame.ndim != 3:
        return None
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    w, h = x2 - x1, y2 - y1
    if not np.isfinite([x1, y1, x2, y2]).all() or w < MIN_BOX_SIDE or h < MIN_BOX_SIDE:
        return None
    side = max(w, h) * (1.0 + margin) * scale
    cx, cy = (x1 + x2) / 2 + shift[0] * w, (y1 + y2) / 2 + shift[1] * h
    # affine map from the square in the frame onto the output: one warp, border replicated, no copies
    s = size / side
    m = np.array([[s, 0, size / 2 - s * cx], [0, s, size / 2 - s * cy]], np.float32)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(frame, m, (size, size), flags=interp, borderMode=cv2.BORDER_REPLICATE)


def from_context(img: np.ndarray, size: int = CLS_IMGSZ, margin: float = CLS_MARGIN,
                 context: float = CLS_STORE_CONTEXT, scale: float = 1.0,
                 shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Model crop from a stored context crop (``build/crops``: the face box is the centred square of side
    ``S / context``). ``scale``/``shift`` jitter the box as in ``square_crop``."""
    s = img.shape[0]
    side = s / context
    c = s / 2
    return square_crop(img, (c - side / 2, c - side / 2, c + side / 2, c + side / 2), size, margin, scale, shift)


def to_input(crops: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """BGR uint8 crops (N, S, S, 3) -> normalised RGB NCHW float32."""
    x = np.asarray(crops, np.float32)
    if x.ndim == 3:
        x = x[None]
    x = (x[..., ::-1] - MEAN) / STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


ONNX_IO = {
    "input": {"name": "input", "shape": ["N", 3, "S", "S"], "dtype": "float32",
              "preprocess": f"square crop of side max(w,h)*(1+{CLS_MARGIN}) centred on the face box (edge-replicate "
                            "outside the frame), resize to SxS, BGR->RGB, /255, subtract ImageNet mean "
                            f"{list(CLS_MEAN_RGB)}, divide by std {list(CLS_STD_RGB)}, NCHW"},
    "output": {"name": "logits", "shape": ["N", 4], "layout": "class logits in class_names order; softmax for scores"},
}
