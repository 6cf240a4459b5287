"""Accuracy on small faces: AP50 and recall restricted to ground-truth boxes under a size, for ``facewear val``.

A face is *small* when the longer side of its ground-truth box is under ``max_side`` pixels (32 by default) at
the image's original resolution. pycocotools filters by area, so the evaluation here gives every box (ground truth
and detection) the area ``max side ** 2``: COCOeval then scores only the small ground-truth boxes, and detections
that match none of them and are not small themselves are ignored, not counted as false positives (COCO's own
``small`` area range, by the longer side instead of the area). Recall is class-agnostic (a small face found as a
face of any class, IoU 0.5, at the report threshold): how many small faces are localised at all.
"""
from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np

from facewear.boxes import coco_xyxy, iou_matrix
from facewear.constants import CLASS_NAMES

SMALL_SIDE = 32


def _max_side(bbox: list[float]) -> float:
    return float(max(bbox[2], bbox[3]))


def small_faces(gt: dict, dets: list[dict], names: tuple[str, ...] = CLASS_NAMES, conf: float = 0.25,
                max_side: int = SMALL_SIDE) -> dict[str, Any]:
    """``{"max_side", "instances", "AP50", "per_class": {name: AP50}, "recall"}`` over ground-truth boxes whose
    longer side is under ``max_side`` px. ``gt`` is a COCO dict whose category ids are ``names``' indices (what
    :func:`detection.val.detect_split` returns), ``dets`` COCO results. ``AP50`` is the mean over classes that have
    small faces (NaN for none), ``recall`` class-agnostic at ``conf`` (IoU 0.5, each box found at most once)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    lim = max_side - 1e-6  # COCOeval keeps areas in [lo, hi]: strictly under max_side
    anns = [dict(a, area=_max_side(a["bbox"]) ** 2) for a in gt["annotations"]]
    small = [a for a in anns if not a.get("iscrowd") and a["area"] <= lim ** 2]
    counts = {n: 0 for n in names}
    for a in small:
        counts[names[a["category_id"]]] += 1
    out: dict[str, Any] = {"max_side": max_side, "instances": len(small), "AP50": float("nan"),
                           "per_class": {n: float("nan") for n in names}, "recall": float("nan")}
    if not small:
        return out
    out["recall"] = _recall(small, dets, conf)
    if not dets:
        out["AP50"] = 0.0
        out["per_class"] = {n: 0.0 if counts[n] else float("nan") for n in names}
        return out
    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO()
        cg.dataset = {"images": gt["images"], "annotations": anns, "categories": gt["categories"]}
        cg.createIndex()
        cd = cg.loadRes([dict(d) for d in dets])
        for d in cd.dataset["annotations"]:  # the same shared dicts COCOeval reads
            d["area"] = _max_side(d["bbox"]) ** 2
        E = COCOeval(cg, cd, "bbox")
        E.params.iouThrs = np.array([0.5])
        E.params.maxDets = [300]
        E.params.areaRng = [[0.0, lim ** 2]]
        E.params.areaRngLbl = ["small"]
        E.evaluate()
        E.accumulate()
    prec = E.eval["precision"]  # [T=1, R, K, A=1, M=1]
    cat_ids = E.params.catIds
    per = {}
    for n in names:
        k = names.index(n)
        if not counts[n] or k not in cat_ids:
            per[n] = float("nan")
            continue
        p = prec[0, :, cat_ids.index(k), 0, 0]
        per[n] = float(p[p > -1].mean()) if (p > -1).any() else 0.0
    present = [per[n] for n in names if counts[n]]
    out["per_class"] = per
    out["AP50"] = float(np.mean(present)) if present else float("nan")
    return out


def _recall(small: list[dict], dets: list[dict], conf: float, iou: float = 0.5) -> float:
    """Share of ``small`` boxes matched (greedily, best score first, IoU >= ``iou``) by a detection of any class at
    or above ``conf``."""
    by_img: dict[int, list] = {}
    for d in dets:
        if d["score"] >= conf:
            by_img.setdefault(d["image_id"], []).append(d)
    gt_by_img: dict[int, list] = {}
    for a in small:
        gt_by_img.setdefault(a["image_id"], []).append(a)
    found = 0
    for img, g in gt_by_img.items():
        d = sorted(by_img.get(img, []), key=lambda z: -z["score"])
        if not d:
            continue
        ious = iou_matrix(coco_xyxy(d), coco_xyxy(g))
        used: set[int] = set()
        for i in range(len(d)):
            order = np.argsort(-ious[i])
            for j in order:
                if ious[i, j] < iou:
                    break
                if j not in used:
                    used.add(int(j))
                    break
        found += len(used)
    return found / len(small)


__all__ = ["SMALL_SIDE", "small_faces"]
