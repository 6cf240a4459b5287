"""YOLO export (``facewear export`` on an ultralytics ``.pt``): ONNX fp32, fp16 and static int8, each checked against
torch.

* **fp32**: ultralytics' exporter (``torch.onnx.export`` with the TorchScript
  path, fixed ``1x3xSxS`` input, no onnxslim);
* **fp16**: onnxruntime's float16 converter on the fp32 graph, float32 inputs
  and outputs kept so callers need no change;
* **int8**: onnxruntime static quantization (QDQ, per-channel weights) of the
  backbone and neck convolutions, calibrated on letterboxed *training* images
  (never the held-out set); the Detect head stays float.

Each export is compared with the torch model on sample images: the largest
and mean absolute difference of the raw output tensor, and the share of the
torch model's detections (conf >= 0.25) that the export reproduces (same
class, IoU >= 0.5). Optionally it times every variant (p50/p95 at batch 1,
1 and 2 threads, after a warm-up).
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from facewear.boxes import iou_matrix, letterbox
from facewear.constants import DATASETS_DIR
from facewear.data.layout import load_spec, split_paths
from facewear.io import list_images, read_image, write_json

from ..speed import time_variants

LOG = logging.getLogger("facewear.export")
PRECISIONS = ("fp32", "fp16", "int8")
HEAD_PREFIX = "/model.24/"  # ultralytics' Detect head in the exported graph (yolov5n/s: layer 24)


def export_fp32(pt: Path, out: Path, imgsz: int) -> Path:
    from ultralytics import YOLO

    # ultralytics writes <stem>.onnx beside the .pt; export a private copy so a file already there (the
    # committed weights/<stem>.onnx when --out-dir points elsewhere) is never overwritten or moved away.
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="facewear-export-", dir=out.parent) as tmp:
        src = Path(tmp) / pt.name
        shutil.copy2(pt, src)
        produced = Path(YOLO(str(src)).export(format="onnx", imgsz=imgsz, simplify=False, dynamic=False,
                                             half=False, device="cpu", verbose=False))
        os.replace(produced, out)
    return out


def export_fp16(fp32: Path, out: Path) -> Path:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    m = convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True)
    onnx.save(m, str(out))
    return out


def _calib_images(data: str, n: int, seed: int = 0) -> list[Path]:
    spec = load_spec(data)
    images, _, _ = split_paths(spec, "train")
    files = list_images(images)
    if not files:
        raise FileNotFoundError(f"{images}: no calibration images (build the dataset first)")
    rng = np.random.default_rng(seed)
    return [files[i] for i in rng.choice(len(files), size=min(n, len(files)), replace=False)]


def preprocess(frame: np.ndarray, imgsz: int) -> np.ndarray:
    img, _, _ = letterbox(frame, imgsz)
    return np.ascontiguousarray(img[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0)


def export_int8(fp32: Path, out: Path, calib: list[Path], imgsz: int) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(calib)

        def get_next(self):
            p = next(self.it, None)
            return None if p is None else {"images": preprocess(read_image(p), imgsz)}

    pre = out.with_suffix(".pre.onnx")
    try:
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        src = pre
    except Exception as e:  # noqa: BLE001 - pre-processing is an optimisation only
        LOG.warning("int8 pre-processing skipped (%s)", e)
        src = fp32
    # Keep the Detect head in float: its output concatenates box coordinates (0..S px) with
    # class scores (0..1), and one shared int8 scale wipes the scores out (measured: 0 % of
    # the torch detections survived a fully quantized graph). Only the convolutions of the
    # backbone and neck are quantized.
    import onnx

    head = [n.name for n in onnx.load(str(src)).graph.node if n.name.startswith(HEAD_PREFIX)]
    quantize_static(str(src), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=["Conv"], nodes_to_exclude=head)
    pre.unlink(missing_ok=True)
    return out


def _torch_raw(pt: Path, x: np.ndarray) -> np.ndarray:
    import torch
    from ultralytics import YOLO

    m = YOLO(str(pt)).model.float().eval()
    with torch.no_grad():
        y = m(torch.from_numpy(x))
    return (y[0] if isinstance(y, (list, tuple)) else y).numpy()


def _decode(raw: np.ndarray, conf: float = 0.25) -> np.ndarray:
    from ..detector import nms

    out = raw[0]
    scores = out[4:]
    cls = scores.argmax(0)
    s = scores[cls, np.arange(scores.shape[1])]
    m = s >= conf
    cx, cy, w, h = out[:4, m]
    d = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, s[m], cls[m].astype(np.float32)], 1)
    return nms(d.astype(np.float32), 0.45)


def agreement(pt: Path, onnx_path: Path, samples: list[np.ndarray]) -> dict[str, float]:
    """Compare an ONNX export with the torch model on preprocessed samples."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    diffs, means, hit, tot = [], [], 0, 0
    for x in samples:
        a = _torch_raw(pt, x)
        b = sess.run(None, {name: x})[0].astype(np.float32)
        diffs.append(float(np.abs(a - b).max()))
        means.append(float(np.abs(a - b).mean()))
        da, db = _decode(a), _decode(b)
        tot += len(da)
        if len(da) and len(db):
            iou = iou_matrix(da[:, :4], db[:, :4])
            same = da[:, None, 5] == db[None, :, 5]
            hit += int(((iou >= 0.5) & same).any(1).sum())
    return {"max_abs_diff": max(diffs), "mean_abs_diff": float(np.mean(means)),
            "detections_torch": tot, "detections_matched": (hit / tot) if tot else 1.0}


