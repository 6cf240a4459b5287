"""Offline 68-point face landmarks (iBUG-68 order) inside a known face box.

dlib's shape predictor ships in the ``face-recognition-models`` package and
runs on a given rectangle, so the ground-truth box is enough: no face
detector is needed. Small faces are upscaled before prediction.
"""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

LEFT_EYE = slice(36, 42)  # on the image's left
RIGHT_EYE = slice(42, 48)


@functools.lru_cache(maxsize=1)
def _predictor():
    import dlib

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("face-recognition-models is not installed (pip install face-recognition-models)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: dlib 68-point model missing from face-recognition-models")
    return dlib.shape_predictor(str(path))


def landmarks68(gray: np.ndarray, box: tuple[float, float, float, float], min_side: int = 128) -> np.ndarray:
    """68x2 float landmarks for the face in ``box`` (x1, y1, x2, y2) of a grayscale uint8 image.

    The box is first squared and shrunk toward dlib's detector framing
    (brows to chin), and faces smaller than ``min_side`` are upscaled.
    """
    import cv2
    import dlib

    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    # annotated boxes include forehead/hair; dlib's framing starts near the brows
    cx, cy = (x1 + x2) / 2, y1 + 0.55 * h
    side = 0.92 * max(w, h * 0.85)
    m = 0.6 * side  # context margin around the box
    rx1, ry1 = int(max(cx - side / 2 - m, 0)), int(max(cy - side / 2 - m, 0))
    rx2, ry2 = int(min(cx + side / 2 + m, gray.shape[1])), int(min(cy + side / 2 + m, gray.shape[0]))
    crop = gray[ry1:ry2, rx1:rx2]
    if crop.size == 0:
        raise ValueError(f"box {box} lies outside the image")
    s = max(1.0, min_side / max(side, 1.0))
    if s > 1.0:
        crop = cv2.resize(crop, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC)
    crop = np.ascontiguousarray(crop)
    bx1, by1 = (cx - side / 2 - rx1) * s, (cy - side / 2 - ry1) * s
    rect = dlib.rectangle(int(bx1), int(by1), int(bx1 + side * s), int(by1 + side * s))
    shape = _predictor()(crop, rect)
    pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
    return pts / s + np.array([rx1, ry1], dtype=np.float32)


def eye_centres(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return lm[LEFT_EYE].mean(0), lm[RIGHT_EYE].mean(0)


def plausible(lm: np.ndarray, box: tuple[float, float, float, float]) -> bool:
    """Sanity check before an overlay: eyes in the upper box, sensible eye distance and tilt, chin below.

    dlib is least reliable on masked, small and profile faces; a composite
    placed on wrong landmarks looks fake, so such faces are left alone.
    """
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    le, re_ = eye_centres(lm)
    d = re_ - le
    iod = float(np.linalg.norm(d))
    if not (0.25 * w <= iod <= 0.65 * w) or le[0] >= re_[0]:
        return False
    if abs(np.degrees(np.arctan2(d[1], d[0]))) > 30:
        return False
    for e in (le, re_):
        if not (x1 <= e[0] <= x2 and y1 + 0.12 * h <= e[1] <= y1 + 0.6 * h):
            return False
    return bool(lm[8, 1] > max(le[1], re_[1]) + 0.3 * h)


def box_from_landmarks(lm: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
    """A face box (forehead to chin, ear to ear) from 68 points, as the public sets annotate faces."""
    x1, x2 = float(lm[:, 0].min()), float(lm[:, 0].max())
    brow = float(lm[17:27, 1].min())
    chin = float(lm[:, 1].max())
    y1 = brow - 0.22 * (chin - brow)  # forehead above the brows
    return (max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(chin, float(height)))


#: Median 68-point shape in a unit face box (x: ear to ear, y: forehead to chin),
#: as :func:`box_from_landmarks` frames it. Computed once from the YouTube Faces
#: landmarks; used for drawn/generated faces in tests and the demo.
MEAN_FACE_68 = np.array([
    0.0, 0.354, 0.0, 0.465, 0.036, 0.567, 0.068, 0.663, 0.116, 0.77, 0.19, 0.86, 0.268, 0.918, 0.371, 0.97, 0.529, 1.0,
    0.683, 0.96, 0.779, 0.906, 0.853, 0.846, 0.923, 0.757, 0.963, 0.649, 0.971, 0.552, 1.0, 0.453, 1.0, 0.34, 0.116,
    0.242, 0.179, 0.207, 0.255, 0.196, 0.323, 0.207, 0.384, 0.225, 0.634, 0.216, 0.692, 0.205, 0.76, 0.186, 0.836,
    0.204, 0.894, 0.235, 0.512, 0.344, 0.515, 0.419, 0.521, 0.489, 0.525, 0.549, 0.436, 0.59, 0.471, 0.602, 0.521,
    0.61, 0.565, 0.6, 0.6, 0.59, 0.217, 0.333, 0.263, 0.319, 0.325, 0.32, 0.38, 0.343, 0.328, 0.355, 0.262, 0.354,
    0.64, 0.337, 0.697, 0.317, 0.757, 0.312, 0.805, 0.326, 0.757, 0.348, 0.695, 0.351, 0.342, 0.731, 0.403, 0.699,
    0.482, 0.68, 0.523, 0.687, 0.561, 0.679, 0.635, 0.697, 0.69, 0.727, 0.634, 0.769, 0.579, 0.795, 0.523, 0.801,
    0.466, 0.798, 0.405, 0.772, 0.351, 0.727, 0.468, 0.717, 0.52, 0.716, 0.571, 0.718, 0.675, 0.724, 0.571, 0.745,
    0.52, 0.75, 0.468, 0.747], dtype=np.float32).reshape(68, 2)


def mean_landmarks(box: tuple[float, float, float, float]) -> np.ndarray:
    """The mean face shape placed in ``box`` (for generated faces)."""
    x1, y1, x2, y2 = box
    return MEAN_FACE_68 * np.float32([x2 - x1, y2 - y1]) + np.float32([x1, y1])
