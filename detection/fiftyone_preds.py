"""``facewear inspect preds``: a split with ground truth and every model's predictions in FiftyOne.

The split's images and ground truth load through the same code as
``facewear data inspect`` (:mod:`facewear.data.fiftyone_split`). Each model runs
through :func:`detection.registry.load_detector` (YOLO ``.pt``/``.onnx``, cascade
``FINDER+CLASSIFIER`` specs) and its boxes go into their own field,
``pred_<model name>`` (lower case, anything but letters and digits turned
into ``_``). FiftyOne's COCO evaluation (``evaluate_detections(...,
method="coco", compute_mAP=True)``, eval key ``eval_<model name>``) then marks
every prediction and ground-truth box ``tp``/``fp``/``fn`` (IoU 0.5, class by
class) and stores ``eval_<name>_tp``/``_fp``/``_fn`` counts on each sample.

Per model a saved view ``worst-<model name>`` lists the images with errors,
worst first: missed ground-truth boxes (FN) plus false positives scored at or
above ``--report-conf`` (the boxes under it are hidden in that view; all of
them count for mAP). ``--views-dir`` also writes that ranking as CSV.

The dataset is persistent. Re-running with the same name reuses it: samples
are matched by file path (never duplicated), images no longer in the split
are removed, new ones added, changed ground truth replaced, and each model
given replaces its own field, evaluation and view. Fields of models not
given this time are kept while the samples and ground truth are unchanged,
and removed (with a warning) otherwise, since their evaluation would be stale.
"""
from __future__ import annotations

import argparse
import csv
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np

from facewear.data.fiftyone_split import SplitSource, resolve_split, serve
from facewear.data.stats import SPLITS
from facewear.io import ImageReadError, read_image

from .detector import Detector
from .registry import load_detector, model_name

if TYPE_CHECKING:  # pragma: no cover
    import fiftyone as fo

LOG = logging.getLogger("facewear.inspect")

GT_FIELD = "ground_truth"
PROVENANCE_FIELDS = ("source", "origin", "group", "overlays")
ModelArg = str | Path | Detector


@dataclass
class ModelRun:
    """One model's names on the dataset and its scores."""

    model: str  # as given (file, spec, or a Detector's source)
    name: str  # display name (file name or cascade stems)
    field: str  # prediction field
    eval_key: str
    map50_95: float = float("nan")
    map50: float = float("nan")
    tp: int = 0
    fp: int = 0  # at any score >= conf
    fp_report: int = 0  # at score >= report_conf
    fn: int = 0
    view: str = ""  # saved view name


def default_preds_name(spec_path: str | Path, split: str) -> str:
    """FiftyOne dataset name when none is given: ``facewear-<spec stem>-<split>-preds``."""
    return f"facewear-{Path(spec_path).stem}-{split}-preds"


def slug(name: str) -> str:
    """``name`` as a FiftyOne field/eval-key fragment: lower case, ``[a-z0-9_]`` only."""
    s = re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")
    return s or "model"


def display_name(model: ModelArg) -> str:
    """A model's short name: :func:`detection.registry.model_name` of a path or spec, else a Detector's
    ``name`` or ``source``."""
    if isinstance(model, (str, Path)):
        return model_name(model)
    return str(getattr(model, "name", None) or model_name(str(model.source)))


def plan_fields(models: Sequence[ModelArg]) -> list[ModelRun]:
    """Field and eval-key names per model; models whose names collide get ``_2``, ``_3``, ..."""
    runs: list[ModelRun] = []
    used: set[str] = set()
    for m in models:
        name = display_name(m)
        base = slug(name)
        s, k = base, 2
        while s in used:
            s, k = f"{base}_{k}", k + 1
        used.add(s)
        src = str(m) if isinstance(m, (str, Path)) else str(getattr(m, "source", name))
        runs.append(ModelRun(model=src, name=name, field=f"pred_{s}", eval_key=f"eval_{s}", view=f"worst-{s}"))
    return runs


def to_fo_detections(dets: np.ndarray, width: int, height: int, names: Sequence[str]) -> fo.Detections:
    """``(N, 6)`` pixel ``x1, y1, x2, y2, score, class`` rows -> ``fo.Detections`` (relative ``x, y, w, h``)."""
    import fiftyone as fo

    out = []
    for x1, y1, x2, y2, s, c in np.asarray(dets, np.float64).reshape(-1, 6).tolist():
        x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
        y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
        if x2 <= x1 or y2 <= y1:
            continue
        c = int(c)
        out.append(fo.Detection(label=names[c] if 0 <= c < len(names) else str(c),
                                bounding_box=[x1 / width, y1 / height, (x2 - x1) / width, (y2 - y1) / height],
                                confidence=float(s)))
    return fo.Detections(detections=out)


