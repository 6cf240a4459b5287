"""Faster R-CNN export: a checkpoint to ONNX fp32 and fp16 (and a float16 checkpoint), each checked against torch.

``facewear export --model X.pt`` routes a Faster R-CNN checkpoint here (``detection.export.run``). It writes,
beside the checkpoint (or into ``out_dir``), each file atomically:

* ``<stem>.onnx`` (``fp32``): ``torch.onnx.export`` (TorchScript exporter, ``dynamo=False``, opset
  ``FRCNN_ONNX_OPSET``) of :class:`detection.frcnn.ExportWrapper`: input ``images`` ``(1, 3, H, W)`` float32
  RGB in [0, 1] with dynamic H and W (resize the frame so its long side is ``imgsz`` first), outputs ``boxes``
  ``(N, 4)`` x1y1x2y2 in input pixels, ``scores`` ``(N,)``, ``labels`` ``(N,)`` int64 class ids 0..3; the
  network's score threshold (``FRCNN_SCORE_THRESH``), class-wise NMS and detection cap are in the graph.
  Metadata: ``arch``, ``class_names`` (JSON), ``imgsz``, ``precision``, ``preprocess``, ``outputs``.
* ``<stem>-fp16.onnx`` (``fp16``): float16 *weights*, float32 compute (a ``Cast`` after each weight). onnxruntime's
  float16 converter produces invalid graphs on torchvision's detection graph (duplicate cast names and dangling
  inputs around the ``If`` sub-graphs of the batched NMS, measured with onnxruntime 1.31), so only the storage
  is halved; on CPUs without fast fp16 arithmetic that is what fp16 buys anyway. Skipped, with the reason in the
  report, when it fails or disagrees with torch.
* ``<stem>-fp16.pt`` (``torch-fp16``, on request): the checkpoint with float16 weights
  (:func:`detection.frcnn.half_checkpoint`), which the detector loads back in float32.

The agreement check runs torch and each export on sample frames (the spec's val images when readable, plus a
portrait frame so that a second input shape is tried): for every torch detection with score >=
``FRCNN_CHECK_CONF`` the export must give one of the same class at IoU >= 0.5; the report holds the share
matched and the largest box and score difference of the matched pairs.
"""
from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from facewear.boxes import iou_matrix
from facewear.constants import DATASETS_DIR, FRCNN_CHECK_CONF, FRCNN_ONNX_OPSET
from facewear.formats import AnnotationError, yolo_rows
from facewear.io import (
    ImageReadError,
    atomic_path,
    list_images,
    portable_path,
    portable_paths,
    read_image,
    write_json,
)
from facewear.ort import set_metadata

from .model import (
    ONNX_INPUT,
    ONNX_OUTPUTS,
    ExportWrapper,
    half_checkpoint,
    load_checkpoint,
    resize_long,
    to_input,
)

LOG = logging.getLogger("facewear.frcnn.export")
FORMATS: tuple[str, ...] = ("fp32", "fp16", "torch-fp16")
DEFAULT_FORMATS: tuple[str, ...] = ("fp32", "fp16")
MIN_MATCHED = 0.9  # an fp16 export that reproduces fewer of the torch detections is dropped as disagreeing
PREPROCESS = ("BGR frame -> resize so the long side is imgsz (aspect kept, no padding) -> RGB -> float32 / 255 -> "
              "(1, 3, H, W); boxes come back in the resized frame's pixels")

