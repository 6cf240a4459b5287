"""Crop-classifier export: a training checkpoint to ONNX fp32/fp16/int8 and TorchScript int8/fp16, each checked.

``run(ckpt)`` writes, beside the checkpoint (or into ``out_dir``):

* ``<stem>.onnx`` (``onnx``): ``torch.onnx.export`` (TorchScript exporter, opset 17), input ``input``
  (N, 3, S, S) float32, output ``logits`` (N, 4), dynamic batch, metadata ``arch``, ``imgsz``, ``margin``,
  ``class_names`` (JSON), ``precision``, ``preprocess``;
* ``<stem>-fp16.onnx`` (``onnx-fp16``): onnxruntime's float16 converter, float32 inputs and outputs kept;
* ``<stem>-int8.onnx`` (``onnx-int8``): onnxruntime static quantization (QDQ, per-channel int8 (7-bit range) weights,
  MinMax calibration on real crops);
* ``<stem>-int8.pt`` (``torch-int8``): ``torch.ao`` FX graph-mode post-training quantization (``x86`` engine
  qconfig) calibrated on the same crops, saved as TorchScript;
* ``<stem>-int8-qat.pt`` (``torch-int8-qat``, not in the default set): the same int8 setup after
  quantization-aware fine-tuning (``qat_finetune``: fake-quant, a short low-lr pass over the ``train`` crops),
  for when post-training quantization loses more than a point;
* ``<stem>-fp16.pt`` (``torch-fp16``): TorchScript of the half model (meta ``half: true``: the runtime casts);
* ``<stem>.export.json``: sizes and the agreement of every file with the fp32 torch model.

Every file is written atomically. Calibration crops come from the crop dataset's ``train`` split
(``build/crops/train/<class>/*.jpg``, stored context crops), the agreement check from ``val`` when present.
``prepare_qat`` / ``convert_qat`` give training the same quantization setup for quantization-aware fine-tuning.
"""
from __future__ import annotations

import contextlib
import copy
import json
import logging
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from facewear import timing
from facewear.constants import (
    CLASS_NAMES,
    CLS_IMGSZ,
    CLS_MARGIN,
    CLS_STORE_CONTEXT,
    SEED,
    default_build_dir,
)
from facewear.io import ImageReadError, atomic_path, list_images, read_image, write_json
from facewear.modelfile import read_header
from facewear.ort import set_metadata

from .preprocess import ONNX_IO, from_context, to_input

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .runtime import Classifier

LOG = logging.getLogger("facewear.cls.export")

FORMATS: tuple[str, ...] = ("onnx", "onnx-fp16", "onnx-int8", "torch-int8", "torch-fp16")
#: every format ``run`` knows; ``torch-int8-qat`` trains (minutes), so it is only made when asked for
ALL_FORMATS: tuple[str, ...] = (*FORMATS, "torch-int8-qat")
#: the detector's precision names, accepted for the ONNX formats so ``facewear export --formats`` reads the same
ALIASES: dict[str, str] = {"fp32": "onnx", "fp16": "onnx-fp16", "int8": "onnx-int8"}
SUFFIXES: dict[str, str] = {"onnx": ".onnx", "onnx-fp16": "-fp16.onnx", "onnx-int8": "-int8.onnx",
                            "torch-int8": "-int8.pt", "torch-fp16": "-fp16.pt", "torch-int8-qat": "-int8-qat.pt"}
PRECISION: dict[str, str] = {"onnx": "fp32", "onnx-fp16": "fp16", "onnx-int8": "int8", "torch-int8": "int8",
                             "torch-fp16": "fp16", "torch-int8-qat": "int8"}
OPSET = 17
QENGINE = "x86"  # torch.ao backend (fbgemm kernels); see qconfig_mapping for the ranges that suit AVX2 without VNNI