def _gt_signature(labels: list[str] | None, boxes: list[list[float]] | None) -> tuple:
    return tuple((lb, tuple(round(v, 6) for v in bb)) for lb, bb in zip(labels or [], boxes or []))


def sync_dataset(src: SplitSource, name: str) -> tuple[fo.Dataset, bool]:
    """Create or update the persistent dataset ``name`` so it holds exactly ``src``'s images.

    Samples are keyed by absolute file path. Returns ``(dataset, changed)`` where
    ``changed`` says whether samples were added/removed or ground truth replaced.
    """
    import fiftyone as fo

    spec_abs = str(Path(src.spec_path).resolve())
    info = {"spec": spec_abs, "split": src.split, "root": str(Path(src.spec["path"]))}
    if fo.dataset_exists(name):
        ds = fo.load_dataset(name)
        old = ds.info or {}
        if (old.get("spec"), old.get("split")) != (spec_abs, src.split) or "models" not in old:
            LOG.warning("dataset %r held %s/%s, not made by `inspect preds` for %s/%s: replacing it",
                        name, old.get("spec"), old.get("split"), spec_abs, src.split)
            ds = fo.Dataset(name, persistent=True, overwrite=True)
    else:
        ds = fo.Dataset(name, persistent=True)
    ds.default_classes = src.class_names
    ds.info = {**(ds.info or {}), **info, "models": (ds.info or {}).get("models", {})}
    ds.save()

    want = {s.filepath: s for s in src.samples()}
    have_ids, have_fps = (ds.values(["id", "filepath"]) if len(ds) else ([], []))
    have = dict(zip(have_fps, have_ids))
    drop = [i for fp, i in have.items() if fp not in want]
    new = [s for fp, s in want.items() if fp not in have]
    if drop:
        ds.delete_samples(drop)
    if new:
        ds.add_samples(new, progress=False)

    # ground truth and provenance of the samples that were already there
    kept = [(fp, i) for fp, i in have.items() if fp in want]
    changed_gt: dict[str, Any] = {}
    if kept:
        view = ds.select([i for _, i in kept])
        ids, labels, boxes = view.values(["id", f"{GT_FIELD}.detections.label",
                                          f"{GT_FIELD}.detections.bounding_box"])
        old_sig = {i: _gt_signature(lb, bb) for i, lb, bb in zip(ids, labels, boxes)}
        for fp, i in kept:
            dets = want[fp][GT_FIELD]
            sig = _gt_signature([d.label for d in dets.detections], [d.bounding_box for d in dets.detections])
            if sig != old_sig.get(i):
                changed_gt[i] = dets
        if changed_gt:
            ds.set_values(GT_FIELD, changed_gt, key_field="id")
        for f in PROVENANCE_FIELDS:
            ds.set_values(f, {i: want[fp][f] for fp, i in kept}, key_field="id")
    changed = bool(drop or new or changed_gt)
    print(f"inspect preds: dataset {name!r}: {len(ds)} samples ({len(new)} added, {len(drop)} removed, "
          f"{len(changed_gt)} with new ground truth), {ds.count(f'{GT_FIELD}.detections')} boxes")
    return ds, changed


def drop_model(ds: fo.Dataset, field: str, rec: dict[str, Any]) -> None:
    """Remove a model's field, evaluation (and its sample/object marks) and saved view."""
    key, view = rec.get("eval_key"), rec.get("view")
    if key and ds.has_evaluation(key):
        ds.delete_evaluation(key)
    if ds.has_sample_field(field):
        ds.delete_sample_field(field)
    if view and ds.has_saved_view(view):
        ds.delete_saved_view(view)


def predict_field(ds: fo.Dataset, det: Detector, field: str, desc: str) -> None:
    """Run ``det`` on every sample and store its boxes in ``field`` (replacing it)."""
    from tqdm import tqdm

    names = tuple(getattr(det, "names", None) or ())
    ids, fps = ds.values(["id", "filepath"])
    values: dict[str, Any] = {}
    skipped = 0
    for i, fp in tqdm(list(zip(ids, fps)), desc=desc, unit="img"):
        try:
            frame = read_image(fp)
            dets = det(frame)
        except ImageReadError as e:
            LOG.warning("%s (no predictions stored)", e)
            skipped += 1
            continue
        except (KeyboardInterrupt, FileNotFoundError):
            raise
        except Exception as e:  # noqa: BLE001 - one image the model cannot process must not stop the run
            LOG.warning("%s: could not be processed (%s: %s; no predictions stored)", fp, type(e).__name__, e)
            skipped += 1
            continue
        h, w = frame.shape[:2]
        values[i] = to_fo_detections(dets, w, h, names or ds.default_classes)
    if skipped:
        LOG.warning("%s: %d image(s) skipped (named above)", desc, skipped)
    ds.set_values(field, values, key_field="id")


