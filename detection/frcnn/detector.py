"""Faster R-CNN detectors behind the one interface: a checkpoint ``.pt`` through torch, its ``.onnx`` through
onnxruntime.

Both resize the BGR frame so its long side is ``imgsz`` (default: the size the checkpoint was trained at, or the
ONNX file's ``imgsz`` metadata), feed ``(1, 3, H, W)`` float32 RGB in [0, 1], keep detections with score >=
``conf`` and run class-wise NMS at ``iou`` on top of the network's own (``FRCNN_NMS_IOU``).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from facewear.constants import CLASS_NAMES, FRCNN_IMGSZ
from facewear.modelfile import onnx_metadata

from .model import ExportWrapper, load_checkpoint, resize_long, to_detections, to_input

LOG = logging.getLogger("facewear.frcnn")


class _FasterRCNNBase:
    names: tuple[str, ...]
    source: str
    imgsz: int
    conf: float
    iou: float

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(1, 3, H, W)`` input -> boxes, scores, labels (0-based) in input pixels."""
        raise NotImplementedError

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        img, scale = resize_long(frame, self.imgsz)
        boxes, scores, labels = self.forward(to_input(img))
        return to_detections(boxes, scores, labels, scale, frame.shape, self.conf, self.iou)


class FasterRCNNDetector(_FasterRCNNBase):
    """A facewear Faster R-CNN checkpoint (fp32 or fp16 weights) run in float32 by torch on CPU."""

    def __init__(self, path: str | Path, imgsz: int | None = None, conf: float = 0.25, iou: float = 0.45,
                 threads: int | None = None) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        model, meta = load_checkpoint(path)
        self._setup(model, imgsz or meta["imgsz"], tuple(meta["class_names"]), conf, iou, str(path))
        self.meta = meta

    @classmethod
    def from_model(cls, model: Any, imgsz: int, names: tuple[str, ...] = CLASS_NAMES, conf: float = 0.001,
                   iou: float = 0.6, source: str = "memory") -> FasterRCNNDetector:
        """Wrap an in-memory model (evaluation during training); it is put in eval mode on every call."""
        self = cls.__new__(cls)
        self._setup(model, imgsz, tuple(names), conf, iou, source)
        self.meta = {}
        return self

    def _setup(self, model: Any, imgsz: int, names: tuple[str, ...], conf: float, iou: float, source: str) -> None:
        self.model, self.wrapper = model, ExportWrapper(model)
        self.imgsz, self.names, self.conf, self.iou, self.source = int(imgsz), names, conf, iou, source

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import torch

        self.model.eval()
        with torch.inference_mode():
            b, s, lab = self.wrapper(torch.from_numpy(x))
        return b.numpy(), s.numpy(), lab.numpy()


def is_frcnn_onnx(path: str | Path) -> bool:
    """True when the ONNX file's metadata says it is a facewear Faster R-CNN export."""
    return onnx_metadata(path).get("arch", "").startswith("frcnn")


class OnnxFasterRCNNDetector(_FasterRCNNBase):
    """A Faster R-CNN ONNX export (``detection.frcnn.export``) in onnxruntime: input ``images (1, 3, H, W)``
    (dynamic H, W), outputs ``boxes``, ``scores``, ``labels`` (0-based)."""

    def __init__(self, path: str | Path, imgsz: int | None = None, conf: float = 0.25, iou: float = 0.45,
                 threads: int | None = None) -> None:
        from facewear.ort import ort_session

        self.sess = ort_session(path, threads)
        meta = self.sess.get_modelmeta().custom_metadata_map
        if not meta.get("arch", "").startswith("frcnn"):
            raise ValueError(f"{path}: not a facewear Faster R-CNN export (no 'arch' frcnn* in its metadata)")
        try:
            self.names = tuple(json.loads(meta["class_names"]))
        except (KeyError, ValueError):
            self.names = CLASS_NAMES
        self.input_name = self.sess.get_inputs()[0].name
        self.imgsz = int(imgsz or meta.get("imgsz") or FRCNN_IMGSZ)
        self.conf, self.iou, self.source = conf, iou, str(path)
        self.meta = dict(meta)

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        b, s, lab = self.sess.run(None, {self.input_name: x})
        return b, s, lab
