"""``facewear val``: evaluate any ``Detector`` on a spec split with pycocotools.

Every model goes through the same path: the detector runs on each image of
the split, detections are scored against the split's ground truth with
``COCOeval``, and the report holds mAP50,
mAP50-95, per-class AP50 and AP50-95, precision and recall at the
detector's confidence threshold (IoU 0.5), a confusion matrix PNG and PR
curves. The same numbers therefore mean the same thing for YOLO (.pt or
.onnx, any precision), Faster R-CNN and the cascades.

Ground truth (:func:`load_ground_truth`): the COCO JSON beside the labels
(``<path>/coco/<images folder>.json``, as ``facewear data build`` writes it)
when there is one, else the YOLO labels of a plain ultralytics spec, whose
split may be an images folder, a ``.txt`` list of images or a list of
folders (built in memory each run, nothing is written into the dataset).
Classes are matched to the model's **by name** (COCO category ids may start
at 1 or have gaps); names the model does not know fail with both lists.
Duplicate boxes are removed with a warning per file, boxes flagged
``iscrowd`` (or VOC ``difficult``, converted to ``iscrowd``) are ignored as
pycocotools ignores them, and an image that cannot be read or processed is
left out of both sides, named and counted.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import facewear  # noqa: F401
from facewear.boxes import coco_xyxy, iou_matrix
from facewear.constants import CLASS_NAMES, DATASETS_DIR
from facewear.data.layout import label_file, load_spec, split_image_files
from facewear.formats import AnnotationError, Report, from_coco, read_yolo, to_coco
from facewear.io import ImageReadError, check_not_inputs, image_size, read_image, write_json
from facewear.metrics import AP50, AP50_95, CONFUSION, CURVES, MAP50, MAP50_95, DetMetrics

from .detector import AgnosticNMS, Detector
from .registry import load_detector, model_files, model_name
from .sizes import small_faces
from .slicing import add_slice_args, maybe_sliced

LOG = logging.getLogger("facewear.val")


class _SameName(dict):
    """A class map that keeps every name as it is (ground truth is matched to the model by name)."""

    def get(self, key, default=None):  # noqa: ANN001, ANN201
        return key


def coco_file(spec: dict, split: str) -> Path | None:
    """``<path>/coco/<images folder name>.json`` of a one-folder split when it exists (what ``facewear data build``
    writes), else ``None``."""
    value = spec.get(split)
    if not isinstance(value, str) or value.endswith(".txt"):
        return None
    p = Path(spec["path"]) / "coco" / f"{Path(value).name}.json"
    return p if p.is_file() else None


def _coco_file(spec: dict, split: str) -> Path:
    """The split's COCO ground truth file; :class:`FileNotFoundError` when there is none."""
    p = coco_file(spec, split)
    if p is None:
        raise FileNotFoundError(f"{spec.get('yaml_file', 'spec')}: split {split!r} has no COCO ground truth "
                                f"(coco/<images folder>.json)")
    return p


def check_names(gt_names: list[str] | tuple[str, ...], model_names: tuple[str, ...], where: str) -> None:
    """Raise :class:`ValueError` listing both sides when a ground-truth class name is not a model class."""
    missing = [n for n in gt_names if n not in model_names]
    if missing:
        raise ValueError(f"{where}: ground-truth classes {list(gt_names)} do not match the model's classes "
                         f"{list(model_names)} (not in the model: {missing}); classes are matched by name: rename "
                         f"them (facewear data convert --class-map old=new) or evaluate a model trained on them")


