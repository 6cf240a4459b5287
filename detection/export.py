"""``facewear export``: an ultralytics ``.pt`` to ONNX fp32, fp16 and static int8, each checked against torch.

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

A crop-classifier training checkpoint (a dict whose ``arch`` is one of
``classification.models.ARCHS``) is recognised and handed to
``classification.export.run`` (ONNX fp32/fp16/int8, TorchScript int8/fp16); a
Faster R-CNN checkpoint (a dict whose ``arch`` starts with ``frcnn``) to
``detection.frcnn_export.run`` (ONNX fp32 and fp16, a float16 checkpoint).

``facewear export --rebuild`` makes the released variants that are not committed (``weights/manifest.json``,
``"committed": false``) from the committed files and checks them against the manifest
(:func:`rebuild_variants`).
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from classification.export import ALL_FORMATS as CLS_ALL_FORMATS
from classification.export import FORMATS as CLS_FORMATS
from facewear.boxes import iou_matrix, letterbox
from facewear.constants import DATASETS_DIR
from facewear.data.layout import load_spec, split_paths
from facewear.io import list_images, read_image, write_json

from . import manifest
from .manifest import WEIGHTS_DIR
from .speed import time_variants

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
    from .detector import nms

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


def run(model: str | None = None, formats: list[str] | tuple[str, ...] | None = None, imgsz: int | None = None,
        data: str = str(DATASETS_DIR / "facewear4.yaml"), calib: int | None = None, calib_dir: str | None = None,
        out_dir: str | None = None, check: int | None = None, bench: bool = False,
        json_out: str | None = None, qat_epochs: int = 1, rebuild: bool = False,
        force: bool = False) -> dict[str, Any] | int:
    """``facewear export``: a YOLO ``.pt`` (``export_yolo``), a Faster R-CNN checkpoint
    (``detection.frcnn_export.run``) or a crop-classifier checkpoint (``classification.export.run``), told apart
    by the file. ``None`` means each path's own default. A ``--json`` naming the model or the data spec is
    refused before anything is written.

    ``rebuild``: make every variant of ``weights/manifest.json`` that is not committed (``force``: present ones
    too) from its committed source, with the recorded command, and check each against the manifest
    (:func:`rebuild_variants`); returns 1 when a rebuilt file fails its check."""
    if rebuild:
        if model is not None:
            raise ValueError("--rebuild makes the variants listed in weights/manifest.json; drop --model")
        res = rebuild_variants(out_dir, force=force)
        if json_out:
            write_json(json_out, res)
        return 0 if res["ok"] else 1
    if model is None:
        raise ValueError("--model is required (or --rebuild)")
    pt = Path(model)
    if json_out:
        from facewear.io import check_not_inputs

        check_not_inputs([json_out], [pt, Path(data)], "--json")
    if pt.is_file() and pt.suffix == ".pt":
        from .registry import sniff

        kind = sniff(pt)  # from the header; ValueError naming the file when torch cannot read it at all
        if kind == "frcnn":
            from .frcnn_export import run as export_frcnn

            if calib_dir is not None or calib is not None:
                raise ValueError(f"{pt}: a Faster R-CNN exports no int8, so it takes no --calib / --calib-dir")
            return export_frcnn(pt, formats=formats, imgsz=imgsz, data=data, out_dir=out_dir,
                                check=4 if check is None else check, bench=bench, json_out=json_out)

        if kind == "torchscript":
            raise ValueError(f"{pt}: a TorchScript export, not a checkpoint to export from")
        if kind == "cls":
            from classification.export import run as export_classifier

            if imgsz is not None:
                raise ValueError(f"{pt}: a classifier exports at its checkpoint's imgsz; drop --imgsz")
            return export_classifier(pt, formats=formats or CLS_FORMATS, calib=calib_dir,
                                     n_calib=256 if calib is None else calib, out_dir=out_dir,
                                     check=64 if check is None else check, bench=bench, json_out=json_out,
                                     qat_epochs=qat_epochs)
    if calib_dir is not None:
        raise ValueError("--calib-dir is for classifier checkpoints; a detector calibrates on --data's train split")
    return export_yolo(model, formats=PRECISIONS if formats is None else formats, imgsz=320 if imgsz is None else imgsz,
                       data=data, calib=200 if calib is None else calib, out_dir=out_dir,
                       check=8 if check is None else check, bench=bench, json_out=json_out)


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
    if json_out:
        write_json(json_out, report)
    return report


# --- facewear export --rebuild ---------------------------------------------------------------
def _export(src: Path, formats: list[str], out: Path, qat_epochs: int = 1) -> dict[str, Any]:
    from .export import run as export

    return export(str(src), formats=formats, out_dir=str(out), json_out=str(out / f"{src.stem}.rebuild.json"),
                  qat_epochs=qat_epochs)


def rebuild_variants(weights_dir: str | Path | None = None, names: Sequence[str] | None = None, force: bool = False,
            verbose: bool = True) -> dict[str, Any]:
    """Make the variants that are not committed from their committed source (``facewear export --rebuild``).

    One ``facewear export`` call per source file and QAT setting, written into ``weights_dir`` (default
    ``weights/``), its report into ``<stem>.rebuild.json`` there; each file is then checked against its entry
    (``manifest.check_rebuilt``). ``force`` rebuilds present files too. A variant that cannot be made (no calibration
    data without ``../shared``, a failed export) is listed under ``skipped`` with the reason and the run goes on.
    Returns ``{"checked": [...], "skipped": {file: reason}}``; ``ok`` is False when a rebuilt file fails its check."""
    wd = Path(weights_dir) if weights_dir else WEIGHTS_DIR
    todo = manifest.rebuildable(wd, names, missing_only=not force)
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for m in todo:
        r = m["rebuild"]
        groups.setdefault((r["from"], int(r.get("qat_epochs", 1))), []).append(m)
    checked: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for (src, qat), entries in groups.items():
        srcf = wd / src
        if not srcf.is_file():
            for m in entries:
                skipped[m["file"]] = f"{srcf} (the committed source) not found"
            continue
        formats = [m["rebuild"]["format"] for m in entries]
        try:
            rep = _export(srcf, formats, wd, qat)
        except (FileNotFoundError, ValueError, RuntimeError) as e:
            # one format's missing data (int8 calibration) must not cost the others: retry them one by one
            rep = {"files": {}, "skipped": {}}
            for m in entries:
                fmt = m["rebuild"]["format"]
                try:
                    rep["files"].update(_export(srcf, [fmt], wd, qat)["files"])
                except (FileNotFoundError, ValueError, RuntimeError) as e1:
                    need = f" (needs {m['rebuild']['needs']})" if m["rebuild"].get("needs") else ""
                    skipped[m["file"]] = f"{type(e1).__name__}: {str(e1).splitlines()[0]}{need}"
            LOG.info("rebuild %s %s: %s; retried one format at a time", src, formats, e)
        for m in entries:
            fmt = m["rebuild"]["format"]
            key = {"onnx-fp16": "onnx-fp16"}.get(fmt, fmt)
            f = wd / m["file"]
            if m["file"] in skipped:
                continue
            if not f.is_file():
                skipped[m["file"]] = str((rep.get("skipped") or {}).get(fmt) or "export made no file")
                continue
            checked.append(manifest.check_rebuilt(m, f, (rep.get("files") or {}).get(key)))
    res = {"checked": checked, "skipped": skipped, "ok": all(c["ok"] for c in checked)}
    if verbose:
        for c in checked:
            fig = (f"  {c['metric']} {c['rebuilt']:.4g} (released {c['released']:.4g}, tolerance {c['tolerance']:g})"
                   if c.get("metric") and c.get("rebuilt") is not None else "")
            print(f"{'ok' if c['ok'] else 'DIFFERS':>7}  {c['file']:<32} check {c['check']}{fig}"
                  + (f"  ({c['note']})" if c.get("note") else ""))
        for f, why in skipped.items():
            print(f"skipped  {f:<32} {why}")
        if not todo:
            print(f"nothing to rebuild: every variant in {wd / 'manifest.json'} is present (--force rebuilds)")
    return res


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rebuild", action="store_true",
                   help="make the weight variants that are not committed (weights/manifest.json) from the committed "
                        "files and check them against the manifest; int8 needs the datasets built from ../shared")
    p.add_argument("--force", action="store_true", help="--rebuild: also remake the variants already present")
    p.add_argument("--model", default=None, help="ultralytics .pt checkpoint, a Faster R-CNN checkpoint "
                   "(ONNX fp32/fp16; torch-fp16: a float16 checkpoint) or a crop-classifier checkpoint")
    p.add_argument("--formats", nargs="+", default=None, choices=PRECISIONS + CLS_ALL_FORMATS,
                   metavar="FORMAT", help=f"detector: {' '.join(PRECISIONS)} (default all); classifier: "
                   f"{' '.join(CLS_ALL_FORMATS)} (default all but torch-int8-qat, which fine-tunes; fp32/fp16/int8 "
                   "mean the ONNX ones)")
    p.add_argument("--imgsz", type=int, default=None, help="detector input size (default 320); a classifier "
                                                           "keeps its checkpoint's")
    p.add_argument("--data", default=str(DATASETS_DIR / "facewear4.yaml"),
                   help="detector: spec whose train split calibrates int8")
    p.add_argument("--calib", type=int, default=None, help="calibration images (detector 200, classifier 256)")
    p.add_argument("--calib-dir", default=None, metavar="DIR",
                   help="classifier: crop folder that calibrates int8 (a crop-dataset root uses train to "
                        "calibrate, val to check; default $FACEWEAR_BUILD/crops)")
    p.add_argument("--out-dir", default=None, help="where the exports go (default: beside the .pt; "
                                                           "--rebuild: the weights folder, default weights/)")
    p.add_argument("--check", type=int, default=None,
                   help="samples for the agreement check (detector 8 images, classifier 64 crops)")
    p.add_argument("--bench", action="store_true",
                   help="also time each export (detector: torch too, 1 and 2 threads; classifier: batch 1, 1 thread)")
    p.add_argument("--qat-epochs", type=int, default=1,
                   help="classifier torch-int8-qat: epochs of quantization-aware fine-tuning on the train crops")
    p.add_argument("--json", dest="json_out", default=None,
                   help="report file (classifier default: <out-dir>/<stem>.export.json)")
