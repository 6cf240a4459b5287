"""``facewear bench --suite cascade``: the four-class detector against cascades (a face finder followed by the crop
classifier) on the held-out set: mAP50, mAP50-95 and AP50 per class (``facewear val``'s code), how often each model
finds a face of each true class at all (IoU >= 0.5, score >= 0.25) and how often it then names the class right, and
the latency per image with 1 and with 5 faces, with 1 and 2 threads. ``found_and_named`` also feeds the model card.
"""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

from facewear.boxes import coco_xyxy, iou_matrix
from facewear.constants import CLASS_NAMES, DATASETS_DIR
from facewear.io import portable_path, write_json, write_text
from facewear.metrics import AP50, MAP50, MAP50_95, DetMetrics
from facewear.timing import latency, machine


# --- the comparison --------------------------------------------------------------------------------
def found_and_named(gt: dict, dets: list[dict], conf: float = 0.25, iou: float = 0.5,
                    groups: dict[int, str] | None = None) -> dict[str, dict]:
    """Per true class: share of faces with any box (IoU >= iou, score >= conf), and of those, the share whose
    best-overlapping box has the right class. Separates 'missed the face' from 'named it wrong'.

    ``groups`` (``{annotation id: group}``, e.g. :func:`source_groups`): per group instead of per class (groups in
    order of first appearance; annotations without one are left out); *right class* is still the true class."""
    by_img: dict[int, list] = {}
    for d in dets:
        if d["score"] >= conf:
            by_img.setdefault(d["image_id"], []).append(d)
    cats = {c["id"]: c["name"] for c in gt["categories"]}
    stats = ({g: {"n": 0, "found": 0, "named": 0} for g in dict.fromkeys(groups.values())} if groups is not None
             else {n: {"n": 0, "found": 0, "named": 0} for n in CLASS_NAMES})
    gts: dict[int, list] = {}
    for a in gt["annotations"]:
        gts.setdefault(a["image_id"], []).append(a)
    for img, anns in gts.items():
        g = coco_xyxy(anns)
        ds = by_img.get(img, [])
        d = coco_xyxy(ds)
        m = iou_matrix(g, d)
        for i, a in enumerate(anns):
            name = cats[a["category_id"]] if groups is None else groups.get(a.get("id"))
            if name not in stats:
                continue
            stats[name]["n"] += 1
            if m.shape[1] and m[i].max() >= iou:
                stats[name]["found"] += 1
                stats[name]["named"] += int(ds[int(m[i].argmax())]["category_id"] == a["category_id"])
    return {n: {"n": s["n"], "found": round(s["found"] / s["n"], 4) if s["n"] else None,
                "named_if_found": round(s["named"] / s["found"], 4) if s["found"] else None}
            for n, s in stats.items()}


def source_groups(gt: dict, spec_path: str | Path, split: str, data_root: str | Path | None = None
                  ) -> dict[int, str]:
    """``{annotation id: source label}`` for the ground truth ``gt`` (COCO dict of ``detect_split``) of a built
    spec whose photos have source VOC files (the held-out ILC set: ``with_mask``, ``with_incorrect_mask``,
    ``without_mask``), through :class:`classification.source_labels.SourceIndex`. Raises FileNotFoundError when
    the provenance, the data root or a VOC file is missing (callers that can do without it catch it)."""
    from classification.source_labels import SourceIndex

    idx = SourceIndex(spec_path, split, data_root)
    by_img: dict[int, list[dict]] = {}
    for a in gt["annotations"]:
        by_img.setdefault(a["image_id"], []).append(a)
    out: dict[int, str] = {}
    for im in gt["images"]:
        anns = by_img.get(im["id"], [])
        if not anns:
            continue
        for a, lab in zip(anns, idx.labels(im["file_name"], coco_xyxy(anns), (im["width"], im["height"])),
                          strict=True):
            out[a["id"]] = lab
    return out


def _faces_images(spec_path: str, counts=(1, 5)) -> dict[int, Path]:
    """The first held-out image with exactly ``k`` faces, for each ``k``."""
    from facewear.data.layout import load_spec, split_paths
    from facewear.formats import yolo_rows

    spec = load_spec(spec_path)
    images, labels, _ = split_paths(spec, "test" if "test" in spec else "val")
    out: dict[int, Path] = {}
    for p in sorted(images.iterdir()):
        k = len(yolo_rows(labels / f"{p.stem}.txt"))
        if k in counts and k not in out:
            out[k] = p
        if len(out) == len(counts):
            break
    return out


