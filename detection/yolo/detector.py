"""YOLO detectors behind the one interface: ``.pt`` through torch (ultralytics), ``.onnx`` through onnxruntime."""
from __future__ import annotations

import ast
import logging
from pathlib import Path
from typing import Any

import numpy as np

from facewear.boxes import letterbox
from facewear.constants import CLASS_NAMES

from ..detector import EMPTY, nms

LOG = logging.getLogger("facewear.detect")


def _train_size(yolo: Any) -> int | None:
    """The input size a loaded ultralytics ``YOLO`` was trained at (its checkpoint's ``train_args["imgsz"]``)."""
    size = yolo.overrides.get("imgsz")
    size = size[0] if isinstance(size, (list, tuple)) else size
    return int(size) if size else None


def trained_imgsz(path: str | Path) -> int | None:
    """The input size an ultralytics checkpoint was trained at (its ``train_args["imgsz"]``), or None."""
    from ultralytics import YOLO

    return _train_size(YOLO(str(path), task="detect"))


class TorchYoloDetector:
    """An ultralytics checkpoint run through torch on CPU."""

    def __init__(self, path: str | Path, imgsz: int | None = None, conf: float = 0.25, iou: float = 0.45,
                 threads: int | None = None, agnostic: bool = False) -> None:
        """``imgsz`` None: the size the checkpoint was trained at (its ``train_args``), else 320."""
        import torch
        from ultralytics import YOLO

        if threads:
            torch.set_num_threads(threads)
        self.source = str(path)
        self.model = YOLO(str(path), task="detect")
        self.names = tuple(self.model.names[i] for i in range(len(self.model.names)))
        self.imgsz = int(imgsz or _train_size(self.model) or 320)
        self.conf, self.iou, self.agnostic = conf, iou, agnostic

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        r = self.model.predict(frame, imgsz=self.imgsz, conf=self.conf, iou=self.iou, device="cpu", verbose=False,
                               agnostic_nms=self.agnostic)[0]
        return r.boxes.data.cpu().numpy().astype(np.float32) if len(r.boxes) else EMPTY


class OnnxYoloDetector:
    """An ultralytics ONNX export (output ``(1, 4 + nc, N)``: cx, cy, w, h, class scores) in onnxruntime.

    Pre-processing: BGR -> RGB, letterbox to the fixed square input (pad 114),
    scale to [0, 1], NCHW float32 (float16 for fp16 exports).
    """

    def __init__(self, path: str | Path, imgsz: int | None = None, conf: float = 0.25, iou: float = 0.45,
                 threads: int | None = None, agnostic: bool = False) -> None:
        from facewear.ort import ort_session

        self.sess = ort_session(path, threads)
        inp = self.sess.get_inputs()[0]
        self.input_name = inp.name
        self.dtype = np.float16 if "float16" in inp.type else np.float32
        shape = inp.shape
        self.imgsz = int(shape[2]) if isinstance(shape[2], int) else (imgsz or 320)
        if imgsz and imgsz != self.imgsz:
            LOG.warning("%s: exported with a fixed %d px input; --imgsz %d is ignored (export again with "
                        "--imgsz %d, or use the .pt)", Path(path).name, self.imgsz, imgsz, imgsz)
        meta = self.sess.get_modelmeta().custom_metadata_map
        names = meta.get("names")
        if names:
            try:
                d = ast.literal_eval(names)  # ultralytics writes a Python dict repr
                self.names = tuple(d[i] for i in range(len(d)))
            except (ValueError, KeyError, SyntaxError):
                self.names = CLASS_NAMES
        else:
            self.names = CLASS_NAMES
        self.source = str(path)
        self.conf, self.iou, self.agnostic = conf, iou, agnostic

    def preprocess(self, frame: np.ndarray) -> tuple[np.ndarray, float, tuple[float, float]]:
        img, r, pad = letterbox(frame, self.imgsz)
        x = img[..., ::-1].transpose(2, 0, 1)[None].astype(self.dtype) / self.dtype(255)
        return np.ascontiguousarray(x), r, pad

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        x, r, (px, py) = self.preprocess(frame)
        out = self.sess.run(None, {self.input_name: x})[0][0].astype(np.float32)  # (4 + nc, N)
        scores = out[4:]
        cls = scores.argmax(0)
        conf = scores[cls, np.arange(scores.shape[1])]
        m = conf >= self.conf
        if not m.any():
            return EMPTY
        cx, cy, w, h = out[:4, m]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
        boxes[:, [0, 2]] = (boxes[:, [0, 2]] - px) / r
        boxes[:, [1, 3]] = (boxes[:, [1, 3]] - py) / r
        H, W = frame.shape[:2]
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, W)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, H)
        dets = np.concatenate([boxes, conf[m, None], cls[m, None].astype(np.float32)], 1).astype(np.float32)
        return nms(dets, self.iou, agnostic=self.agnostic)
