"""What ``facewear predict`` writes, one helper each: file-safe names for crops of any source (paths in any
script, stream URLs), a name not yet taken, the class colour and name, the drawn boxes and a ``--save-json``
record. The Ray path (:mod:`detection.ray_predict`) writes the same names and records."""
from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np

from facewear.constants import CLASS_COLORS_BGR

CROP_EXT = ".jpg"
MAX_STEM = 100  # characters kept of a stem (file names are limited to 255 bytes; CJK takes 3 bytes a letter)


def _safe_part(text: str) -> str:
    """Letters (any script), digits, ``.``, ``_`` and ``-`` kept; every other run of characters -> ``_``."""
    return re.sub(r"[^\w.-]+", "_", text).strip("._")[:MAX_STEM]


def safe_stem(name: str) -> str:
    """A file-system safe stem for a relative name or a stream URL (``a/b.jpg`` -> ``b``, ``照片.jpg`` -> ``照片``)."""
    if "://" in name:
        stem = name.split("://", 1)[1]
    else:
        stem = Path(name).stem
    return _safe_part(stem) or "frame"


def crop_base(name: str) -> str:
    """The crop name's base for a SOURCE-relative ``name``: its sub-folders kept, each made safe
    (``cam1/img1.jpg`` -> ``cam1/img1``; a stream URL -> one safe stem)."""
    if "://" in name:
        return safe_stem(name)
    parts = [q for q in (_safe_part(p) for p in Path(name).parent.parts) if q]
    return "/".join([*parts, safe_stem(name)])


def unique_path(folder: Path, base: str, ext: str = CROP_EXT) -> Path:
    """``folder/base.ext``, or ``base-1.ext``, ``base-2.ext`` ... : the first name not taken.

    ``base`` may hold ``/`` (sub-folders below ``folder``). The name is reserved with an exclusive create, so two
    writers never pick the same one.
    """
    if "/" in base:
        sub, base = base.rsplit("/", 1)
        folder = folder / sub
    folder.mkdir(parents=True, exist_ok=True)
    k = 0
    while True:
        p = folder / (f"{base}{ext}" if k == 0 else f"{base}-{k}{ext}")
        try:
            fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            k += 1
            continue
        os.close(fd)
        return p


def class_color(cls: int) -> tuple[int, int, int]:
    if cls in CLASS_COLORS_BGR:
        return CLASS_COLORS_BGR[cls]
    rng = np.random.default_rng(cls)
    return tuple(int(v) for v in rng.integers(64, 256, 3))


def class_name(names: tuple[str, ...], cls: int) -> str:
    return names[cls] if 0 <= cls < len(names) else str(cls)


def draw_detections(frame: np.ndarray, dets: np.ndarray, names: tuple[str, ...],
                    track_ids: list[int | None] | None = None) -> np.ndarray:
    """A copy of ``frame`` with a coloured box and a ``name score [#id]`` label per detection."""
    out = frame.copy()
    H, W = out.shape[:2]
    lw = max(1, round((H + W) / 600))
    fs = max(0.35, (H + W) / 2000)
    for i, d in enumerate(dets):
        x1, y1, x2, y2 = (round(float(v)) for v in d[:4])
        cls = int(d[5])
        color = class_color(cls)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, lw, cv2.LINE_AA)
        label = f"{class_name(names, cls)} {float(d[4]):.2f}"
        if track_ids is not None and track_ids[i] is not None:
            label += f" #{track_ids[i]}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, fs, 1)
        ty = y1 - 2 if y1 - th - base - 2 >= 0 else min(y1 + th + 2, H - base)
        cv2.rectangle(out, (x1, ty - th - 2), (x1 + tw + 2, ty + base - 1), color, -1)
        cv2.putText(out, label, (x1 + 1, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, fs, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def json_record(name: str, frame: int, det: np.ndarray, names: tuple[str, ...],
                track_id: int | None = None, tracking: bool = False) -> dict:
    """One ``--save-json`` record: file, frame, ``bbox`` as COCO ``[x, y, w, h]``, class and score."""
    x1, y1, x2, y2 = (float(v) for v in det[:4])
    cls = int(det[5])
    rec = {"file_name": name, "frame": int(frame),
           "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
           "category_id": cls, "category": class_name(names, cls), "score": round(float(det[4]), 5)}
    if tracking:
        rec["track_id"] = track_id
    return rec