def error_counts(ds: fo.Dataset, r: ModelRun, report_conf: float) -> list[dict[str, Any]]:
    """Per sample: file, TP, FN, FP at any score and FP at ``>= report_conf``; worst (FN + FP_report) first."""
    ids, fps, tp, fp, fn, marks, confs = ds.values([
        "id", "filepath", f"{r.eval_key}_tp", f"{r.eval_key}_fp", f"{r.eval_key}_fn",
        f"{r.field}.detections.{r.eval_key}", f"{r.field}.detections.confidence"])
    rows = []
    for i, f, t, p, n, m, c in zip(ids, fps, tp, fp, fn, marks, confs):
        fp_rep = sum(1 for mk, s in zip(m or [], c or []) if mk == "fp" and s is not None and s >= report_conf)
        rows.append({"id": i, "filepath": f, "tp": t or 0, "fn": n or 0, "fp": p or 0, "fp_report": fp_rep,
                     "errors": (n or 0) + fp_rep})
    rows.sort(key=lambda d: (-d["errors"], -d["fp"], d["filepath"]))
    return rows


def worst_view(ds: fo.Dataset, r: ModelRun, report_conf: float) -> fo.DatasetView:
    """Images with errors, worst first: FN plus FP scored ``>= report_conf``. Only the ground truth and this
    model's boxes at or above ``report_conf`` are shown (other models' fields are left out of the view)."""
    from fiftyone import ViewField as F

    keep = [GT_FIELD, r.field, *PROVENANCE_FIELDS, *(f"{r.eval_key}_{k}" for k in ("tp", "fp", "fn"))]
    view = ds.select_fields(keep).filter_labels(r.field, F("confidence") >= report_conf, only_matches=False)
    errors = F(f"{r.eval_key}_fn") + F(f"{r.field}.detections").filter(F(r.eval_key) == "fp").length()
    return view.match(errors > 0).sort_by(errors, reverse=True)


def map50(results: Any) -> float:
    """COCO AP at IoU 0.5 averaged over the classes with ground truth (FiftyOne's ``precision`` array)."""
    p = np.asarray(getattr(results, "precision", []))
    th = np.asarray(getattr(results, "iou_threshs", []))
    if p.ndim != 3 or not len(th):
        return float("nan")
    t0 = int(np.argmin(np.abs(th - 0.5)))
    per_class = p[t0]  # (classes, recall points), -1 where a class has no ground truth
    valid = (per_class > -1).any(axis=1)
    if not valid.any():
        return float("nan")
    return float(np.mean([row[row > -1].mean() for row in per_class[valid]]))


def write_views_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """The worst-first ranking of one model as CSV (rank, file, counts)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["rank", "filepath", "errors", "fn", "fp_at_report_conf", "fp_all", "tp"])
        for k, d in enumerate((d for d in rows if d["errors"] > 0), 1):
            w.writerow([k, d["filepath"], d["errors"], d["fn"], d["fp_report"], d["fp"], d["tp"]])


def format_table(runs: list[ModelRun], report_conf: float) -> str:
    """Markdown table of mAP and TP/FP/FN per model."""
    f = lambda v: "-" if v != v or v < 0 else f"{v:.3f}"  # noqa: E731  (nan or FiftyOne's -1: no GT)
    lines = [f"| model | field | mAP50-95 | mAP50 | TP | FP | FP@{report_conf:g} | FN | worst-first view |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in runs:
        lines.append(f"| {r.name} | {r.field} | {f(r.map50_95)} | {f(r.map50)} | {r.tp} | {r.fp} | {r.fp_report} "
                     f"| {r.fn} | {r.view} |")
    return "\n".join(lines)


def load_models(models: Sequence[ModelArg], imgsz: int | None, conf: float, iou: float,
                threads: int | None) -> list[Detector]:
    """Every model as a Detector (before any dataset work, so a missing file fails fast, named)."""
    return [m if not isinstance(m, (str, Path)) else load_detector(m, imgsz=imgsz, conf=conf, iou=iou, threads=threads)
            for m in models]


def add_args(p: argparse.ArgumentParser) -> None:
    """The options; their defaults are :func:`run`'s (an option not given is left out)."""
    d = argparse.SUPPRESS
    p.add_argument("--data", default=d, help="dataset spec YAML (default datasets/facewear4.yaml)")
    p.add_argument("--model", nargs="+", action="extend", required=True,
                   help=".pt/.onnx or cascade FINDER+CLASSIFIER; list several or repeat --model")
    p.add_argument("--split", default=d, choices=SPLITS, help="split to load (default val)")
    p.add_argument("--name", default=d, help="FiftyOne dataset name (default facewear-<spec stem>-<split>-preds)")
    p.add_argument("--max-images", type=int, default=d, help="load at most this many images (first by name)")
    p.add_argument("--conf", type=float, default=d,
                   help="keep predictions scored at least this (for mAP; default 0.001)")
    p.add_argument("--report-conf", type=float, default=d,
                   help="false positives below this score do not rank an image worse, and are hidden in the views "
                        "(default 0.25)")
    p.add_argument("--imgsz", type=int, default=d, help="detector input size (default: each model's own, "
                   "else 320)")
    p.add_argument("--iou", type=float, default=d, help="NMS IoU (default 0.6, as facewear val)")
    p.add_argument("--threads", type=int, default=d, help="inference threads")
    p.add_argument("--views-dir", default=d, help="also write each model's worst-first ranking as CSV here")
    p.add_argument("--no-launch", action="store_true", default=d,
                   help="build the dataset, print the table and return")
    p.add_argument("--port", type=int, default=d, help="App port on 127.0.0.1 (default 5151)")