def load_ground_truth(spec: dict, split: str, names: tuple[str, ...],
                      report: Report | None = None) -> dict:
    """The split's ground truth as a COCO dict whose category ids are the model's class indices (``names``).

    From ``coco/<images folder>.json`` when present (any category ids, matched by name), else from the YOLO
    labels of every image of the split (a folder, a ``.txt`` list or a list of folders; labels found by
    ultralytics' ``images`` -> ``labels`` rule, classes named by the spec's ``names``). ``file_name`` is relative
    to ``gt["images_root"]``. Label problems go to ``report`` per file; unreadable images are left out and
    listed in ``gt["skipped"]``."""
    report = report if report is not None else Report()
    where = spec.get("yaml_file", "spec")
    cf = coco_file(spec, split)
    if cf is not None:
        try:
            cats = [c["name"] for c in json.loads(cf.read_text(encoding="utf-8")).get("categories", [])]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise AnnotationError(f"{cf}: not a readable COCO JSON file ({e})") from None
        check_names(cats, names, str(cf))
        anns = from_coco(cf, _SameName(), report)
        gt = to_coco(anns, names)
        gt["images_root"] = str(Path(spec["path"]) / spec[split])
        gt["skipped"] = []
        return gt
    files = split_image_files(spec, split)
    if not files:
        raise FileNotFoundError(f"{where}: split {split!r} ({spec[split]}) holds no images")
    spec_names = [spec["names"][i] for i in sorted(spec["names"])]
    check_names(spec_names, names, where)
    value = spec[split]
    one_root = Path(spec["path"]) / value if isinstance(value, str) and not value.endswith(".txt") else None
    anns, skipped = [], []
    for f in files:
        rel = str(f.relative_to(one_root)) if one_root is not None else str(f.resolve())
        try:
            w, h = image_size(f)
            anns.append(read_yolo(label_file(f), w, h, spec_names, _SameName(), report, rel))
        except (ImageReadError, AnnotationError) as e:
            skipped.append(str(e))
            LOG.warning("%s (left out of the evaluation)", e)
    gt = to_coco(anns, names)
    gt["images_root"] = str(one_root) if one_root is not None else "/"
    gt["skipped"] = skipped
    return gt


def align_categories(gt: dict, names: tuple[str, ...]) -> dict:
    """``gt`` with category ids re-numbered to the model's class indices, matched **by name** (COCO files often
    number from 1 or have gaps); a copy when anything changes. :class:`ValueError` lists both sides when a
    ground-truth name is not a model class."""
    cats = {c["id"]: c["name"] for c in gt.get("categories", [])}
    if not cats:
        return gt
    want = {i: n for i, n in enumerate(names)}
    if all(want.get(i) == n for i, n in cats.items()):
        return gt
    check_names(list(cats.values()), names, "ground truth")
    idx = {n: i for i, n in enumerate(names)}
    out = dict(gt)
    out["categories"] = [{"id": i, "name": n, "supercategory": "face"} for i, n in enumerate(names)]
    out["annotations"] = [{**a, "category_id": idx[cats[a["category_id"]]]} for a in gt.get("annotations", [])]
    return out


def detect_split(det: Detector, spec: dict, split: str, max_images: int | None = None,
                 spread: bool = False) -> tuple[dict, list[dict], float]:
    """Run ``det`` on every image of the split; returns (coco gt dict, coco detections, seconds per image).

    ``max_images`` keeps the first N images, or with ``spread`` N evenly spaced ones (splits sorted by source name
    would otherwise be judged on one source only). Images that cannot be read or processed are left out of the
    ground truth too and listed in ``gt["skipped"]`` (``file: reason``)."""
    report = Report()
    gt = load_ground_truth(spec, split, tuple(det.names), report)
    report.warn(f"val ground truth {Path(spec.get('yaml_file', 'spec')).name}/{split}")
    images = Path(gt.pop("images_root"))
    skipped: list[str] = gt.pop("skipped", [])
    imgs = gt["images"]
    if max_images and max_images < len(imgs):
        imgs = ([imgs[round(i)] for i in np.linspace(0, len(imgs) - 1, max_images)] if spread
                else imgs[:max_images])
    out, t, done = [], 0.0, []
    for im in tqdm(imgs, desc=f"val {model_name(det.source)} on {split}", unit="img"):
        path = images / im["file_name"]
        try:
            frame = read_image(path)
            t0 = time.perf_counter()
            d = np.asarray(det(frame), np.float32).reshape(-1, 6)
            t += time.perf_counter() - t0
        except ImageReadError as e:
            skipped.append(str(e))
            LOG.warning("%s (left out of the evaluation)", e)
            continue
        except (KeyboardInterrupt, FileNotFoundError):
            raise
        except Exception as e:  # noqa: BLE001 - one image the model cannot process must not stop the evaluation
            msg = f"{path}: could not be processed ({type(e).__name__}: {e})"
            skipped.append(msg)
            LOG.warning("%s (left out of the evaluation)", msg)
            continue
        done.append(im)
        for x1, y1, x2, y2, s, c in d.tolist():
            out.append({"image_id": im["id"], "category_id": int(c), "bbox": [x1, y1, x2 - x1, y2 - y1], "score": s})
    gt["images"] = done
    keep = {im["id"] for im in done}
    gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] in keep]
    gt["skipped"] = skipped
    return gt, out, t / max(len(done), 1)