def bench_cascades(models: list[str], data: str = str(DATASETS_DIR / "ilc-heldout.yaml"), imgsz: int = 320,
                   out: str | None = None, iters: int = 20, max_images: int | None = None,
                   command: str | None = None) -> dict[str, Any]:
    """Compare detectors and cascades (any ``--model`` spec) on ``data``; writes ``<out>.md/.json``."""
    import torch

    from facewear.data.layout import load_spec
    from facewear.io import read_image

    from .registry import load_detector, model_bytes, model_name
    from .val import detect_split, evaluate

    spec = load_spec(data)
    split = "test" if "test" in spec else "val"
    frames = {k: read_image(p) for k, p in _faces_images(data).items()}
    rows = []
    for m in models:
        det = load_detector(m, imgsz=imgsz, conf=0.001, threads=2)
        gt, dets, _ = detect_split(det, spec, split, max_images)
        res = evaluate(gt, dets, det.names, 0.25)
        ap = DetMetrics.from_json(res).ap50()
        lat = {}
        for t in (1, 2):
            d = load_detector(m, imgsz=imgsz, conf=0.25, threads=t)
            torch.set_num_threads(t)
            for k, fr in frames.items():
                lat[f"{k} face{'s' if k > 1 else ''} {t}t"] = {
                    kk: round(v, 2) for kk, v in latency(d, fr, warmup=3, iters=iters).items()}
        rows.append({"model": model_name(m), "spec": m, "MB": round(model_bytes(m) / 1e6, 2),
                     MAP50: round(res[MAP50], 4), MAP50_95: round(res[MAP50_95], 4),
                     AP50: {n: round(ap[n], 4) for n in CLASS_NAMES},
                     "found": found_and_named(gt, dets), "latency": lat, "images": res["images"]})
        print(json.dumps({k: rows[-1][k] for k in ("model", "mAP50", "found")}), flush=True)
    torch.set_num_threads(2)
    res = {"machine": machine(), "data": portable_path(data), "split": split, "imgsz": imgsz,  # a committed report
           "latency_images": {k: f"{p.name} ({read_image(p).shape[1]}x{read_image(p).shape[0]})"
                              for k, p in _faces_images(data).items()},
           "command": command or "facewear bench " + " ".join(shlex.quote(a) for a in sys.argv[2:]), "rows": rows}
    if out:
        write_json(f"{out}.json", res)
        write_text(f"{out}.md", cascade_markdown(res))
    return res


def cascade_markdown(res: dict) -> str:
    lat_keys = list(res["rows"][0]["latency"]) if res["rows"] else []
    head = ["model", "MB", "mAP50", "mAP50-95"] + [f"AP50 {n}" for n in CLASS_NAMES]
    lines = [f"Machine: {res['machine']}. Command: `{res['command']}`. Data: `{res['data']}` split "
             f"`{res['split']}`, {res['rows'][0]['images'] if res['rows'] else 0} images, detector input "
             f"{res['imgsz']} px.", "", "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for r in res["rows"]:
        lines.append("| " + " | ".join([r["model"], f"{r['MB']:.2f}", f"{r['mAP50']:.4f}", f"{r['mAP50-95']:.4f}"]
                                       + [f"{r['AP50'][n]:.4f}" for n in CLASS_NAMES]) + " |")
    lines += ["", "Found (any box with IoU >= 0.5 at score >= 0.25) / named right if found, per true class:", "",
              "| model | " + " | ".join(f"{n} (n={res['rows'][0]['found'][n]['n']})" for n in CLASS_NAMES) + " |"
              if res["rows"] else "", "|---|" + "---:|" * len(CLASS_NAMES)]
    for r in res["rows"]:
        cells = []
        for n in CLASS_NAMES:
            f = r["found"][n]
            cells.append("-" if f["found"] is None else
                         f"{f['found']:.1%} / "
                         f"{'-' if f['named_if_found'] is None else format(f['named_if_found'], '.1%')}")
        lines.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    lines += ["", "Latency per image, end to end (p50 / p95 ms), on "
              + ", ".join(f"{k} face(s): {v}" for k, v in res["latency_images"].items()) + ":", "",
              "| model | " + " | ".join(lat_keys) + " |", "|---|" + "---:|" * len(lat_keys)]
    for r in res["rows"]:
        lines.append(f"| {r['model']} | " + " | ".join(
            f"{r['latency'][k]['p50_ms']:.1f} / {r['latency'][k]['p95_ms']:.1f}"
                                                       for k in lat_keys) + " |")
    return "\n".join(lines) + "\n"


__all__ = ["bench_cascades", "cascade_markdown", "found_and_named", "source_groups"]