def export_yolo(model: str, formats: list[str] | tuple[str, ...] = PRECISIONS, imgsz: int = 320,
                data: str = str(DATASETS_DIR / "facewear4.yaml"), calib: int = 200, out_dir: str | None = None,
                check: int = 8, bench: bool = False, json_out: str | None = None) -> dict[str, Any]:
    """Export a YOLO ``model`` to the requested precisions, check each against torch, optionally time them."""
    pt = Path(model)
    if not pt.is_file() or pt.suffix != ".pt":
        raise FileNotFoundError(f"{pt}: expected an existing ultralytics .pt checkpoint")
    bad = [f for f in formats if f not in PRECISIONS]
    if bad:
        raise ValueError(f"unknown precision(s) {bad}; choose from {PRECISIONS}")
    out = Path(out_dir) if out_dir else pt.parent
    out.mkdir(parents=True, exist_ok=True)
    stem = pt.stem
    files: dict[str, Path] = {}
    # fp16 and int8 start from the fp32 graph; when fp32 itself is not asked for, it is made in a private temporary
    # folder, so a committed <stem>.onnx beside the .pt is never replaced (nor deleted afterwards).
    tmp = None if "fp32" in formats else tempfile.TemporaryDirectory(prefix="facewear-export-", dir=out)
    calib_files: list[Path] = []
    try:
        fp32 = export_fp32(pt, (Path(tmp.name) if tmp else out) / f"{stem}.onnx", imgsz)
        if "fp32" in formats:
            files["fp32"] = fp32
        if "fp16" in formats:
            files["fp16"] = export_fp16(fp32, out / f"{stem}-fp16.onnx")
        try:
            calib_files = _calib_images(data, max(calib, check))
        except FileNotFoundError as e:
            if "int8" in formats:
                raise
            LOG.warning("%s; agreement checked on random inputs", e)
        if "int8" in formats:
            files["int8"] = export_int8(fp32, out / f"{stem}-int8.onnx", calib_files[:calib], imgsz)
    finally:
        if tmp is not None:
            tmp.cleanup()
    samples = [preprocess(read_image(p), imgsz) for p in calib_files[-check:]] if calib_files else [
        np.random.default_rng(i).random((1, 3, imgsz, imgsz), dtype=np.float32) for i in range(check)]
    report: dict[str, Any] = {"model": str(pt), "imgsz": imgsz, "files": {}}
    for prec, f in files.items():
        ag = agreement(pt, f, samples)
        report["files"][prec] = {"file": str(f), "bytes": f.stat().st_size, **ag}
        print(f"{prec:>5}: {f.name:<28} {f.stat().st_size / 1e6:6.2f} MB  max|diff| {ag['max_abs_diff']:.4g}  "
              f"detections matched {ag['detections_matched'] * 100:5.1f}% of {ag['detections_torch']}")
    if bench:
        report["latency"] = time_variants(pt, files, imgsz)
    if json_out:  # a committed report: no machine paths
        from facewear.io import portable_paths

        write_json(json_out, portable_paths(report))
    return report


__all__ = ["PRECISIONS", "agreement", "export_fp16", "export_fp32", "export_int8", "export_yolo", "preprocess"]