def confusion(gt: dict, dets: list[dict], nc: int, conf: float, iou: float = 0.5) -> np.ndarray:
    """(nc+1)x(nc+1) matrix, rows = predicted, cols = true; the last index is background."""
    m = np.zeros((nc + 1, nc + 1), np.int64)
    by_img_gt: dict[int, list] = {}
    for a in gt["annotations"]:
        by_img_gt.setdefault(a["image_id"], []).append(a)
    by_img_dt: dict[int, list] = {}
    for d in dets:
        if d["score"] >= conf:
            by_img_dt.setdefault(d["image_id"], []).append(d)
    for im in gt["images"]:
        every = by_img_gt.get(im["id"], [])
        g = [a for a in every if not a.get("iscrowd")]
        crowd = [a for a in every if a.get("iscrowd")]  # "do not score": neither missed nor a false positive
        d = sorted(by_img_dt.get(im["id"], []), key=lambda z: -z["score"])
        gb, db = coco_xyxy(g), coco_xyxy(d)
        ious = iou_matrix(db, gb)
        cious = iou_matrix(db, coco_xyxy(crowd))
        used = set()
        for i, z in enumerate(d):
            j = int(np.argmax(ious[i])) if len(g) else -1
            if j >= 0 and ious[i, j] >= iou and j not in used:
                used.add(j)
                m[z["category_id"], g[j]["category_id"]] += 1
            elif len(crowd) and cious[i].max() >= iou:
                continue
            else:
                m[z["category_id"], nc] += 1
        for j, a in enumerate(g):
            if j not in used:
                m[nc, a["category_id"]] += 1
    return m


