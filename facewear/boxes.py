"""Box geometry shared by every layer: IoU between box sets and the letterbox resize.

Boxes are ``(N, 4)`` arrays of ``x1, y1, x2, y2`` in pixels (any float or int dtype).
"""
from __future__ import annotations

import math

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` IoU of every box of ``a`` with every box of ``b`` (``x1, y1, x2, y2``).

    Either set empty: a ``(len(a), len(b))`` array of zeros. Degenerate boxes give IoU 0 (a 1e-9 guard keeps
    the division finite); nothing is raised."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)

    def area(z: np.ndarray) -> np.ndarray:
        return (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])

    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


def coco_xyxy(rows: list[dict]) -> np.ndarray:
    """``(K, 4)`` float64 ``x1, y1, x2, y2`` of COCO annotations or detections (``bbox`` is ``x, y, w, h``);
    ``(0, 4)`` for none."""
    return np.array([[r["bbox"][0], r["bbox"][1], r["bbox"][0] + r["bbox"][2], r["bbox"][1] + r["bbox"][3]]
                     for r in rows], np.float64).reshape(-1, 4)


def letterbox(img: np.ndarray, size: int, color: int = 114) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Resize ``img`` (``HxWxC`` uint8) keeping the aspect ratio and pad it to ``size x size`` (ultralytics'
    letterbox, centred). Returns ``(padded image, scale r, (pad left, pad top) in pixels)``: a point ``(x, y)``
    of the input lands at ``(x * r + left, y * r + top)``. A very thin input keeps at least 1 px per side."""
    import cv2

    h, w = img.shape[:2]
    r = min(size / h, size / w)
    # a very thin image (4x3000) would round its short side to 0 px, which cv2.resize refuses: keep >= 1 px
    nh, nw = max(1, min(size, round(h * r))), max(1, min(size, round(w * r)))
    out = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nh, nw) != (h, w) else img
    top, left = (size - nh) / 2, (size - nw) / 2
    t, l_ = round(top - 0.1), round(left - 0.1)
    out = cv2.copyMakeBorder(out, t, size - nh - t, l_, size - nw - l_, cv2.BORDER_CONSTANT,
                             value=(color, color, color))
    return out, r, (float(l_), float(t))


def crop_box(frame: np.ndarray, box: np.ndarray, margin: float = 0.1) -> np.ndarray | None:
    """The box ``x1, y1, x2, y2`` (pixels; extra columns ignored) grown by ``margin`` of its width / height on each
    side, clipped to ``frame`` (``HxWxC``): a copy, or None when less than 1 px is left."""
    H, W = frame.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    mw, mh = (x2 - x1) * margin, (y2 - y1) * margin
    a, b = max(int(math.floor(x1 - mw)), 0), max(int(math.floor(y1 - mh)), 0)
    c, d = min(int(math.ceil(x2 + mw)), W), min(int(math.ceil(y2 + mh)), H)
    if c - a < 1 or d - b < 1:
        return None
    return frame[b:d, a:c].copy()


__all__ = ["coco_xyxy", "crop_box", "iou_matrix", "letterbox"]
