"""Run a trained crop classifier from any of its files: ``.pt`` checkpoint, TorchScript int8/fp16, or ``.onnx``.

``load_classifier(path)`` returns a ``Classifier``: call it with BGR face crops
(already ``imgsz`` square, see ``preprocess.square_crop``) to get ``(N, 4)`` softmax scores,
or use ``classify(frame, boxes)`` to crop and score in one go.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from facewear.constants import CLASS_NAMES, CLS_IMGSZ, CLS_MARGIN

from .preprocess import square_crop, to_input

LOG = logging.getLogger("facewear.cls")


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class Classifier:
    """A callable crop classifier; subclasses implement ``logits(x)`` on a normalised NCHW batch."""

    names: tuple[str, ...] = CLASS_NAMES
    imgsz: int = CLS_IMGSZ
    margin: float = CLS_MARGIN
    source: str = ""
    arch: str = ""

    def logits(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, crops: list[np.ndarray] | np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, len(self.names)), np.float32)
        return softmax(self.logits(to_input(crops)).astype(np.float32))

    def classify(self, frame: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Crop each ``x1, y1, x2, y2`` box of ``frame`` and score it.

        Returns ``(scores (M, 4), kept (N,) bool)``: boxes with an empty or zero-size crop are skipped
        (``kept`` is False for them) with a debug message.
        """
        crops, kept = [], np.zeros(len(boxes), bool)
        for i, b in enumerate(boxes):
            c = square_crop(frame, b, self.imgsz, self.margin)
            if c is None:
                LOG.debug("%s: skipped box %s (empty or zero-size crop)", self.source, np.round(b[:4], 1).tolist())
                continue
            crops.append(c)
            kept[i] = True
        return self(np.stack(crops) if crops else []), kept


def _is_torchscript(path: str | Path) -> bool:
    """TorchScript archives hold a ``code/`` folder; ``torch.save`` checkpoints do not."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return any("/code/" in n for n in z.namelist())
    except zipfile.BadZipFile:
        return False


class TorchClassifier(Classifier):
    """A ``.pt`` training checkpoint (dict with ``arch`` and ``model``) or a TorchScript file (quantized exports)."""

    def __init__(self, path: str | Path, threads: int | None = None):
        import torch

        self.torch = torch
        if threads:
            torch.set_num_threads(threads)
        self.source = str(path)
        meta: dict = {}
        if _is_torchscript(path):
            extra = {"meta.json": ""}
            try:
                self.model = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
            except RuntimeError as e:
                raise ValueError(f"{path}: TorchScript file cannot be loaded ({e})") from None
            meta = json.loads(extra["meta.json"] or "{}")
        else:
            try:
                ckpt = torch.load(path, map_location="cpu", weights_only=False)
            except Exception as e:  # noqa: BLE001 - pickle/zip errors vary by how the file is broken
                raise ValueError(f"{path}: cannot be read as a torch checkpoint ({type(e).__name__}: {e})") from None
            if not isinstance(ckpt, dict) or "arch" not in ckpt or "model" not in ckpt:
                raise ValueError(f"{path}: not a facewear classifier checkpoint (expected a dict with 'arch' and "
                                 "'model', or a TorchScript file)") from None
            from .models import build_model

            self.model, _ = build_model(ckpt["arch"], len(ckpt.get("class_names", CLASS_NAMES)), pretrained=False)
            self.model.load_state_dict(ckpt["model"])
            meta = ckpt
        self.model.eval()
        self.arch = meta.get("arch", "")
        self.imgsz = int(meta.get("imgsz", CLS_IMGSZ))
        self.margin = float(meta.get("margin", CLS_MARGIN))
        self.names = tuple(meta.get("class_names", CLASS_NAMES))
        self.half = bool(meta.get("half", False))

    def logits(self, x: np.ndarray) -> np.ndarray:
        t = self.torch.from_numpy(x)
        if self.half:
            t = t.half()
        with self.torch.inference_mode():
            return self.model(t).float().numpy()


class OnnxClassifier(Classifier):
    """An ``.onnx`` export (fp32, fp16 or int8) run by onnxruntime."""

    def __init__(self, path: str | Path, threads: int | None = None):
        from facewear.ort import ort_session

        self.source = str(path)
        self.sess = ort_session(path, threads)
        inp = self.sess.get_inputs()[0]
        self.input_name = inp.name
        self.fp16 = "float16" in inp.type
        meta = self.sess.get_modelmeta().custom_metadata_map
        self.arch = meta.get("arch", "")
        self.imgsz = int(meta.get("imgsz", inp.shape[2] if isinstance(inp.shape[2], int) else CLS_IMGSZ))
        self.margin = float(meta.get("margin", CLS_MARGIN))
        self.names = tuple(json.loads(meta["class_names"])) if "class_names" in meta else CLASS_NAMES

    def logits(self, x: np.ndarray) -> np.ndarray:
        if self.fp16:
            x = x.astype(np.float16)
        return self.sess.run(None, {self.input_name: x})[0].astype(np.float32)


def load_classifier(path: str | Path, threads: int | None = None) -> Classifier:
    """Pick the runtime from the file: ``.onnx`` -> onnxruntime, ``.pt`` -> torch."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: classifier file not found")
    if p.suffix == ".onnx":
        return OnnxClassifier(p, threads)
    if p.suffix in (".pt", ".pth"):
        return TorchClassifier(p, threads)
    raise ValueError(f"{p}: unknown classifier type {p.suffix!r} (expected .pt or .onnx)")