def run(model: ModelArg | Sequence[ModelArg], data: str | Path | None = None, split: str = "val",
        name: str | None = None, max_images: int | None = None, conf: float = 0.001, report_conf: float = 0.25,
        imgsz: int | None = None, iou: float = 0.6, threads: int | None = None, views_dir: str | Path | None = None,
        no_launch: bool = False, port: int = 5151) -> fo.Dataset:
    """Load the split, add every model's predictions and evaluation, print mAP, save worst-first views;
    unless ``no_launch``, serve the App on 127.0.0.1 until closed.

    ``model`` is one model or a list: a file or cascade spec, or (Python only) any
    :class:`detection.detector.Detector` object, which may carry a ``name`` for its field.
    """
    models = [model] if isinstance(model, (str, Path)) or not isinstance(model, Sequence) else list(model)
    if not models:
        raise ValueError("give at least one --model")
    src = resolve_split(data, split, max_images)  # errors name the spec / folder
    dets = load_models(models, imgsz, conf, iou, threads)  # errors name the model file
    runs = plan_fields(models)
    name = name or default_preds_name(src.spec_path, split)

    ds, changed = sync_dataset(src, name)
    recs: dict[str, dict[str, Any]] = dict(ds.info.get("models", {}))
    ours = {r.field for r in runs}
    for field in [f for f in recs if f not in ours]:
        if changed:
            LOG.warning("%s (%s): samples or ground truth changed, its predictions and evaluation are stale: removed",
                        field, recs[field].get("model"))
            drop_model(ds, field, recs.pop(field))
        else:
            LOG.info("keeping %s (%s) from an earlier run", field, recs[field].get("model"))

    for r, det in zip(runs, dets):
        drop_model(ds, r.field, recs.pop(r.field, {"eval_key": r.eval_key, "view": r.view}))
        predict_field(ds, det, r.field, desc=f"inspect {r.name} on {src.split}")
        if len(ds):
            res = ds.evaluate_detections(r.field, gt_field=GT_FIELD, eval_key=r.eval_key, method="coco",
                                         compute_mAP=True, progress=False)
            r.map50_95, r.map50 = float(res.mAP()), map50(res)
            rows = error_counts(ds, r, report_conf)
            r.tp = sum(d["tp"] for d in rows)
            r.fp = sum(d["fp"] for d in rows)
            r.fn = sum(d["fn"] for d in rows)
            r.fp_report = sum(d["fp_report"] for d in rows)
            ds.save_view(r.view, worst_view(ds, r, report_conf), overwrite=True,
                         description=f"{r.name}: images with FN + FP(score >= {report_conf:g}), worst first")
            if views_dir is not None:
                write_views_csv(rows, Path(views_dir) / f"{r.view}.csv")
        recs[r.field] = {"model": r.model, "name": r.name, "eval_key": r.eval_key, "view": r.view,
                         "conf": conf, "report_conf": report_conf, "imgsz": imgsz,
                         "mAP50-95": r.map50_95, "mAP50": r.map50}
    ds.info = {**ds.info, "models": recs}
    ds.save()

    print(f"inspect preds: {len(ds)} images of {src.spec_path} ({src.split}); COCO evaluation by FiftyOne, "
          f"TP/FP/FN at IoU 0.5 on predictions scored >= {conf:g}")
    print(format_table(runs, report_conf))
    if views_dir is not None:
        print(f"inspect preds: worst-first lists in {views_dir}/")
    if not no_launch:
        from fiftyone.core.utils import to_slug

        for r in runs:
            print(f"inspect preds: {r.name} worst first: "
                  f"http://127.0.0.1:{port}/datasets/{quote(ds.name)}?view={quote(to_slug(r.view))}")
        serve(ds, port, prefix="inspect preds")
    return ds