# --- checkpoints -------------------------------------------------------------------------
def checkpoint_kind(path: str | Path) -> str:
    """``"classifier"`` (a dict whose ``arch`` is in ``ARCHS``), ``"torchscript"`` or ``"other"`` (e.g. YOLO), read
    from the file's header (:func:`facewear.modelfile.read_header`: ``weights_only``, nothing unpickled).

    Raises ValueError naming the file when torch cannot read it at all (not a checkpoint), FileNotFoundError
    when it is missing.
    """
    from .models import ARCHS

    h = read_header(path)
    if h.format == "torchscript":
        return "torchscript"
    return "classifier" if h.format == "checkpoint" and h.arch in ARCHS else "other"


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The fp32 eval-mode model of a classifier training checkpoint and its metadata.

    Raises ValueError naming the file for anything that is not one.
    """
    import torch

    from .models import ARCHS, build_model

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: checkpoint not found")
    kind = checkpoint_kind(p)
    if kind == "torchscript":
        raise ValueError(f"{p}: a TorchScript export, not a training checkpoint (export from the checkpoint)")
    if kind != "classifier":
        raise ValueError(f"{p}: not a facewear classifier checkpoint (expected a dict with 'arch' in "
                         f"{', '.join(ARCHS)} and 'model')")
    ckpt = torch.load(p, map_location="cpu", weights_only=False)
    if "model" not in ckpt:
        raise ValueError(f"{p}: classifier checkpoint has no 'model' state_dict")
    names = list(ckpt.get("class_names", CLASS_NAMES))
    model, _ = build_model(ckpt["arch"], len(names), pretrained=False)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise ValueError(f"{p}: state_dict does not fit {ckpt['arch']} ({str(e).splitlines()[0]})") from None
    meta = {"arch": ckpt["arch"], "imgsz": int(ckpt.get("imgsz", CLS_IMGSZ)),
            "margin": float(ckpt.get("margin", CLS_MARGIN)), "class_names": names}
    return model.eval(), meta


# --- calibration crops -------------------------------------------------------------------
def calibration_crops(source: str | Path | np.ndarray | Sequence[np.ndarray], n: int = 256, imgsz: int = CLS_IMGSZ,
                      margin: float = CLS_MARGIN, seed: int = SEED,
                      context: float | None = CLS_STORE_CONTEXT) -> np.ndarray:
    """Up to ``n`` BGR uint8 model crops ``(n, imgsz, imgsz, 3)`` for calibration or checks.

    ``source`` is a folder searched recursively (the crop dataset: ``<split>/<class>/*.jpg`` stored context
    crops, turned into model crops by ``preprocess.from_context``; ``context=None`` for folders of plain crops,
    which are only resized), or an array / list of BGR crops (resized when not ``imgsz``). Sampling is seeded
    and round-robin over the image folders (classes), so classes are balanced. Fewer than ``n`` come back
    when fewer exist.
    """
    rng = np.random.default_rng(seed)
    if isinstance(source, (str, Path)):
        return _crops_from_folder(Path(source), n, imgsz, margin, rng, context)
    arr = [np.asarray(c) for c in source]
    if not arr or any(c.ndim != 3 or c.shape[2] != 3 for c in arr):
        raise ValueError("calibration crops: expected a non-empty array of BGR (H, W, 3) crops")
    idx = rng.permutation(len(arr))[:n]
    return np.stack([_fit(arr[i], imgsz) for i in idx])


def _fit(c: np.ndarray, imgsz: int) -> np.ndarray:
    if c.dtype != np.uint8:
        c = np.clip(c, 0, 255).astype(np.uint8)
    if c.shape[:2] != (imgsz, imgsz):
        c = cv2.resize(c, (imgsz, imgsz), interpolation=cv2.INTER_AREA if c.shape[0] > imgsz else cv2.INTER_LINEAR)
    return c


def _crops_from_folder(folder: Path, n: int, imgsz: int, margin: float, rng: np.random.Generator,
                       context: float | None) -> np.ndarray:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: calibration crop folder not found")
    groups: dict[Path, list[Path]] = {}
    for f in list_images(folder):
        groups.setdefault(f.parent, []).append(f)
    if not groups:
        raise FileNotFoundError(f"{folder}: no images for calibration")
    queues = [[g[i] for i in rng.permutation(len(g))] for _, g in sorted(groups.items())]
    out: list[np.ndarray] = []
    while len(out) < n and any(queues):
        for q in queues:
            if not q or len(out) >= n:
                continue
            f = q.pop(0)
            try:
                img = read_image(f)
            except ImageReadError as e:
                LOG.warning("calibration: skipped %s", e)
                continue
            c = from_context(img, imgsz, margin, context) if context else _fit(img, imgsz)
            if c is not None:
                out.append(c)
    if not out:
        raise FileNotFoundError(f"{folder}: no readable calibration images")
    if len(out) < n:
        LOG.info("calibration: %d crops in %s (asked for %d)", len(out), folder, n)
    return np.stack(out)


def _sources(calib: str | Path | np.ndarray | Sequence[np.ndarray] | None) -> tuple[Any, Any]:
    """(calibration source, check source): a crop-dataset root splits into its ``train`` and ``val``."""
    if calib is None:
        calib = default_build_dir() / "crops"
        if not calib.is_dir():
            return None, None
    if isinstance(calib, (str, Path)) and (Path(calib) / "train").is_dir():
        root = Path(calib)
        return root / "train", (root / "val" if (root / "val").is_dir() else root / "train")
    return calib, calib


# --- the exporters -------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence torch's deprecation/tracer chatter about torch.ao, TorchScript and the ONNX exporter."""
    import torch

    with warnings.catch_warnings():
        for cat in (DeprecationWarning, FutureWarning, torch.jit.TracerWarning):
            warnings.simplefilter("ignore", cat)
        warnings.filterwarnings("ignore", message=".*(quant_min and quant_max|reduce_range|TorchScript|"
                                                  "torch.jit|dynamo=False|deprecated).*")
        yield


def _set_meta(m: Any, meta: dict[str, Any], precision: str) -> None:
    """Write our metadata_props onto an ONNX ModelProto (replacing any of the same keys)."""
    props = {"arch": meta["arch"], "imgsz": str(meta["imgsz"]), "margin": str(meta["margin"]),
             "class_names": json.dumps(list(meta["class_names"])), "precision": precision,
             "preprocess": ONNX_IO["input"]["preprocess"]}
    set_metadata(m, props)


def export_onnx(model: nn.Module, meta: dict[str, Any], out: str | Path, opset: int = OPSET) -> Path:
    """fp32 ONNX with dynamic batch, height and width axes and our metadata, checked by ``onnx.checker``.

    Height and width are dynamic so the same file can be timed at the reference 112 px and at our size."""
    import onnx
    import torch

    out = Path(out)
    x = torch.zeros(1, 3, meta["imgsz"], meta["imgsz"])
    with atomic_path(out) as tmp, _quiet():
        torch.onnx.export(model.eval(), (x,), str(tmp), dynamo=False, opset_version=opset,
                          input_names=[ONNX_IO["input"]["name"]], output_names=[ONNX_IO["output"]["name"]],
                          dynamic_axes={"input": {0: "N", 2: "H", 3: "W"}, "logits": {0: "N"}},
                          do_constant_folding=True)
        m = onnx.load(str(tmp))
        _set_meta(m, meta, "fp32")
        onnx.checker.check_model(m)
        onnx.save(m, str(tmp))
    return out


def export_onnx_fp16(fp32: str | Path, out: str | Path, meta: dict[str, Any]) -> Path:
    """float16 weights and compute, float32 inputs and outputs (``keep_io_types``)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    out = Path(out)
    with _quiet():
        m = convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True)
    _toposort(m.graph)  # the converter appends its input casts last, which onnx.checker rejects
    _set_meta(m, meta, "fp16")
    onnx.checker.check_model(m)
    with atomic_path(out) as tmp:
        onnx.save(m, str(tmp))
    return out


def _toposort(graph: Any) -> None:
    """Reorder ``graph.node`` so every node comes after the producers of its inputs (Kahn, stable)."""
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = [n for n in pending if not all(i in ready for i in n.input)]
        done = [n for n in pending if all(i in ready for i in n.input)]
        if not done:
            raise ValueError("ONNX graph has a cycle or a dangling input")
        for n in done:
            ready.update(n.output)
        ordered += done
        pending = rest
    copies = [copy.deepcopy(n) for n in ordered]
    del graph.node[:]
    graph.node.extend(copies)


def export_onnx_int8(fp32: str | Path, out: str | Path, meta: dict[str, Any], crops: np.ndarray,
                     batch: int = 16) -> Path:
    """onnxruntime static QDQ quantization: per-channel 7-bit weights, int8 activations, MinMax on ``crops``."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(range(0, len(crops), batch))

        def get_next(self) -> dict[str, np.ndarray] | None:
            i = next(self.it, None)
            return None if i is None else {"input": to_input(crops[i:i + batch])}

    out = Path(out)
    with tempfile.TemporaryDirectory() as td, atomic_path(out) as tmp:
        pre = Path(td) / "pre.onnx"
        try:
            quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
            src = pre
        except Exception as e:  # noqa: BLE001 - an optimisation only; onnxruntime raises its own types
            LOG.warning("int8 pre-processing skipped (%s)", e)
            src = Path(fp32)
        # reduce_range (7-bit weights): without VNNI, x86 int8 kernels add pairs of u8*s8 products in
        # saturating int16 (vpmaddubsw); full-range weights overflowed there and cost ~4 points of top-1 on
        # an ImageNet mobilenet_v2 crop classifier, 7-bit weights ~1 point (measured on face crops, AVX2 CPU).
        with _quiet():
            quantize_static(str(src), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            reduce_range=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
        m = onnx.load(str(tmp))
        _set_meta(m, meta, "int8")
        onnx.checker.check_model(m)
        onnx.save(m, str(tmp))
    return out


def qconfig_mapping(engine: str = QENGINE, qat: bool = False) -> Any:
    """The FX ``QConfigMapping`` for ``engine`` (``qat``: its fake-quant twin, same ranges).

    On ``x86``/``fbgemm`` the global qconfig is 8-bit activations with 7-bit per-channel weights instead of
    torch's default 7-bit activations with 8-bit weights: both keep u8*s8 pair sums inside int16 on CPUs
    without VNNI, but activation resolution matters more (mobilenet_v2, 96 px face crops, AVX2: 92.5 % top-1
    vs 88.8 % for the default, fp32 94.2 %; full 8/8 bits overflowed to 31 %).
    Other engines (``qnnpack``, ``onednn``) get torch's defaults.
    """
    import torch
    from torch.ao.quantization import (
        QConfig,
        get_default_qat_qconfig_mapping,
        get_default_qconfig_mapping,
    )
    from torch.ao.quantization.fake_quantize import FusedMovingAvgObsFakeQuantize
    from torch.ao.quantization.observer import (
        HistogramObserver,
        MovingAverageMinMaxObserver,
        MovingAveragePerChannelMinMaxObserver,
        PerChannelMinMaxObserver,
    )

    if engine not in ("x86", "fbgemm"):
        return (get_default_qat_qconfig_mapping if qat else get_default_qconfig_mapping)(engine)
    act = {"dtype": torch.quint8, "quant_min": 0, "quant_max": 255}
    wt = {"dtype": torch.qint8, "qscheme": torch.per_channel_symmetric, "quant_min": -64, "quant_max": 63}
    if qat:
        qc = QConfig(activation=FusedMovingAvgObsFakeQuantize.with_args(observer=MovingAverageMinMaxObserver, **act),
                     weight=FusedMovingAvgObsFakeQuantize.with_args(observer=MovingAveragePerChannelMinMaxObserver,
                                                                    **wt))
        return get_default_qat_qconfig_mapping(engine).set_global(qc)
    qc = QConfig(activation=HistogramObserver.with_args(**act), weight=PerChannelMinMaxObserver.with_args(**wt))
    return get_default_qconfig_mapping(engine).set_global(qc)


def quantize_torch(model: nn.Module, crops: np.ndarray, engine: str = QENGINE, batch: int = 16) -> nn.Module:
    """FX graph-mode post-training static quantization of (a copy of) ``model``, calibrated on ``crops``."""
    import torch
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = engine
    m = copy.deepcopy(model).eval()
    example = (torch.from_numpy(to_input(crops[:1])),)
    with _quiet(), torch.no_grad():
        prepared = prepare_fx(m, qconfig_mapping(engine), example)
        for i in range(0, len(crops), batch):
            prepared(torch.from_numpy(to_input(crops[i:i + batch])))
        return convert_fx(prepared)


def _save_script(model: nn.Module, example: torch.Tensor, meta: dict[str, Any], out: Path) -> Path:
    """Trace ``model`` (no trace re-check: ``run`` compares every file with the fp32 model) and save it
    atomically with ``meta.json`` for ``runtime.TorchClassifier``."""
    import torch

    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(model, example, check_trace=False)
    with atomic_path(out) as tmp, _quiet():
        torch.jit.save(traced, str(tmp), _extra_files={"meta.json": json.dumps(meta)})
    return out


def export_torch_int8(model: nn.Module, meta: dict[str, Any], out: str | Path, crops: np.ndarray,
                      engine: str = QENGINE) -> Path:
    """TorchScript of the FX-quantized model (or of ``model`` itself when it is already converted, e.g. QAT)."""
    import torch

    q = model if _is_quantized(model) else quantize_torch(model, crops, engine)
    x = torch.from_numpy(to_input(crops[:1]))
    return _save_script(q, x, {**meta, "half": False, "precision": "int8", "qengine": engine}, Path(out))


def _is_quantized(model: nn.Module) -> bool:
    return any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in model.modules())


def export_torch_fp16(model: nn.Module, meta: dict[str, Any], out: str | Path) -> Path:
    """TorchScript of the half model; meta ``half: true`` tells the runtime to cast its input.

    It runs on CPU with torch 2.14, but without AVX512-FP16 it is several times slower than fp32.
    """
    import torch

    h = copy.deepcopy(model).eval().half()
    x = torch.zeros(1, 3, meta["imgsz"], meta["imgsz"], dtype=torch.float16)
    try:
        return _save_script(h, x, {**meta, "half": True, "precision": "fp16"}, Path(out))
    except RuntimeError as e:  # no fp16 kernel for some op on this CPU build
        raise RuntimeError(f"torch-fp16: this torch cannot run the half model on CPU ({e})") from None


# --- quantization-aware training -----------------------------------------------------------
def prepare_qat(model: nn.Module, example: torch.Tensor, engine: str = QENGINE) -> nn.Module:
    """A train-mode FX copy of ``model`` with fake-quant (``qconfig_mapping(engine, qat=True)``: the PTQ ranges).

    Build the optimizer on the returned module, fine-tune, then ``convert_qat`` it and hand the result to
    ``export_torch_int8``. ``example``: one normalised NCHW batch.
    """
    import torch
    from torch.ao.quantization.quantize_fx import prepare_qat_fx

    torch.backends.quantized.engine = engine
    m = copy.deepcopy(model).train()
    with _quiet():
        return prepare_qat_fx(m, qconfig_mapping(engine, qat=True), (example,))


def convert_qat(model: nn.Module) -> nn.Module:
    """The int8 model (eval mode) of a ``prepare_qat`` module after fine-tuning; the argument is left as is."""
    from torch.ao.quantization.quantize_fx import convert_fx

    with _quiet():
        return convert_fx(copy.deepcopy(model).eval())


def qat_finetune(model: nn.Module, meta: dict[str, Any], root: str | Path, epochs: int = 1, lr: float = 1e-4,
                 batch: int = 64, fraction: float = 0.5, seed: int = SEED) -> nn.Module:
    """Quantization-aware fine-tuning of a float classifier on the crop dataset's ``train`` split.

    Fake-quant with the PTQ ranges (``prepare_qat``), AdamW at a low cosine lr, observers and BatchNorm
    statistics frozen for the second half of the steps (the usual QAT recipe); returns the converted int8
    module for ``export_torch_int8``."""
    import torch
    import torch.nn.functional as F
    from torch.ao.nn.intrinsic import qat as nniqat
    from torch.ao.quantization import disable_observer
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from .data import CropDataset, load_split

    imgs, labels, _ = load_split(root, "train", tuple(meta.get("class_names", CLASS_NAMES)), fraction, seed)
    torch.manual_seed(seed)
    dl = DataLoader(CropDataset(imgs, labels, meta["imgsz"], meta["margin"], train=True, seed=seed),
                    batch_size=batch, shuffle=True, drop_last=len(labels) > batch,
                    generator=torch.Generator().manual_seed(seed))
    example = next(iter(dl))[0][:1]
    qm = prepare_qat(model, example)
    opt = torch.optim.AdamW(qm.parameters(), lr=lr, weight_decay=0.0)
    steps = max(1, epochs * len(dl))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    step = 0
    for epoch in range(epochs):
        qm.train()
        bar = tqdm(dl, desc=f"qat {epoch + 1}/{epochs}", leave=False)
        for x, y in bar:
            if step == steps // 2 and step > 0:  # observers must have seen data first
                qm.apply(disable_observer)
                qm.apply(nniqat.freeze_bn_stats)
            with _quiet():
                loss = F.cross_entropy(qm(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            bar.set_postfix(loss=f"{loss.item():.3f}")
    return convert_qat(qm)


# --- checks ----------------------------------------------------------------------------------
def agreement(ref: Classifier, other: Classifier, crops: np.ndarray, batch: int = 32) -> dict[str, float]:
    """Top-1 agreement (%) and the largest |prob| and |logit| differences of ``other`` against ``ref``."""
    from .runtime import softmax

    la, lb = [], []
    for i in range(0, len(crops), batch):
        x = to_input(crops[i:i + batch])
        la.append(ref.logits(x).astype(np.float32))
        lb.append(other.logits(x).astype(np.float32))
    a, b = np.concatenate(la), np.concatenate(lb)
    pa, pb = softmax(a), softmax(b)
    return {"top1_agreement": float((pa.argmax(1) == pb.argmax(1)).mean() * 100),
            "max_abs_prob_diff": float(np.abs(pa - pb).max()), "max_abs_logit_diff": float(np.abs(a - b).max()),
            "samples": len(crops)}


def latency(clf: Classifier, imgsz: int, warmup: int = 10, iters: int = 50) -> dict[str, float]:
    """p50/p95 milliseconds of one batch-1 forward (normalised input ready, softmax excluded)."""
    x = np.random.default_rng(0).standard_normal((1, 3, imgsz, imgsz)).astype(np.float32)
    return timing.latency(clf.logits, x, warmup=warmup, iters=iters)


def _formats(formats: Sequence[str]) -> list[str]:
    fs = list(dict.fromkeys(ALIASES.get(f, f) for f in formats))
    bad = [f for f in fs if f not in ALL_FORMATS]
    if bad or not fs:
        raise ValueError(f"unknown classifier export format(s) {bad}; choose from {', '.join(FORMATS)} "
                         f"(or {', '.join(ALIASES)})")
    return fs


def run(model: str | Path, formats: Sequence[str] = FORMATS,
        calib: str | Path | np.ndarray | Sequence[np.ndarray] | None = None, n_calib: int = 256,
        out_dir: str | Path | None = None, check: int = 64, bench: bool = False, threads: int = 1,
        json_out: str | Path | None = None, qat_epochs: int = 1, qat_fraction: float = 0.5,
        seed: int = SEED) -> dict[str, Any]:
    """Export classifier checkpoint ``model`` to ``formats``, check each against the fp32 torch model.

    ``calib``: crop folder (a crop-dataset root uses its ``train`` split to calibrate and ``val`` to check) or
    array of BGR crops; default ``$FACEWEAR_BUILD/crops``. int8 formats need it; without it the check runs on
    seeded noise crops. ``bench`` times every file at batch 1 with ``threads`` threads. The report goes to
    ``json_out`` (default ``<out_dir>/<stem>.export.json``) and is returned. ``torch-int8-qat`` fine-tunes
    ``qat_epochs`` over ``qat_fraction`` of the ``train`` crops of the ``calib`` crop root first.
    """
    from .runtime import load_classifier

    pt = Path(model)
    fs = _formats(formats)
    net, meta = load_checkpoint(pt)
    imgsz, margin = meta["imgsz"], meta["margin"]
    out = Path(out_dir) if out_dir else pt.parent
    stem = pt.stem

    calib_src, check_src = _sources(calib)
    needs_calib = any("int8" in f for f in fs)
    if calib_src is None and needs_calib:
        raise FileNotFoundError(f"no calibration crops for int8 (looked for {default_build_dir() / 'crops'}); build "
                                "them with `facewear data crops`, or pass calib= a crop folder or an array of crops")
    calib_crops = calibration_crops(calib_src, n_calib, imgsz, margin, seed) if needs_calib else None
    if check_src is None:
        LOG.warning("no crop folder: agreement checked on %d seeded noise crops", check)
        check_crops = np.random.default_rng(seed).integers(0, 256, (check, imgsz, imgsz, 3), dtype=np.uint8)
    else:
        check_crops = calibration_crops(check_src, check, imgsz, margin, seed + 1)

    files: dict[str, Path] = {}
    with tempfile.TemporaryDirectory() as td:
        fp32 = None  # the fp16 and int8 ONNX files start from it; kept only when asked for
        if any(f.startswith("onnx") for f in fs):
            fp32 = export_onnx(net, meta, out / f"{stem}.onnx" if "onnx" in fs else Path(td) / f"{stem}.onnx")
        for f in fs:
            dst = out / f"{stem}{SUFFIXES[f]}"
            t0 = time.perf_counter()
            if f == "onnx":
                files[f] = fp32
            elif f == "onnx-fp16":
                files[f] = export_onnx_fp16(fp32, dst, meta)
            elif f == "onnx-int8":
                files[f] = export_onnx_int8(fp32, dst, meta, calib_crops)
            elif f == "torch-int8":
                files[f] = export_torch_int8(net, meta, dst, calib_crops)
            elif f == "torch-int8-qat":
                root = calib_src.parent if isinstance(calib_src, Path) and calib_src.name == "train" else None
                if root is None:
                    raise FileNotFoundError(f"torch-int8-qat trains on a crop dataset root with train/ "
                                            f"(got {_describe(calib_src)}); pass calib= such a folder")
                q = qat_finetune(net, meta, root, qat_epochs, fraction=qat_fraction, seed=seed)
                files[f] = export_torch_int8(q, {**meta, "qat_epochs": qat_epochs}, dst, calib_crops)
            else:
                files[f] = export_torch_fp16(net, meta, dst)
            LOG.info("%s: %s (%.1f s)", f, files[f], time.perf_counter() - t0)

    ref = load_classifier(pt)
    report: dict[str, Any] = {
        "model": str(pt), **meta,
        "calibration": {"source": _describe(calib_src), "crops": 0 if calib_crops is None else len(calib_crops)},
        "check": {"source": _describe(check_src) or "noise", "crops": len(check_crops)},
        "files": {}}
    for f, path in files.items():
        clf = load_classifier(path)
        report["files"][f] = {"file": str(path), "bytes": path.stat().st_size, "precision": PRECISION[f],
                              **agreement(ref, clf, check_crops)}
    if bench:
        import torch

        before = torch.get_num_threads()  # TorchClassifier(threads=) sets the process-wide count
        try:
            report["latency"] = {"threads": threads, "torch-fp32": latency(load_classifier(pt, threads), imgsz)}
            for f, path in files.items():
                report["latency"][f] = latency(load_classifier(path, threads), imgsz)
        finally:
            torch.set_num_threads(before)
    print(table(report))
    write_json(json_out or out / f"{stem}.export.json", report)
    return report


def _describe(src: Any) -> str | None:
    if src is None:
        return None
    return str(src) if isinstance(src, (str, Path)) else f"array of {len(src)} crops"


def table(report: dict[str, Any]) -> str:
    """The export report as a small fixed-width table."""
    lat = report.get("latency", {})
    head = f"{'format':<11} {'file':<34} {'MB':>6} {'top-1 agree':>11} {'max|dprob|':>10} {'max|dlogit|':>11}"
    if lat:
        head += f" {'p50 ms':>7}"
    lines = [head]
    if lat:
        lines.append(f"{'torch-fp32':<11} {Path(report['model']).name:<34} {'':>6} {'ref':>11} {'':>10} {'':>11} "
                     f"{lat['torch-fp32']['p50_ms']:7.2f}")
    for f, r in report["files"].items():
        row = (f"{f:<11} {Path(r['file']).name:<34} {r['bytes'] / 1e6:6.2f} {r['top1_agreement']:10.1f}% "
               f"{r['max_abs_prob_diff']:10.4f} {r['max_abs_logit_diff']:11.4f}")
        if lat:
            row += f" {lat[f]['p50_ms']:7.2f}"
        lines.append(row)
    return "\n".join(lines)