def true_class_outcomes(cm: np.ndarray | list, names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """How the faces of each true class were predicted, from a :func:`confusion` matrix.

    Returns ``{true class: {"n": faces, "recall": share predicted as their class, "as": {predicted class or
    "missed": share}}}`` for every class with faces: e.g. the real sunglasses faces called ``face`` (the
    sunglasses-vs-face confusion) are ``["sunglasses"]["as"]["face"]``. Recall at the matrix's conf, IoU 0.5.
    """
    m = np.asarray(cm)
    nc = len(names)
    out = {}
    for k, n in enumerate(names):
        col = m[:, k]
        tot = int(col.sum())
        if not tot:
            continue
        share = {names[i]: round(float(col[i] / tot), 4) for i in range(nc)}
        share["missed"] = round(float(col[nc] / tot), 4)
        out[n] = {"n": tot, "recall": share[n], "as": share}
    return out


def evaluate(gt: dict, dets: list[dict], names: tuple[str, ...] = CLASS_NAMES, conf: float = 0.25) -> dict[str, Any]:
    """COCO mAP plus per-class AP, P/R at ``conf`` and the confusion matrix."""
    from pycocotools.coco import COCO  # noqa: PLC0415
    from pycocotools.cocoeval import COCOeval  # noqa: PLC0415

    nc = len(names)
    gt = align_categories(gt, tuple(names))
    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO()
        cg.dataset = {k: v for k, v in gt.items() if k != "skipped"}
        cg.createIndex()
        cd = cg.loadRes(dets) if dets else None
    res: dict[str, Any] = {"images": len(gt["images"]), "instances": {n: 0 for n in names},
                           "ignored": sum(1 for a in gt["annotations"] if a.get("iscrowd")),
                           "skipped": list(gt.get("skipped", []))}
    for a in gt["annotations"]:
        if not a.get("iscrowd"):  # boxes marked "do not score" are not instances
            res["instances"][names[a["category_id"]]] += 1
    if cd is None:
        nan = float("nan")
        res.update({MAP50: 0.0, MAP50_95: 0.0, "precision": 0.0, "recall": 0.0, "conf": conf,
                    "per_class": {n: {AP50: 0.0 if res["instances"][n] else nan,
                                      AP50_95: 0.0 if res["instances"][n] else nan,
                                      "instances": res["instances"][n], "precision": 0.0, "recall": 0.0,
                                      CURVES: [-1.0] * 101} for n in names}})
        res[CONFUSION] = confusion(gt, dets, nc, conf).tolist()
        res["true_class"] = true_class_outcomes(res[CONFUSION], tuple(names))  # the same keys as with detections
        return res
    E = COCOeval(cg, cd, "bbox")
    E.params.maxDets = [1, 10, 300]
    with contextlib.redirect_stdout(io.StringIO()):
        E.evaluate()
        E.accumulate()
        E.summarize()
    prec = E.eval["precision"]  # [T, R, K, A, M]
    per = {}
    present = []
    for k, n in enumerate(names):
        p50 = prec[0, :, k, 0, -1]
        pall = prec[:, :, k, 0, -1]
        has = res["instances"][n] > 0
        ap50 = float(p50[p50 > -1].mean()) if has and (p50 > -1).any() else float("nan")
        ap = float(pall[pall > -1].mean()) if has and (pall > -1).any() else float("nan")
        per[n] = {AP50: ap50, AP50_95: ap, "instances": res["instances"][n], CURVES: p50.tolist()}
        if has:
            present.append(n)
    cm = confusion(gt, dets, nc, conf)
    tp = np.diag(cm)[:nc]
    for k, n in enumerate(names):
        per[n]["precision"] = float(tp[k] / max(cm[k].sum(), 1))
        per[n]["recall"] = float(tp[k] / max(cm[:, k].sum(), 1))
    res.update({
        MAP50: float(np.mean([per[n][AP50] for n in present])) if present else 0.0,
        MAP50_95: float(np.mean([per[n][AP50_95] for n in present])) if present else 0.0,
        "precision": float(np.mean([per[n]["precision"] for n in present])) if present else 0.0,
        "recall": float(np.mean([per[n]["recall"] for n in present])) if present else 0.0,
        "per_class": per, CONFUSION: cm.tolist(), "conf": conf,
    })
    res["true_class"] = true_class_outcomes(cm, tuple(names))
    return res


def plots(res: dict, names: tuple[str, ...], out_dir: Path, title: str) -> list[Path]:
    """Confusion matrix and PR curves (IoU 0.5) as PNG files."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    out_dir.mkdir(parents=True, exist_ok=True)
    labels = list(names) + ["background"]
    cm = np.array(res["confusion"])
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.imshow(cm, cmap="Blues")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    ax.set_title(f"{title}\nconfusion at conf {res.get('conf', 0.25)}, IoU 0.5", fontsize=9)
    fig.tight_layout()
    p1 = out_dir / "confusion_matrix.png"
    fig.savefig(p1, dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    rec = np.linspace(0, 1, 101)
    for n in names:
        pc = res.get("per_class", {}).get(n)
        if pc and pc.get("instances"):
            p = np.array(pc["pr50"])
            ax.plot(rec[p > -1], p[p > -1], label=f"{n} AP50 {pc['AP50']:.3f}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    ax.set_title(f"{title}\nPR curves, IoU 0.5 (mAP50 {res.get('mAP50', 0):.3f})", fontsize=9)
    fig.tight_layout()
    p2 = out_dir / "pr_curves.png"
    fig.savefig(p2, dpi=110)
    plt.close(fig)
    return [p1, p2]


def run(model: str | Detector | None = None, data: str = str(DATASETS_DIR / "ilc-heldout.yaml"),
        split: str | None = None, imgsz: int | None = None, conf: float = 0.001, report_conf: float = 0.25, iou: float = 0.6,
        json_out: str | None = None, plots_dir: str | None = None, max_images: int | None = None,
        threads: int | None = None, spread: bool = False, agnostic_nms: bool = False, slice: bool = False,
        slice_size: int | None = None, slice_overlap: float = 0.2, slice_merge: str = "auto") -> dict:
    """Evaluate ``model`` (path or Detector; ``None``: the released detector of ``weights/manifest.json``) on
    ``data``'s split; prints a table and returns the metrics.

    ``max_images`` evaluates the first N images, or N evenly spaced ones with ``spread``. ``agnostic_nms``
    evaluates with class-agnostic NMS, as ``facewear predict`` runs by default (mAP is usually reported with
    class-wise NMS, the default here). ``slice`` evaluates sliced inference (:mod:`detection.slicing`); ``small``
    in the result is AP50 and recall on faces under 32 px (:mod:`detection.sizes`), with or without it. ``imgsz``
    None: the model's own input size (an ONNX file's input, a ``.pt``'s training size), recorded in the result."""
    if model is None:
        from .manifest import default_model  # noqa: PLC0415

        model = str(default_model())
    spec = load_spec(data)
    split = split or ("test" if "test" in spec else "val")
    if json_out:
        ins = [Path(spec["yaml_file"])] + ([cf] if (cf := coco_file(spec, split)) else [])
        ins += model_files(model) if isinstance(model, (str, Path)) else []
        check_not_inputs([json_out], ins, "--json")
    if isinstance(model, (str, Path)):
        det = load_detector(model, imgsz=imgsz, conf=conf, iou=iou, threads=threads, agnostic=agnostic_nms)
    else:
        det = AgnosticNMS(model, iou) if agnostic_nms and not getattr(model, "agnostic", False) else model
    det = maybe_sliced(det, slice, slice_size, slice_overlap, slice_merge)
    gt, dets, spi = detect_split(det, spec, split, max_images, spread)
    res = evaluate(gt, dets, det.names, report_conf)
    res.update(model=str(det.source), data=str(data), split=split, imgsz=getattr(det, "imgsz", imgsz), ms_per_image=round(spi * 1000, 2),
               agnostic_nms=agnostic_nms, slice=det.settings() if slice else None,
               small=small_faces(align_categories(gt, tuple(det.names)), dets, tuple(det.names), report_conf))
    title = f"{model_name(det.source)} on {Path(data).stem}/{split}"
    if plots_dir:
        res["plots"] = [str(p) for p in plots(res, det.names, Path(plots_dir), title)]
    print(f"\n{title}: {res['images']} images, mAP50 {res['mAP50']:.4f}, mAP50-95 {res['mAP50-95']:.4f}, "
          f"P {res.get('precision', 0):.3f}, R {res.get('recall', 0):.3f} (at conf {report_conf})")
    print(f"{'class':<17}{'n':>6}{'AP50':>8}{'AP50-95':>9}{'P':>7}{'R':>7}")
    for n, pc in res.get("per_class", {}).items():
        print(f"{n:<17}{pc['instances']:>6}{pc['AP50']:>8.4f}{pc['AP50-95']:>9.4f}{pc.get('precision', 0):>7.3f}"
              f"{pc.get('recall', 0):>7.3f}")
    sm = res["small"]
    print(f"faces under {sm['max_side']} px: {sm['instances']}, AP50 {sm['AP50']:.4f}, recall {sm['recall']:.3f} "
          f"(any class, at conf {report_conf}); {res['ms_per_image']:.1f} ms/image"
          + (f", sliced {res['slice']['slice_size']} px, overlap {res['slice']['overlap']}" if slice else ""))
    outcomes = res.get("true_class") or true_class_outcomes(res["confusion"], tuple(det.names))
    print(f"how each true class was predicted (conf {report_conf}, IoU 0.5):")
    for n, o in outcomes.items():
        print(f"  {n:<16} n {o['n']:>5}: " + ", ".join(f"{k} {v:.2f}" for k, v in o["as"].items() if v))
    if res.get("ignored"):
        print(f"ignored (iscrowd / VOC difficult, not scored): {res['ignored']} box(es)")
    if res.get("skipped"):
        print(f"skipped: {len(res['skipped'])} image(s) left out of the evaluation")
        for line in res["skipped"][:20]:
            print(f"  {line}")
    if json_out:
        write_json(json_out, DetMetrics.from_json(res).without_curves())
    return res


def add_args(p: argparse.ArgumentParser) -> None:
    """``facewear val`` options (the keyword arguments of :func:`run`)."""
    from facewear.constants import DEFAULT_DETECTOR  # noqa: PLC0415

    p.add_argument("--model", default=None, help=".pt or .onnx (any precision), or a cascade FINDER+CLASSIFIER "
                   "(FINDER: mtcnn, haar or a detector file; CLASSIFIER: a classifier .pt/.onnx); default: the "
                   f"released detector {DEFAULT_DETECTOR!r} of weights/manifest.json")
    p.add_argument("--data", default=str(DATASETS_DIR / "ilc-heldout.yaml"),
                   help="dataset spec (YAML, ultralytics style: val/test as an images folder, a .txt list of images "
                        "or a list of folders; ground truth from coco/<folder>.json or the YOLO labels)")
    p.add_argument("--split", default=None, help="split (default: test if present, else val)")
    p.add_argument("--imgsz", type=int, default=None,
                   help="inference size in pixels (default: the model's own: an ONNX file's input, a .pt's "
                        "training size, else 320)")
    p.add_argument("--conf", type=float, default=0.001, help="detection threshold for mAP (default 0.001)")
    p.add_argument("--report-conf", type=float, default=0.25,
                   help="threshold for P, R and the confusion matrix (default 0.25)")
    p.add_argument("--iou", type=float, default=0.6, help="NMS IoU threshold (default 0.6)")
    p.add_argument("--agnostic-nms", action="store_true",
                   help="class-agnostic NMS, as facewear predict runs by default (default here: NMS per class)")
    p.add_argument("--json", dest="json_out", default=None, help="write the metrics as JSON")
    p.add_argument("--plots-dir", default=None, help="write confusion_matrix.png and pr_curves.png here")
    p.add_argument("--max-images", type=int, default=None, help="evaluate the first N images only")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for inference")
    add_slice_args(p)