Outputs = tuple[np.ndarray, np.ndarray, np.ndarray]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the TorchScript tracer and exporter chatter (torchvision's detection code is trace-aware)."""
    import torch

    with warnings.catch_warnings():
        for cat in (DeprecationWarning, FutureWarning, UserWarning, torch.jit.TracerWarning):
            warnings.simplefilter("ignore", cat)
        yield


def _set_meta(m: Any, meta: dict[str, Any], precision: str, imgsz: int) -> None:
    props = {"arch": meta["arch"], "class_names": json.dumps(list(meta["class_names"])), "imgsz": str(imgsz),
             "precision": precision, "preprocess": PREPROCESS,
             "outputs": "boxes (N, 4) x1y1x2y2 input pixels; scores (N,); labels (N,) int64 class ids 0-based"}
    set_metadata(m, props)


def export_onnx(model: Any, meta: dict[str, Any], out: str | Path, imgsz: int, opset: int = FRCNN_ONNX_OPSET) -> Path:
    """fp32 ONNX with dynamic height and width, checked by ``onnx.checker``; written atomically."""
    import onnx
    import torch

    out = Path(out)
    w = ExportWrapper(model).eval()
    # trace on a non-square random frame, so that height and width are not aliased
    x = torch.rand(1, 3, imgsz, max(32, round(imgsz * 0.75)), generator=torch.Generator().manual_seed(0))
    dyn = {ONNX_INPUT: {2: "H", 3: "W"}, **{o: {0: "N"} for o in ONNX_OUTPUTS}}
    with atomic_path(out) as tmp, _quiet():
        torch.onnx.export(w, (x,), str(tmp), dynamo=False, opset_version=opset, input_names=[ONNX_INPUT],
                          output_names=list(ONNX_OUTPUTS), dynamic_axes=dyn, do_constant_folding=True)
        m = onnx.load(str(tmp))
        _set_meta(m, meta, "fp32", imgsz)
        onnx.checker.check_model(m)
        onnx.save(m, str(tmp))
    return out


def export_onnx_fp16(fp32: str | Path, out: str | Path, meta: dict[str, Any], imgsz: int, min_elems: int = 16) -> Path:
    """float16 weights (initializers with at least ``min_elems`` values), each cast back to float32 in the graph."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out = Path(out)
    m = onnx.load(str(fp32))
    g = m.graph
    casts = []
    for t in list(g.initializer):
        if t.data_type != TensorProto.FLOAT or int(np.prod(t.dims)) < min_elems:
            continue
        h = numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), f"{t.name}_fp16")
        g.initializer.remove(t)
        g.initializer.append(h)
        casts.append(helper.make_node("Cast", [h.name], [t.name], to=TensorProto.FLOAT, name=f"{t.name}_to_fp32"))
    for c in reversed(casts):
        g.node.insert(0, c)
    _set_meta(m, meta, "fp16", imgsz)
    m.metadata_props.add(key="fp16", value="weights stored as float16, computed in float32")
    onnx.checker.check_model(m)
    with atomic_path(out) as tmp:
        onnx.save(m, str(tmp))
    return out


# --- checks -------------------------------------------------------------------------------------
def sample_frames(data: str | Path | None, imgsz: int, n: int) -> tuple[list[np.ndarray], str]:
    """Up to ``n`` - 1 preprocessed frames from ``data``'s val (else train, else test) split, plus one random
    portrait frame, and what they are, in words (for the manifest's ``rebuild.agreement.with``).

    The frames are evenly spaced over the split's images that have at least one well-formed labelled box (all
    images when none has one): a trained detector finds nothing on background frames, and a check on no detections
    would pass whatever the export computes. Each frame is ``resize_long`` to ``imgsz`` and ``to_input``
    (float32, 1x3xHxW, 0..1). Unreadable images are skipped with a warning; a missing or bad spec leaves only
    the random frame (the description says so)."""
    from facewear.data.layout import load_spec, split_paths

    frames: list[np.ndarray] = []
    what = "no dataset images"
    if data is not None and n > 0:
        try:
            spec = load_spec(data)
            split = "val" if "val" in spec else ("train" if "train" in spec else "test")
            images, labels = split_paths(spec, split)[:2]
            files = list_images(images)
            why = f"none in the {split} split of {portable_path(data)}"
        except (FileNotFoundError, ValueError) as e:
            LOG.info("agreement check without dataset images (%s)", e)
            files, why = [], portable_paths(str(e))
        boxed = [f for f in files if _has_boxes(labels / f.relative_to(images).with_suffix(".txt"))]
        pool = boxed or files
        if pool and n > 1:
            pool = [pool[round(i)] for i in np.linspace(0, len(pool) - 1, min(n - 1, len(pool)))]
        for f in pool[: n - 1]:
            try:
                frames.append(read_image(f))
            except ImageReadError as e:
                LOG.warning("%s (skipped)", e)
        what = (f"{len(frames)} {'labelled' if boxed else 'unlabelled'} {split} images of {portable_path(data)} "
                "evenly spaced") if files else f"no dataset images ({why})"
    rng = np.random.default_rng(0)
    frames.append(rng.integers(0, 256, (imgsz, max(32, imgsz * 3 // 5), 3), dtype=np.uint8))
    return ([to_input(resize_long(f, imgsz)[0]) for f in frames],
            f"{what}, and one random portrait frame (detection.frcnn.export.sample_frames)")


def _has_boxes(label_file: Path) -> bool:
    """Whether a YOLO label file holds at least one well-formed row (``facewear.formats.yolo_rows``); a missing,
    unreadable or malformed file counts as unlabelled, so the check draws on another frame."""
    try:
        return bool(yolo_rows(label_file))
    except (AnnotationError, OSError, UnicodeDecodeError):
        return False


def agreement(ref: Callable[[np.ndarray], Outputs], other: Callable[[np.ndarray], Outputs],
              samples: list[np.ndarray], conf: float = FRCNN_CHECK_CONF) -> dict[str, Any]:
    """How well ``other`` reproduces ``ref``'s detections (score >= ``conf``) on ``samples``."""
    tot = hit = 0
    box_d: list[float] = []
    score_d: list[float] = []
    for x in samples:
        b0, s0, l0 = (np.asarray(v) for v in ref(x))
        b1, s1, l1 = (np.asarray(v) for v in other(x))
        k0, k1 = s0 >= conf, s1 >= conf
        b0, s0, l0, b1, s1, l1 = b0[k0], s0[k0], l0[k0], b1[k1], s1[k1], l1[k1]
        tot += len(b0)
        if not len(b0) or not len(b1):
            continue
        iou = np.where(l0[:, None] == l1[None, :], iou_matrix(b0.astype(np.float64), b1.astype(np.float64)), 0.0)
        j = iou.argmax(1)
        ok = iou[np.arange(len(b0)), j] >= 0.5
        hit += int(ok.sum())
        if ok.any():
            box_d.append(float(np.abs(b0[ok] - b1[j[ok]]).max()))
            score_d.append(float(np.abs(s0[ok] - s1[j[ok]]).max()))
    return {"samples": len(samples), "conf": conf, "detections_torch": tot,
            "detections_matched": hit / tot if tot else 1.0,
            "max_box_diff": max(box_d, default=0.0), "max_score_diff": max(score_d, default=0.0)}


def torch_forward(model: Any) -> Callable[[np.ndarray], Outputs]:
    """The torch model as a function of the ONNX input."""
    import torch

    w = ExportWrapper(model).eval()

    def f(x: np.ndarray) -> Outputs:
        with torch.inference_mode():
            b, s, lab = w(torch.from_numpy(x))
        return b.numpy(), s.numpy(), lab.numpy()

    return f


def onnx_forward(path: str | Path, threads: int = 1) -> Callable[[np.ndarray], Outputs]:
    """An onnxruntime session as a function (one thread by default: the checks need no speed)."""
    from facewear.ort import ort_session

    sess = ort_session(path, threads)
    name = sess.get_inputs()[0].name
    return lambda x: tuple(sess.run(None, {name: x}))  # type: ignore[return-value]


# --- the verb -----------------------------------------------------------------------------------
def run(model: str | Path, formats: list[str] | tuple[str, ...] | None = None, imgsz: int | None = None,
        data: str | Path | None = str(DATASETS_DIR / "facewear4.yaml"), out_dir: str | Path | None = None,
        check: int = 4, bench: bool = False, json_out: str | Path | None = None) -> dict[str, Any]:
    """Export a Faster R-CNN checkpoint to ``formats`` (default fp32 and fp16 ONNX), check each against torch,
    optionally time them (``bench``); returns the report (also written to ``json_out``)."""
    pt = Path(model)
    fmts = tuple(DEFAULT_FORMATS if formats is None else formats)
    if "int8" in fmts:
        raise ValueError(f"{pt}: int8 is not supported for Faster R-CNN (choose from {', '.join(FORMATS)})")
    bad = [f for f in fmts if f not in FORMATS]
    if bad:
        raise ValueError(f"{pt}: unknown format(s) {bad} for Faster R-CNN (choose from {', '.join(FORMATS)})")
    net, meta = load_checkpoint(pt)  # FileNotFoundError / ValueError naming the file
    imgsz = int(imgsz or meta["imgsz"])
    out = Path(out_dir) if out_dir else pt.parent
    out.mkdir(parents=True, exist_ok=True)
    samples, samples_from = sample_frames(data, imgsz, check)
    ref = torch_forward(net)
    report: dict[str, Any] = {"model": str(pt), "arch": meta["arch"], "imgsz": imgsz, "files": {}, "skipped": {},
                              "samples_from": samples_from}
    files: dict[str, Path] = {}

    def record(prec: str, f: Path, ag: dict[str, Any]) -> None:
        report["files"][prec] = {"file": str(f), "bytes": f.stat().st_size, **ag}
        print(f"{prec:>10}: {f.name:<32} {f.stat().st_size / 1e6:6.2f} MB  max|box diff| {ag['max_box_diff']:.4g} px"
              f"  detections matched {ag['detections_matched'] * 100:5.1f}% of {ag['detections_torch']}")

    if "fp32" in fmts or "fp16" in fmts:
        fp32 = export_onnx(net, meta, out / f"{pt.stem}.onnx", imgsz) if "fp32" in fmts else None
        if fp32 is not None:
            files["fp32"] = fp32
            record("fp32", fp32, agreement(ref, onnx_forward(fp32), samples))
        if "fp16" in fmts:
            import tempfile

            with tempfile.TemporaryDirectory(prefix="facewear-frcnn-") as td:
                src = fp32 or export_onnx(net, meta, Path(td) / "fp32.onnx", imgsz)
                f16 = out / f"{pt.stem}-fp16.onnx"
                try:
                    export_onnx_fp16(src, f16, meta, imgsz)
                    ag = agreement(ref, onnx_forward(f16), samples)
                except Exception as e:  # noqa: BLE001 - onnx/onnxruntime raise many types; the report says which
                    f16.unlink(missing_ok=True)
                    report["skipped"]["fp16"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                else:
                    if ag["detections_matched"] < MIN_MATCHED:
                        f16.unlink(missing_ok=True)
                        report["skipped"]["fp16"] = (f"disagrees with torch: {ag['detections_matched'] * 100:.1f}% of "
                                                     f"{ag['detections_torch']} detections matched")
                    else:
                        files["fp16"] = f16
                        record("fp16", f16, ag)
    if "torch-fp16" in fmts:
        f = half_checkpoint(pt, out / f"{pt.stem}-fp16.pt")
        record("torch-fp16", f, agreement(ref, torch_forward(load_checkpoint(f)[0]), samples))
    for prec, why in report["skipped"].items():
        print(f"{prec:>10}: skipped ({why})")
        LOG.warning("%s: %s export skipped (%s)", pt, prec, why)
    if bench:
        from ..speed import time_variants

        report["latency"] = time_variants(pt, files, imgsz)
    if json_out:  # a committed report: no machine paths (facewear.io.portable_paths)
        from facewear.io import portable_paths

        write_json(json_out, portable_paths(report))
    return report
