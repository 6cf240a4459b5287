"""``facewear bench --suite card``: the model card ``weights/README.md``, every shipped model compared on this machine.

One command, one report. For each model (by default every model the project ships, found through
``weights/manifest.json`` and the files in ``weights/``; the variants that are not committed are rebuilt first
with ``facewear export --rebuild``, and those that cannot be made or found are listed as skipped with the reason):

* mAP50, mAP50-95 and AP50 per class on the held-out real set (``ilc-heldout.yaml``, test split), through
  ``facewear val``'s code (``detect_split`` + ``evaluate``: pycocotools, conf 0.001, NMS IoU 0.6);
* AP50 per class on the synthetic val split (``facewear4.yaml`` val), where sunglasses and mask_sunglasses are
  plentiful;
* how it fails, from the same detections: share of true faces found per class (IoU >= 0.5, score >= 0.25) and
  named right once found (``detection.cascade_bench.found_and_named``), and false boxes per image;
* file size (a cascade: the sum of its files);
* latency p50/p95 at batch 1 with 1 and 2 threads after a warm-up: end to end on one held-out image for every
  model (``detection.speed.cascade_latency``: pre-processing, network, NMS, crops and classifier), and the
  network forward alone for detector files (``detection.speed.time_variants``);
* end-to-end video FPS of ``facewear predict`` (``detection.speed.video_fps``) when a video is given (default:
  ``../shared/data/videos/faces_stage.mp4`` when present; ``--video none`` turns it off).

Writes the card (markdown), ``card.json`` beside it with every number, ``plots/card_*.png`` beside it, and, when
the card goes to its default place (or ``readme`` says so), the headline table into the main README between
``<!-- card:begin -->`` and ``<!-- card:end -->``. Every figure comes from the run; the only hand-written text is
what each kind of model is.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shlex
import sys
import traceback
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from facewear.constants import (
    CASCADE_SEP,
    CLASS_NAMES,
    DATASETS_DIR,
    REPO_ROOT,
    WEIGHTS_DIR,
    default_data_root,
)
from facewear.io import atomic_path, portable_paths, write_json, write_marked_block, write_text
from facewear.metrics import DetMetrics

from .registry import is_cascade_spec, parse, split_spec

LOG = logging.getLogger("facewear.card")

CARD = WEIGHTS_DIR / "README.md"
README = REPO_ROOT / "README.md"
BEGIN, END = "<!-- card:begin -->", "<!-- card:end -->"
YOLO_STEM = "yolov5n-facewear4"
CLS_FILE = "facewear-cls.onnx"
ONNX_SUFFIXES = (("fp32", ""), ("fp16", "-fp16"), ("int8", "-int8"))
FEW = 200  # fewer held-out faces of a class than this: its held-out AP50 is called noisy
RARE = ("sunglasses", "mask_sunglasses")
CONF = 0.25  # the score at which found / named / false boxes are counted (val's report_conf)
THREADS: tuple[int, ...] = (1, 2)  # thread counts the latencies are measured at


# --- which models ------------------------------------------------------------------------
def _manifest_files(weights_dir: Path) -> list[str]:
    f = weights_dir / "manifest.json"
    try:
        models = json.loads(f.read_text()).get("models", []) if f.is_file() else []
    except (OSError, ValueError) as e:
        LOG.warning("%s: unreadable (%s); using the files present", f, e)
        return []
    return [m["file"] for m in models if m.get("task") == "detect" and m.get("file")]


def _family_order(name: str) -> tuple[int, str]:
    """YOLO first (torch, ONNX fp32, fp16, int8), then Faster R-CNN, then anything else."""
    p = Path(name)
    fam = 0 if p.name.startswith("yolo") else 1 if p.name.startswith("frcnn") else 2
    prec = next((i for i, (_, s) in enumerate(ONNX_SUFFIXES) if p.stem.endswith(s) and s), 0)
    return fam * 10 + (0 if p.suffix == ".pt" else 1) * 4 + prec, p.stem


def build_missing(weights_dir: str | Path = WEIGHTS_DIR) -> dict[str, str]:
    """Rebuild the card's variants that are not committed (``export.rebuild_variants``: the detectors' ONNX files
    and the cascades' classifier ONNX) before the card looks for them, when they are absent or left from an
    earlier release (``manifest.stale``); ``{file: why it could not be made}``.

    Without ``../shared`` (no built dataset to calibrate int8 on) those files are skipped with that reason."""
    from .export import rebuild_variants
    from .manifest import load_from

    wanted = [m["file"] for m in load_from(weights_dir)["models"]
              if m.get("committed") is False and (m.get("task") == "detect" or m["file"] == CLS_FILE)]
    if not wanted:
        return {}
    try:
        return rebuild_variants(weights_dir, names=wanted)["skipped"]
    except Exception as e:  # noqa: BLE001 - a failed rebuild leaves the files missing; the card lists why
        LOG.warning("rebuilding the missing variants failed: %s", e)
        return dict.fromkeys(wanted, f"rebuild failed: {type(e).__name__}: {str(e)[:200]}")


def default_models(weights_dir: str | Path = WEIGHTS_DIR,
                   why_missing: dict[str, str] | None = None) -> tuple[list[str], list[dict[str, str]]]:
    """Every model the project ships, and the ones it would ship but cannot find: ``(models, skipped)``.

    YOLOv5n ``.pt`` and its ONNX fp32/fp16/int8; Faster R-CNN ``frcnn*.pt|onnx`` ("not trained yet" when none);
    the cascades ``mtcnn+``, ``centerface+``, ``<yolo onnx>+`` and ``haar+`` the released classifier
    ``facewear-cls.onnx``.
    ``why_missing`` (file name -> reason, from :func:`build_missing`) replaces "not found" for those files.
    """
    wd = Path(_rel(weights_dir))
    why_missing = why_missing or {}
    skipped: list[dict[str, str]] = []
    names = set(_manifest_files(wd))
    names |= {p.name for pat in (f"{YOLO_STEM}*.pt", f"{YOLO_STEM}*.onnx", "frcnn*.pt", "frcnn*.onnx")
              for p in wd.glob(pat)}
    names |= {f"{YOLO_STEM}{s}.onnx" for _, s in ONNX_SUFFIXES} | {f"{YOLO_STEM}.pt"}
    models = []
    for n in sorted(names, key=_family_order):
        f = wd / n
        if f.is_file():
            models.append(str(f))
        else:
            skipped.append({"model": str(f), "reason": why_missing.get(n, f"{f} not found")})
    if not any(Path(m).name.startswith("frcnn") for m in models):
        skipped.append({"model": str(wd / "frcnn*.pt|onnx"),
                        "reason": f"Faster R-CNN not trained yet (no frcnn*.pt or frcnn*.onnx in {wd})"})
    cls = wd / CLS_FILE
    finder = wd / f"{YOLO_STEM}.onnx"
    for fnd in ("mtcnn", "centerface", str(finder), "haar"):
        spec = f"{fnd}{CASCADE_SEP}{cls}"
        reason = check_model(spec)
        if reason and not cls.is_file() and CLS_FILE in why_missing:
            reason = f"{cls}: {why_missing[CLS_FILE]}"
        if reason:
            skipped.append({"model": spec, "reason": reason})
        else:
            models.append(spec)
    return models, skipped


def check_model(model: str) -> str | None:
    """Why ``model`` cannot be put on the card (a missing file, an unknown finder), or None when it can."""
    if is_cascade_spec(model):
        try:
            spec = parse(model)
            finder, files = spec.finder, spec.files
        except (FileNotFoundError, ValueError) as e:
            return str(e)
        if finder.lower() == "mtcnn" and find_spec("facenet_pytorch") is None:
            return "facenet-pytorch (MTCNN) is not installed"
        missing = [f for f in files if not f.is_file()]
        return f"{missing[0]} not found" if missing else None
    p = Path(model)
    if not p.is_file():
        return f"{p} not found"
    if p.suffix not in (".pt", ".onnx"):
        return f"{p}: not a model file (.pt or .onnx)"
    return None


def describe(model: str) -> dict[str, str]:
    """``kind`` (yolo, frcnn, cascade), ``runtime`` and a generic sentence on what the model is."""
    if is_cascade_spec(model):
        finder, cls = split_spec(model)
        what = {"mtcnn": "MTCNN face finder (facenet-pytorch)",
                "haar": "OpenCV Haar frontal-face cascade (the classic baseline)"}.get(
            finder.lower(), f"`{Path(finder).name}` used as a one-class face finder")
        return {"kind": "cascade", "runtime": "mixed",
                "what": f"{what}, then the crop classifier `{Path(cls).name}` on each face"}
    p = Path(model)
    try:
        frcnn = parse(p).kind == "frcnn"
    except Exception:  # noqa: BLE001 - an unreadable file is reported by the evaluation, not here
        frcnn = p.name.startswith("frcnn")
    net = "Faster R-CNN (MobileNetV2 + FPN, torchvision)" if frcnn else "YOLOv5n four-class detector (ultralytics)"
    if p.suffix == ".pt":
        return {"kind": "frcnn" if frcnn else "yolo", "runtime": "torch", "what": f"{net}, checkpoint run by torch"}
    prec = _precision(model)
    how = {"fp32": "ONNX fp32", "fp16": "ONNX with float16 weights",
           "int8": "ONNX int8 (static QDQ quantization)"}[prec]
    return {"kind": "frcnn" if frcnn else "yolo", "runtime": "onnxruntime",
            "what": f"{net}, {how}, run by onnxruntime"}


def _precision(model: str) -> str:
    """fp32, fp16 or int8 of an ONNX file, from its name (``x-fp16.onnx``)."""
    return next((k for k, s in ONNX_SUFFIXES if s and Path(model).stem.endswith(s)), "fp32")


def _family_pt(model: str) -> Path | None:
    """The ``.pt`` a detector file was exported from (``x-fp16.onnx`` -> ``x.pt``), None for cascades."""
    if is_cascade_spec(model):
        return None
    p = Path(model)
    stem = p.stem
    for _, s in ONNX_SUFFIXES:
        if s and p.suffix == ".onnx" and stem.endswith(s):
            stem = stem[: -len(s)]
    return p.with_name(stem + ".pt")


# --- measuring ---------------------------------------------------------------------------
def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float):
        return None if math.isnan(x) else round(x, 4)
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_nan_to_none(v) for v in x]
    return x


def evaluate_model(model: str, data: str, split: str, imgsz: int | None, max_images: int | None,
                   slice: bool = False) -> dict[str, Any]:
    """``facewear val``'s metrics for ``model`` on ``data``'s ``split``, plus found / named per class and false
    boxes per image at score ``CONF``, and AP50 / recall on faces under 32 px (``small``). ``imgsz`` None: the
    model's own input size (recorded as ``imgsz``). ``slice``: sliced inference as ``facewear val --slice`` runs
    it (:mod:`detection.slicing`, default slice size and overlap; its settings recorded as ``slice``)."""
    from facewear.data.layout import load_spec

    from .cascade_bench import found_and_named, source_groups
    from .registry import load_detector
    from .sizes import small_faces
    from .slicing import maybe_sliced
    from .val import align_categories, detect_split, evaluate

    det = maybe_sliced(load_detector(model, imgsz=imgsz, conf=0.001, iou=0.6), slice)  # val's defaults
    spec = load_spec(data)
    gt, dets, spi = detect_split(det, spec, split, max_images, spread=True)
    by_source = None
    if spec.get("heldout"):  # the held-out photos carry their source labels (ILC's kinds of mask)
        try:
            by_source = found_and_named(gt, dets, conf=CONF, groups=source_groups(gt, data, split))
        except (FileNotFoundError, ValueError) as e:  # no source files here, or one unreadable: the rest stands
            LOG.warning("found / named by source label left out: %s", e)
    res = evaluate(gt, dets, det.names, CONF)
    nc = len(det.names)
    cm = res["confusion"]
    fp = sum(cm[k][nc] for k in range(nc))
    m = DetMetrics.from_json(res)
    return {"images": res["images"], "instances": res["instances"], **m.head(),
            "per_class": m.without_curves()["per_class"],
            "found": found_and_named(gt, dets, conf=CONF), "false_boxes_per_image": fp / max(res["images"], 1),
            **({"found_by_source_label": by_source} if by_source else {}),
            "ms_per_image": spi * 1000, "true_class": res.get("true_class", {}), "imgsz": getattr(det, "imgsz", None),
            "small": small_faces(align_categories(gt, tuple(det.names)), dets, tuple(det.names), CONF),
            **({"slice": det.settings()} if slice else {})}


def default_slice_models(models: list[str]) -> list[str]:
    """The models the card also measures with ``--slice``: the released YOLO checkpoint (``yolov5n-facewear4.pt``,
    run through sahi's own ultralytics model) when it is among ``models``."""
    return [m for m in models if not is_cascade_spec(m) and Path(m).name == f"{YOLO_STEM}.pt"]


def sliced_rows(slice_models: list[str], data: str, split: str,
                real_data: str | None, imgsz: int | None, max_images: int | None) -> list[dict[str, Any]]:
    """Each of ``slice_models`` evaluated with sliced inference on the same images as the card's rows (held-out
    and real checks); ``{"model", "spec", "heldout", "real"}`` per model. A model that fails is logged and left
    out (its unsliced row stands)."""
    from .registry import model_name

    out = []
    for m in slice_models:
        try:
            out.append({"model": model_name(m), "spec": m,
                        "heldout": evaluate_model(m, data, split, imgsz, max_images, slice=True),
                        "real": evaluate_model(m, real_data, "test", imgsz, None, slice=True) if real_data else None})
        except Exception:  # noqa: BLE001 - the rest of the card stands
            LOG.error("%s --slice failed:\n%s", m, traceback.format_exc())
            continue
        print(f"card: {out[-1]['model']} --slice: held-out mAP50 {out[-1]['heldout']['mAP50']:.4f}", flush=True)
    return out


def _spec_built(spec: Path) -> bool:
    """True when ``spec`` exists and its images folder has been built."""
    from facewear.data.layout import load_spec

    try:
        return spec.is_file() and Path(load_spec(spec)["path"]).is_dir()
    except (FileNotFoundError, ValueError, KeyError):
        return False


def _real_recall(r: dict, n: str, called: str | None = None) -> float | None:
    """Recall of true class ``n`` on the real checks at ``CONF`` (or the share called ``called``)."""
    tc = ((r.get("real") or {}).get("true_class") or {}).get(n)
    if not tc:
        return None
    return tc["recall"] if called is None else tc["as"].get(called)


def _input_text(res: dict[str, Any]) -> str:
    """``"320 px"`` for a card run at one ``--imgsz``; else each model's own input size, listed."""
    if res.get("imgsz"):
        return f"{res['imgsz']} px"
    sizes = {r["model"]: (r.get("heldout") or {}).get("imgsz") for r in res.get("rows", [])}
    return "each model's own size (" + ", ".join(f"{m} {s} px" for m, s in sizes.items() if s) + ")"


def network_latency(models: list[str], imgsz: int | None, iters: int,
                    threads: tuple[int, ...] = THREADS) -> dict[str, dict[str, Any]]:
    """Network-forward latency (``time_variants``) of every detector file in ``models``, grouped by the ``.pt``
    each was exported from; files without their ``.pt`` on disk, and cascades, get none. ``imgsz`` None: each
    ``.pt``'s own input size."""
    from .registry import load_detector
    from .speed import time_variants

    groups: dict[Path, list[str]] = {}
    for m in models:
        pt = _family_pt(m)
        if pt is not None and pt.is_file():
            groups.setdefault(pt, []).append(m)
    out: dict[str, dict[str, Any]] = {}
    for pt, ms in groups.items():
        keys = {m: "torch" if m.endswith(".pt") else f"onnx-{_precision(m)}" for m in ms}
        onnx = {k.removeprefix("onnx-"): Path(m) for m, k in keys.items() if k != "torch"}
        try:
            size = imgsz or load_detector(str(pt)).imgsz
            lat = time_variants(pt, onnx, size, threads=threads, iters=iters)
        except Exception as e:  # noqa: BLE001 - the end-to-end latency still stands
            LOG.warning("network latency of %s failed: %s", pt.name, e)
            continue
        out.update({m: lat[k] for m, k in keys.items() if k in lat})
    return out


def _latency_image(data: str) -> dict[str, Any]:
    """The image ``cascade_latency`` times on (the first of the evaluated split) and its number of faces."""
    from facewear.constants import IMAGE_SUFFIXES
    from facewear.data.layout import load_spec, split_paths
    from facewear.formats import yolo_rows

    s = load_spec(data)
    images, labels, _ = split_paths(s, "test" if "test" in s else "val")
    first = next((p for p in sorted(images.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES), None)
    if first is None:
        return {}
    lab = labels / first.relative_to(images).with_suffix(".txt")
    return {"file": first.name, "faces": len(yolo_rows(lab)) if lab.is_file() else None}


def _default_video() -> str | None:
    root = default_data_root()
    v = root / "videos" / "faces_stage.mp4" if root is not None else None
    return str(v) if v is not None and v.is_file() else None


def _rel(p: str | Path) -> str:
    """A path relative to the working directory when it lies below it (for the command line shown)."""
    s = str(p)
    try:
        r = os.path.relpath(s)
        return s if r.startswith("..") else r
    except ValueError:
        return s


def _command(kw: dict[str, Any]) -> str:
    """The command as typed (from ``sys.argv`` under ``facewear bench``), else rebuilt from the arguments."""
    if sys.argv[1:2] == ["bench"] and "card" in sys.argv:
        return "facewear bench " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    parts = ["facewear", "bench", "--suite", "card"]
    if kw.get("models"):
        parts += ["--model", *[_rel(m) if not is_cascade_spec(m) else m for m in kw["models"]]]
    if kw.get("slice_models") is not None:
        parts += ["--slice-model", *([_rel(m) for m in kw["slice_models"]] or ["none"])]
    for flag, key in (("--data", "data"), ("--synth-data", "synth_data"), ("--video", "video"), ("--out", "out"),
                      ("--imgsz", "imgsz"), ("--max-images", "max_images"), ("--iters", "iters")):
        if kw.get(key) is not None:
            parts += [flag, _rel(kw[key]) if key in ("data", "synth_data", "video", "out") else str(kw[key])]
    return " ".join(shlex.quote(p) for p in parts)


def run(models: list[str] | None = None, data: str | None = None, synth_data: str | None = None,
        video: str | None = None, out: str | None = None, max_images: int | None = None, iters: int | None = None,
        imgsz: int | None = None, readme: bool | str | None = None, command: str | None = None,
        weights_dir: str | None = None, threads: tuple[int, ...] | None = None,
        real_data: str | None = None, slice_models: list[str] | None = None) -> dict[str, Any]:
    """Measure ``models`` (default: every shipped model) and write the model card; returns all numbers.

    ``slice_models``: models also measured with sliced inference (``facewear val --slice``) on the held-out set
    and the real checks, beside their rows (default :func:`default_slice_models`: the released YOLO checkpoint;
    ``["none"]`` or ``[]``: none).

    ``real_data``: the real checks (default ``datasets/real-checks.yaml`` when built; ``"none"`` skips them):
    recall on real sunglasses and mask_sunglasses faces and the share of real sunglasses faces called ``face``.

    ``data``: held-out spec (its test split); ``synth_data``: synthetic spec (its val split; ``"none"`` skips it);
    ``video``: FPS video (default ``../shared/data/videos/faces_stage.mp4`` if present, ``"none"``: no video);
    ``out``: the card (default ``weights/README.md``; ``card.json`` and ``plots/card_*.png`` go beside it);
    ``readme``: README to get the headline block (True: the repository's; default: only when ``out`` is the
    default card; False: never); ``weights_dir``: where default models are looked for; ``threads``: latency
    thread counts (default ``THREADS``). Evaluation and video run at torch's thread count on entry.
    Raises FileNotFoundError when a spec is missing or no model at all can be measured.
    """
    import torch

    from facewear.timing import machine

    from .registry import model_bytes, model_name
    from .speed import cascade_latency, video_fps

    cmd = command or _command({"models": models, "data": data, "synth_data": synth_data, "video": video, "out": out,
                                   "imgsz": imgsz, "max_images": max_images, "iters": iters,
                                   "slice_models": slice_models})
    if real_data is None:  # the default: with the default held-out set, when the real checks are built
        real_default = DATASETS_DIR / "real-checks.yaml"
        default_held = DATASETS_DIR / "ilc-heldout.yaml"
        is_default = data is None or Path(data).resolve() == default_held.resolve()
        real_data = str(real_default) if is_default and _spec_built(real_default) else None
    elif str(real_data).lower() in ("", "none"):
        real_data = None
    data = data or str(DATASETS_DIR / "ilc-heldout.yaml")
    synth_data = str(DATASETS_DIR / "facewear4.yaml") if synth_data is None else synth_data
    synth_data = None if str(synth_data).lower() in ("", "none") else str(synth_data)
    video = _default_video() if video is None else (None if str(video).lower() in ("", "none") else str(video))
    out_p = Path(out) if out else CARD
    iters = iters or 50
    from facewear.data.layout import load_spec

    data = str(data)
    held_spec = load_spec(data)  # clear errors before any model runs
    held_split = "test" if "test" in held_spec else "val"
    if synth_data is not None:
        load_spec(synth_data)
    if video is not None and not Path(video).is_file():
        raise FileNotFoundError(f"{video}: video not found")

    skipped: list[dict[str, str]] = []
    if models is None:  # every shipped model: the variants that are not committed are rebuilt first
        wd = weights_dir or WEIGHTS_DIR
        models, skipped = default_models(wd, build_missing(wd))
    todo = []
    for m in models:
        reason = check_model(str(m))
        if reason:
            LOG.warning("skipped %s: %s", m, reason)
            skipped.append({"model": str(m), "reason": reason})
        else:
            todo.append(str(m))
    if not todo:
        raise FileNotFoundError("no model to put on the card: " + "; ".join(s["reason"] for s in skipped))

    threads = tuple(threads or THREADS)
    n0 = torch.get_num_threads()  # the timing helpers leave torch at all cores; evaluation keeps the caller's
    net = network_latency(todo, imgsz, iters, threads)
    torch.set_num_threads(n0)
    rows = []
    for m in todo:
        try:
            row: dict[str, Any] = {"model": model_name(m), "spec": m, **describe(m),
                                   "MB": round(model_bytes(m) / 1e6, 3)}
            row["heldout"] = evaluate_model(m, data, held_split, imgsz, max_images)
            row["synth"] = evaluate_model(m, synth_data, "val", imgsz, max_images) if synth_data else None
            # real sunglasses faces (held-out photos that hold them, and cmu-faces): measured, never tuned on
            row["real"] = evaluate_model(m, real_data, "test", imgsz, None) if real_data else None
            lat = cascade_latency(m, data, imgsz, threads=threads, iters=iters)
            torch.set_num_threads(n0)
            row["latency"] = {"end_to_end": lat, "network": net.get(m)}
            row["video"] = video_fps(m, video, imgsz) if video else None
        except Exception as e:  # noqa: BLE001 - one broken model must not lose a long run: listed as skipped
            LOG.error("%s failed:\n%s", m, traceback.format_exc())
            skipped.append({"model": m, "reason": f"failed: {type(e).__name__}: {str(e)[:200]}"})
            continue
        finally:
            torch.set_num_threads(n0)
        rows.append(row)
        print(f"card: {row['model']}: held-out mAP50 {row['heldout']['mAP50']:.4f}", flush=True)

    if slice_models is None:
        slice_models = default_slice_models([r["spec"] for r in rows])
    slice_models = [m for m in slice_models if str(m).lower() not in ("", "none")]
    sliced = sliced_rows(slice_models, data, held_split, real_data, imgsz, max_images)

    res: dict[str, Any] = {
        "machine": machine(), "command": cmd, "data": _rel(data), "split": held_split,
        "synth_data": _rel(synth_data) if synth_data else None, "imgsz": imgsz, "iters": iters,
        "max_images": max_images, "conf": CONF, "threads": list(threads), "latency_image": _latency_image(data),
        "video": _rel(video) if video else None, "rows": rows, "sliced": sliced, "skipped": skipped}
    res = portable_paths(_nan_to_none(res))  # a committed report: no machine paths
    json_p = out_p.parent / "card.json"
    plots_dir = out_p.parent / "plots"
    res["plots"] = [os.path.relpath(p, out_p.parent) for p in plot_card(res, plots_dir)]
    write_json(json_p, res)
    write_text(out_p, card_markdown(res))
    target = _readme_target(readme, out_p)
    if target is not None:
        write_readme_block(target, headline_markdown(res, link=os.path.relpath(out_p, target.parent)))
    print(f"card: {out_p}, {json_p}, {len(rows)} models, {len(skipped)} skipped", flush=True)
    return res


def _readme_target(readme: bool | str | None, out: Path) -> Path | None:
    if readme is False:
        return None
    if readme is None:
        return README if out.resolve() == CARD.resolve() else None
    return README if readme is True else Path(readme)


# --- writing -----------------------------------------------------------------------------
def _f(v: Any, fmt: str = ".3f") -> str:
    return "n/a" if v is None else format(v, fmt)


def _lat(d: dict | None, key: str) -> str:
    x = (d or {}).get(key)
    return "-" if not x else f"{x['p50_ms']:.1f} / {x['p95_ms']:.1f}"


def _p50(r: dict, key: str = "1t") -> float | None:
    return ((r.get("latency") or {}).get("end_to_end") or {}).get(key, {}).get("p50_ms")


def _synth_ap(r: dict, n: str) -> float | None:
    return (r.get("synth") or {}).get("per_class", {}).get(n, {}).get("AP50")


def headline_table(res: dict) -> list[str]:
    """One row per model: what it is, size, held-out mAP, synthetic AP50 of the rare classes, latency, FPS."""
    th = res.get("threads") or list(THREADS)
    lines = ["| model | what | MB | held-out mAP50 | held-out mAP50-95 | synth AP50 sunglasses | "
             "synth AP50 mask_sunglasses | real sunglasses recall | real sunglasses called face | "
             "real mask_sunglasses recall | " + " | ".join(f"p50 ms {t}t" for t in th) + " | video FPS |",
             "|---|---|" + "---:|" * (9 + len(th))]
    for r in res["rows"]:
        v = r.get("video")
        lines.append(f"| `{r['model']}` | {r['what']} | {r['MB']:.2f} | {_f(r['heldout']['mAP50'])} | "
                     f"{_f(r['heldout']['mAP50-95'])} | {_f(_synth_ap(r, 'sunglasses'))} | "
                     f"{_f(_synth_ap(r, 'mask_sunglasses'))} | {_f(_real_recall(r, 'sunglasses'))} | "
                     f"{_f(_real_recall(r, 'sunglasses', 'face'))} | {_f(_real_recall(r, 'mask_sunglasses'))} | "
                     + " | ".join(_f(_p50(r, f"{t}t"), ".1f") for t in th)
                     + f" | {_f(v['fps'], '.1f') if v else '-'} |")
    return lines


def _skipped_lines(res: dict) -> list[str]:
    if not res["skipped"]:
        return []
    return ["", "Skipped:", ""] + [f"* `{s['model']}`: {s['reason']}" for s in res["skipped"]]


def _setup_line(res: dict) -> str:
    li = res.get("latency_image") or {}
    img = f"`{li.get('file')}` ({li.get('faces')} faces)" if li else "the first image of the split"
    return (f"Latency: batch 1, p50 / p95 ms after a warm-up, {res['iters']} timed runs, at "
            f"{' and '.join(str(t) for t in res.get('threads') or THREADS)} threads (`Nt`). "
            f"*End to end* is one call of the model on {img} of the held-out split, the same image for every "
            f"model: pre-processing, network, NMS and, for a cascade, cropping and classifying every face "
            f"(score >= {res['conf']}). *Network* is the forward pass alone on a random {_input_text(res)} input "
            f"(detector files only). Video FPS: `facewear predict --track --save-crops` end to end"
            + (f" on `{Path(res['video']).name}`." if res.get("video") else " (no video given)."))


def _instances_line(res: dict) -> str:
    if not res["rows"]:
        return ""
    inst = res["rows"][0]["heldout"]["instances"]
    txt = (f"Held-out set `{Path(res['data']).name}` split `{res['split']}`: {res['rows'][0]['heldout']['images']} "
           f"images, " + ", ".join(f"{n} {inst.get(n, 0)}" for n in CLASS_NAMES) + " faces.")
    few = [n for n in RARE if inst.get(n, 0) < FEW]
    if few:
        txt += (f" Only {' and '.join(f'{inst.get(n, 0)} {n}' for n in few)} faces: their held-out AP50 rests on "
                f"few faces and is noisy, so the synthetic val columns judge those classes (the synthetic overlays "
                f"share templates with training, so they flatter every model).")
    s = res["rows"][0].get("synth")
    if s:
        txt += (f" Synthetic val (`{Path(res['synth_data']).name}` split `val`): {s['images']} images, "
                + ", ".join(f"{n} {s['instances'].get(n, 0)}" for n in CLASS_NAMES) + " faces.")
    return txt


def failure_notes(res: dict) -> list[str]:
    """One generated line per model: its weakest class by faces found, by naming once found, and false boxes."""
    out = []
    for r in res["rows"]:
        fd = {n: v for n, v in r["heldout"]["found"].items() if v.get("found") is not None}
        if not fd:
            continue
        miss = min(fd, key=lambda n: fd[n]["found"])
        named = {n: v["named_if_found"] for n, v in fd.items() if v.get("named_if_found") is not None}
        parts = [f"finds {fd[miss]['found']:.0%} of the `{miss}` faces (its weakest class, n={fd[miss]['n']})"]
        if named:
            wrong = min(named, key=named.get)
            parts.append(f"names {named[wrong]:.0%} of the `{wrong}` faces it finds right")
        parts.append(f"{r['heldout']['false_boxes_per_image']:.2f} boxes per image match no face")
        out.append(f"* `{r['model']}`: " + "; ".join(parts) + ".")
    return out


def source_label_section(res: dict) -> list[str]:
    """The found / named table by the held-out set's own labels (rows that measured it), else nothing."""
    rows = [r for r in res["rows"] if r["heldout"].get("found_by_source_label")]
    if not rows:
        return []
    groups = list(dict.fromkeys(g for r in rows for g in r["heldout"]["found_by_source_label"]))
    out = ["", ("The same, by the held-out set's own labels (`detection.cascade_bench.source_groups`): ILC 2021 "
                "tells masks worn right (`with_mask`) from masks worn wrong (`with_incorrect_mask`: under the nose, "
                "on the chin or forehead; both are `mask` here); *named* is still the true class."), "",
           "| model | " + " | ".join(f"{g} found / named" for g in groups) + " |",
           "|---|" + "---:|" * len(groups)]
    for r in rows:
        fb = r["heldout"]["found_by_source_label"]
        cells = []
        for g in groups:
            f = fb.get(g, {})
            cells.append("-" if f.get("found") is None else
                         f"{f['found']:.0%} / " + ("-" if f.get("named_if_found") is None
                                                   else f"{f['named_if_found']:.0%}") + f" (n {f['n']})")
        out.append(f"| `{r['model']}` | " + " | ".join(cells) + " |")
    return out


def card_markdown(res: dict) -> str:
    """The whole model card."""
    cn = CLASS_NAMES
    th = res.get("threads") or list(THREADS)
    held_n = res["rows"][0]["heldout"]["instances"] if res["rows"] else {}
    lines = ["# facewear model card", "",
             "<!-- written by `facewear bench --suite card` (detection/card.py); do not edit by hand -->", "",
             f"Machine: {res['machine']}  ", f"Command: `{res['command']}`  ",
             f"Detector input: {_input_text(res)}" + (f"; evaluated on {res['max_images']} evenly spaced images "
                                                    f"of each split only" if res.get("max_images") else "") + ".", "",
             ("Every model faces the same images through the one `Detector` interface and `facewear val`'s "
             "pycocotools code (score threshold 0.001, NMS IoU 0.6). A cascade finds faces first and then "
             "classifies each crop; its score is the finder's face score times the class probability."), "",
             _instances_line(res), "", "## Headline", ""]
    lines += headline_table(res)
    lines += _skipped_lines(res)
    lines += ["", "![held-out mAP50 against latency](plots/card_map_latency.png)", "",
              "## Per class", "", ("AP50 per class on the held-out real set, and on the synthetic val split for the "
              "two classes with sunglasses."), "",
              "| model | " + " | ".join(f"held-out {n} (n={held_n.get(n, 0)})" for n in cn)
              + " | synth sunglasses | synth mask_sunglasses |",
              "|---|" + "---:|" * (len(cn) + 2)]
    for r in res["rows"]:
        ap = [_f(r["heldout"]["per_class"][n]["AP50"]) for n in cn]
        lines.append(f"| `{r['model']}` | " + " | ".join(ap) + f" | {_f(_synth_ap(r, 'sunglasses'))} | "
                     f"{_f(_synth_ap(r, 'mask_sunglasses'))} |")
    lines += ["", "![AP50 per class](plots/card_ap_per_class.png)", "", "## Latency", "", _setup_line(res), "",
              "| model | MB | " + " | ".join(f"{k} {t}t" for k in ("end to end", "network") for t in th)
              + " | video FPS |", "|---|" + "---:|" * (2 + 2 * len(th))]
    for r in res["rows"]:
        lt, v = r["latency"], r.get("video")
        lines.append(f"| `{r['model']}` | {r['MB']:.2f} | "
                     + " | ".join(_lat(lt[k], f"{t}t") for k in ("end_to_end", "network") for t in th)
                     + " | " + (f"{v['fps']:.1f} ({v['frames']} frames)" if v else "-") + " |")
    lines += sliced_section(res)
    lines += ["", "## How each fails", "",
              (f"On the held-out set, at score >= {res['conf']}: the share of true faces of each class that get any "
              f"box with IoU >= 0.5 (*found*) and, of those, the share whose best-overlapping box has the right class "
              f"(*named*); *false boxes* are boxes per image that match no face."), "",
              "| model | " + " | ".join(f"{n} found / named" for n in cn) + " | false boxes / image |",
              "|---|" + "---:|" * (len(cn) + 1)]
    for r in res["rows"]:
        cells = []
        for n in cn:
            f = r["heldout"]["found"].get(n, {})
            cells.append("-" if f.get("found") is None else
                         f"{f['found']:.0%} / " + ("-" if f.get("named_if_found") is None
                                                   else f"{f['named_if_found']:.0%}"))
        lines.append(f"| `{r['model']}` | " + " | ".join(cells) + f" | {r['heldout']['false_boxes_per_image']:.2f} |")
    lines += source_label_section(res)
    lines += [""] + failure_notes(res)
    lines += ["", "## What the models are", "",
              ("* **YOLOv5n**: ultralytics' YOLOv5 nano with an anchor-free head, trained on the four classes; the "
              "ONNX files are exports of the same checkpoint (`facewear export`)."),
              "* **Faster R-CNN**: torchvision's two-stage detector on a MobileNetV2 + FPN backbone, the baseline.",
              ("* **Cascades**: a face finder (MTCNN, OpenCV's Haar cascade, or the YOLO detector's boxes with the "
              "class ignored) followed by the crop classifier."), "",
              ("All numbers: [`card.json`](card.json). Per-model files and checksums: "
              "[`manifest.json`](manifest.json).")]
    return "\n".join(lines) + "\n"


def _small(r: dict, key: str) -> float | None:
    return (r.get("small") or {}).get(key)


def sliced_section(res: dict) -> list[str]:
    """The card's "Sliced inference" section: each sliced model's figures without and with ``--slice``, on the same
    images. Empty for a card run before the section existed (no ``sliced`` in ``card.json``)."""
    if not res.get("sliced"):
        return []
    cn = CLASS_NAMES
    by_spec = {r["spec"]: r for r in res["rows"]}
    lines = ["", "## Sliced inference (`--slice`)", "",
             ("The same model without and with sliced inference (`facewear val --slice`: sahi, overlapping slices of "
              "the model's input size plus the full image, boxes merged; `detection/slicing.py`), on the same "
              "held-out images and real checks. *Faces under 32 px*: AP50 and recall at score >= "
              f"{res['conf']} over true faces whose longer side is under 32 px. *ms / image*: the evaluation's "
              "time per image at torch's thread count, decode included."), "",
             "| model | slicing | held-out mAP50 | " + " | ".join(f"AP50 {n}" for n in cn)
             + " | faces under 32 px: n | AP50 | recall | real sunglasses recall | ms / image |",
             "|---|---|" + "---:|" * (len(cn) + 6)]
    for s in res["sliced"]:
        base = by_spec.get(s["spec"])
        for label, r in (("off", base), ("on", s)):
            if r is None:
                continue
            h = r["heldout"]
            st = h.get("slice") or {}
            how = label if label == "off" else f"on ({st.get('slice_size', '?')} px, overlap {st.get('overlap', '?')})"
            lines.append(f"| `{s['model']}` | {how} | {_f(h['mAP50'])} | "
                         + " | ".join(_f(h["per_class"][n]["AP50"]) for n in cn)
                         + f" | {_f(_small(h, 'instances'), 'd')} | {_f(_small(h, 'AP50'))} | "
                         f"{_f(_small(h, 'recall'))} | {_f(_real_recall(r, 'sunglasses'))} | "
                         f"{_f(h.get('ms_per_image'), '.1f')} |")
    return lines


def headline_markdown(res: dict, link: str) -> str:
    """The README block: a link to the card, the machine and command, and the headline table."""
    lines = [(f"Every shipped model, compared on one machine: [the model card]({link}) (per class, latency, how each "
             f"fails, plots)."), "", f"Machine: {res['machine']}  ", f"Command: `{res['command']}`", ""]
    lines += headline_table(res)
    lines += _skipped_lines(res)
    return "\n".join(lines) + "\n"


def write_readme_block(readme: str | Path, block: str) -> bool:
    """Replace the text between the card markers in ``readme``; False (with a warning) when they are missing."""
    if write_marked_block(readme, "card", block, "`facewear bench --suite card`"):
        return True
    LOG.warning("%s: no %s ... %s markers; README not updated", readme, BEGIN, END)
    return False


def plot_card(res: dict, plots_dir: str | Path) -> list[Path]:
    """``card_map_latency.png`` (held-out mAP50 against end-to-end p50, 1 thread; marker area ~ MB) and
    ``card_ap_per_class.png`` (AP50 bars per class, held-out and synthetic)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    plots_dir = Path(plots_dir)
    rows = res["rows"]
    colors = {"yolo": "tab:blue", "frcnn": "tab:orange", "cascade": "tab:green"}
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for r in rows:
        x, y = _p50(r), r["heldout"]["mAP50"]
        if x is None or y is None:
            continue
        ax.scatter(x, y, s=30 + 8 * r["MB"], color=colors.get(r["kind"], "grey"), alpha=0.75,
                   edgecolors="black", linewidths=0.5)
        ax.annotate(r["model"], (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
    for k, c in colors.items():
        if any(r["kind"] == k for r in rows):
            ax.scatter([], [], color=c, label=k)
    if any(_p50(r) for r in rows):
        ax.set_xscale("log")
    ax.set_ylim(0, min(1.0, max([r["heldout"]["mAP50"] or 0 for r in rows] + [0.05]) * 1.15))
    ax.set_xlabel("end-to-end p50 latency, ms, batch 1, 1 thread")
    ax.set_ylabel(f"held-out mAP50 ({Path(res['data']).name})")
    ax.set_title("Accuracy against latency (marker area ~ file size)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    p1 = plots_dir / "card_map_latency.png"
    with atomic_path(p1) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)

    panels = [("held-out", "heldout", list(CLASS_NAMES))]
    if any(r.get("synth") for r in rows):
        panels.append(("synthetic val", "synth", list(RARE)))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 + 3.5 * len(panels), 4.6), squeeze=False,
                             gridspec_kw={"width_ratios": [len(p[2]) for p in panels]})
    w = 0.8 / max(len(rows), 1)
    for ax, (title, key, classes) in zip(axes[0], panels, strict=True):
        xs = np.arange(len(classes))
        for i, r in enumerate(rows):
            pc = (r.get(key) or {}).get("per_class", {})
            vals = [pc.get(n, {}).get("AP50") for n in classes]
            ax.bar(xs + (i - (len(rows) - 1) / 2) * w, [0 if v is None else v for v in vals], w,
                   label=r["model"], color=plt.cm.tab20(i % 20))
        ax.set_xticks(xs, classes, fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("AP50")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0][-1].legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    p2 = plots_dir / "card_ap_per_class.png"
    with atomic_path(p2) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return [p1, p2]
