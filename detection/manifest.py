"""``weights/manifest.json``: one entry per committed model file.

Each entry holds what a user needs to trust and run the file: name, file,
sha256, size, task, architecture, input size, precision, class names, the
training command and data spec, held-out metrics, and for ONNX files the
pre-processing and output layout for plain onnxruntime.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from facewear.constants import CLASS_NAMES, DEFAULT_DETECTOR, FRCNN_MAX_DET, FRCNN_NMS_IOU, FRCNN_SCORE_THRESH, WEIGHTS_DIR
from facewear.io import write_json

MANIFEST = WEIGHTS_DIR / "manifest.json"

YOLO_ONNX_IO = {
    "input": {"name": "images", "shape": [1, 3, "S", "S"], "dtype": "float32",
              "preprocess": "BGR->RGB; letterbox (keep aspect, centre pad value 114) to SxS; /255; NCHW"},
    "output": {"name": "output0", "shape": [1, "4+nc", "N"],
               "layout": "rows 0-3: box cx, cy, w, h in letterboxed pixels; rows 4..: per-class scores (sigmoid); "
                         "no NMS inside: threshold, then class-wise NMS (IoU 0.45), then undo the letterbox"},
}

FRCNN_ONNX_IO = {
    "input": {"name": "images", "shape": [1, 3, "H", "W"], "dtype": "float32",
              "preprocess": "BGR->RGB; resize so the long side is input_size (aspect kept, no padding); /255; NCHW"},
    "output": {"names": ["boxes", "scores", "labels"], "shape": [["N", 4], ["N"], ["N"]],
               "layout": f"boxes x1y1x2y2 in the resized frame's pixels; scores; labels int64 class ids 0-based; "
                         f"score threshold {FRCNN_SCORE_THRESH:g}, class-wise NMS (IoU {FRCNN_NMS_IOU:g}) and the "
                         f"{FRCNN_MAX_DET}-detection cap are in the graph"},
}


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def load() -> dict[str, Any]:
    return json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {"models": []}


def add_entry(file: str | Path, *, name: str, task: str, architecture: str, imgsz: int, precision: str,
              train_command: str, data: str, metrics: dict[str, Any] | None = None,
              class_names: tuple[str, ...] = CLASS_NAMES, io: dict | None = None, **extra: Any) -> dict[str, Any]:
    """Add or replace (by name) the entry for ``file`` (a path under ``weights/``)."""
    f = Path(file)
    if not f.is_file():
        raise FileNotFoundError(f"{f}: weights file not found")
    entry = {"name": name, "file": f.name, "sha256": sha256(f), "bytes": f.stat().st_size, "task": task,
             "architecture": architecture, "input_size": imgsz, "precision": precision,
             "class_names": list(class_names), "train_command": train_command, "data": data,
             "metrics": metrics or {}, **({"io": io} if io else {}), **extra}
    man = load()
    man["models"] = [m for m in man["models"] if m["name"] != name] + [entry]
    write_json(MANIFEST, man)
    return entry


def default_model(name: str = DEFAULT_DETECTOR) -> Path:
    """The file of the released model ``name`` in ``weights/manifest.json`` (default: the released detector).

    Resolved from the package's own ``weights/`` folder, so it works from any current directory. Raises
    :class:`FileNotFoundError` naming the manifest or the file when either is missing."""
    if not MANIFEST.is_file():
        raise FileNotFoundError(f"{MANIFEST}: model manifest not found; pass --model")
    entry = next((m for m in load()["models"] if m["name"] == name), None)
    if entry is None:
        raise FileNotFoundError(f"{MANIFEST}: no model named {name!r}; pass --model")
    f = WEIGHTS_DIR / entry["file"]
    if not f.is_file():
        raise FileNotFoundError(f"{f}: released model {name!r} listed in {MANIFEST.name} is missing; pass --model")
    return f


def verify() -> list[str]:
    """Names of entries whose file is missing or whose checksum differs."""
    bad = []
    for m in load()["models"]:
        f = WEIGHTS_DIR / m["file"]
        if not f.is_file() or sha256(f) != m["sha256"]:
            bad.append(m["name"])
    return bad
