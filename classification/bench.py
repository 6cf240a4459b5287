"""Benchmarks for the crop classifiers and the cascades (``facewear bench --suite cls|cascade``).

``bench_classifiers``: one table over every architecture and precision (torch fp32 / TorchScript int8, fp16;
ONNX fp32 / fp16 / int8): parameters, file MB, accuracy on held-out real and synthetic crops, and latency
p50/p95 at batch 1 (timm ``benchmark`` style: fixed threads, warm-up, then timed iterations) at the
assignment's 112 px and our input size, with 1 and 2 threads. Also a size/latency/accuracy plot.

``bench_cascades``: the four-class detector against cascades (a face finder followed by the classifier) on the
held-out set: mAP50, mAP50-95 and AP50 per class (``facewear val``'s code), how often each model finds a face
of each true class at all (IoU >= 0.5, score >= 0.25) and how often it then names the class right, and the
latency per image with 1 and with 5 faces, with 1 and 2 threads.
"""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

from facewear.boxes import iou_matrix
from facewear.constants import (
    CLASS_NAMES,
    CLS_IMGSZ,
    CLS_REF_IMGSZ,
    DATASETS_DIR,
    default_build_dir,
)
from facewear.io import atomic_path, write_json, write_text
from facewear.timing import latency as call_latency
from facewear.timing import machine

VARIANTS: dict[str, str] = {  # variant -> suffix beside the checkpoint
    "torch fp32": ".pt", "torch int8": "-int8.pt", "torch int8 qat": "-int8-qat.pt", "torch fp16": "-fp16.pt",
    "onnx fp32": ".onnx", "onnx fp16": "-fp16.onnx", "onnx int8": "-int8.onnx"}


def _variants(ckpt: Path) -> dict[str, Path]:
    return {k: ckpt.with_name(ckpt.stem + s) for k, s in VARIANTS.items() if ckpt.with_name(ckpt.stem + s).is_file()}


def _latency(path: Path, imgsz: int, threads: int, iters: int) -> dict[str, float]:
    import torch

    from .export import latency
    from .runtime import load_classifier

    clf = load_classifier(path, threads=threads)
    torch.set_num_threads(threads)
    try:
        return {k: round(v, 3) for k, v in latency(clf, imgsz, warmup=max(5, iters // 5), iters=iters).items()}
    except Exception as e:  # noqa: BLE001 - a runtime may refuse another input size; report it, keep going
        return {"error": f"{type(e).__name__}: {str(e)[:80]}"}


def bench_classifiers(models: list[str], data: str | None = None, out: str | None = None, iters: int = 100,
                      sizes: tuple[int, ...] = (CLS_REF_IMGSZ, CLS_IMGSZ), threads: tuple[int, ...] = (1, 2),
                      export: bool = True, command: str | None = None,
                      formats: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Table over ``models`` (classifier checkpoints) and their exports; writes ``<out>.md/.json/.png``.

    ``export`` makes ``formats`` (default: every default format) beside each checkpoint first; any other
    export already there (e.g. ``-int8-qat.pt``, or ``-fp16.pt`` made for one model only) is benched too."""

    from .evaluate import evaluate
    from .models import count_params
    from .runtime import load_classifier

    root = Path(data) if data else default_build_dir() / "crops"
    rows, cache = [], {}
    for m in models:
        ckpt = Path(m)
        if not ckpt.is_file():
            raise FileNotFoundError(f"{ckpt}: classifier checkpoint not found")
        if export:
            from .export import run as export_run

            export_run(ckpt, **({"formats": formats} if formats else {}), calib=str(root), check=128)
        base = load_classifier(ckpt)
        params = count_params(base.model)
        meta = _ckpt_meta(ckpt)
        for variant, f in _variants(ckpt).items():
            clf = load_classifier(f, threads=2)
            acc = {s: evaluate(clf, root, s, cache=cache) for s in ("heldout-real", "heldout-synth")
                   if (root / s).is_dir()}
            lat = {f"{sz}px {t}t": _latency(f, sz, t, iters) for sz in sizes for t in threads}
            rows.append({"arch": base.arch, "variant": variant, "file": f.name, "params": params,
                         "MB": round(f.stat().st_size / 1e6, 3), "start": meta.get("start", ""),
                         "epochs": meta.get("epochs"), "imgsz": base.imgsz,
                         "accuracy": {s: round(r["accuracy"], 4) for s, r in acc.items()},
                         "balanced_accuracy": {s: round(r["balanced_accuracy"], 4) for s, r in acc.items()},
                         "recall": {s: r["recall"] for s, r in acc.items()},
                         "confusion": {s: r["confusion"] for s, r in acc.items()}, "latency": lat})
            print(_row_md(rows[-1], sizes, threads), flush=True)
    res = {"machine": machine(), "data": str(root), "sizes": list(sizes), "threads": list(threads), "iters": iters,
           "command": command or "facewear bench " + " ".join(shlex.quote(a) for a in sys.argv[2:]), "rows": rows}
    if out:
        write_json(f"{out}.json", res)
        write_text(f"{out}.md", cls_markdown(res))
        plot_tradeoff(res, f"{out}.png")
    return res


def _ckpt_meta(ckpt: Path) -> dict:
    import torch

    ck = torch.load(ckpt, map_location="cpu", weights_only=False)
    return {"start": ck.get("start", ""), "epochs": (ck.get("args") or {}).get("epochs"),
            "fraction": (ck.get("args") or {}).get("fraction"), "command": (ck.get("args") or {}).get("command")}


def _fmt_lat(d: dict) -> str:
    return d["error"][:20] if "error" in d else f"{d['p50_ms']:.2f} / {d['p95_ms']:.2f}"


def _row_md(r: dict, sizes, threads) -> str:
    acc = r["accuracy"]
    cells = [r["arch"], r["variant"], f"{r['params'] / 1e6:.2f}M", f"{r['MB']:.2f}",
             f"{acc.get('heldout-real', float('nan')):.4f}", f"{acc.get('heldout-synth', float('nan')):.4f}"]
    cells += [_fmt_lat(r["latency"][f"{s}px {t}t"]) for s in sizes for t in threads]
    return "| " + " | ".join(cells) + " |"


def cls_markdown(res: dict) -> str:
    sizes, threads = res["sizes"], res["threads"]
    head = ["arch", "variant", "params", "MB", "held-out real acc", "held-out synth acc"]
    head += [f"{s} px, {t} thr p50 / p95 ms" for s in sizes for t in threads]
    n_real = n_synth = None
    if res["rows"]:
        r0 = res["rows"][0]
        n_real = sum(sum(x) for x in r0["confusion"].get("heldout-real", [])) or None
        n_synth = sum(sum(x) for x in r0["confusion"].get("heldout-synth", [])) or None
    lines = [f"Machine: {res['machine']}. Command: `{res['command']}`. Crops: `{res['data']}` "
             f"(held-out real n={n_real}, synthetic n={n_synth}). Latency: one crop at batch 1, after warm-up, "
             f"{res['iters']} timed runs, network only (crop and normalisation excluded).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    lines += [_row_md(r, sizes, threads) for r in res["rows"]]
    lines += ["", "Start, epochs and per-class recall of each architecture (torch fp32; real / synthetic held-out):",
              "",
              "| arch | start | epochs | " + " | ".join(f"recall {c}" for c in CLASS_NAMES) + " |",
              "|---|---|---:|" + "---:|" * len(CLASS_NAMES)]
    for r in res["rows"]:
        if r["variant"] != "torch fp32":
            continue
        rec = r.get("recall", {})
        cells = [f"{rec.get('heldout-real', {}).get(c, float('nan')):.3f} / "
                 f"{rec.get('heldout-synth', {}).get(c, float('nan')):.3f}" for c in CLASS_NAMES]
        lines.append(f"| {r['arch']} | {r.get('start', '')} | {r.get('epochs', '')} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_tradeoff(res: dict, path: str | Path) -> None:
    """Accuracy on held-out real crops against latency (ONNX, 1 thread, our input size); marker area ~ MB."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = f"{res['sizes'][-1]}px 1t"
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    marks = {"fp32": "o", "fp16": "s", "int8": "^"}
    archs = sorted({r["arch"] for r in res["rows"]})
    colors = dict(zip(archs, plt.cm.tab10.colors, strict=False))
    for r in res["rows"]:
        lat = r["latency"].get(key, {})
        if "p50_ms" not in lat or "heldout-real" not in r["accuracy"]:
            continue
        prec = r["variant"].split()[1]  # "torch int8 qat" is int8
        face = colors[r["arch"]] if r["variant"].startswith("onnx") else "none"
        ax.scatter(lat["p50_ms"], r["accuracy"]["heldout-real"] * 100, s=30 + 12 * r["MB"], marker=marks[prec],
                   facecolors=face, edgecolors=colors[r["arch"]], linewidths=1.5)
    for a in archs:
        ax.scatter([], [], color=colors[a], label=a)
    for p, mk in marks.items():
        ax.scatter([], [], marker=mk, color="grey", label=p)
    ax.set_xscale("log")
    ax.set_xlabel(f"p50 latency, ms, batch 1, 1 thread, {res['sizes'][-1]} px (filled: onnxruntime, hollow: torch)")
    ax.set_ylabel("accuracy on held-out real crops, %")
    ax.set_title("Crop classifiers: accuracy vs latency (marker area ~ file size)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


# --- cascades --------------------------------------------------------------------------------
def found_and_named(gt: dict, dets: list[dict], conf: float = 0.25, iou: float = 0.5) -> dict[str, dict]:
    """Per true class: share of faces with any box (IoU >= iou, score >= conf), and of those, the share whose
    best-overlapping box has the right class. Separates 'missed the face' from 'named it wrong'."""
    by_img: dict[int, list] = {}
    for d in dets:
        if d["score"] >= conf:
            by_img.setdefault(d["image_id"], []).append(d)
    cats = {c["id"]: c["name"] for c in gt["categories"]}
    stats = {n: {"n": 0, "found": 0, "named": 0} for n in CLASS_NAMES}
    gts: dict[int, list] = {}
    for a in gt["annotations"]:
        gts.setdefault(a["image_id"], []).append(a)
    for img, anns in gts.items():
        g = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                      for a in anns])
        ds = by_img.get(img, [])
        d = np.array([[x["bbox"][0], x["bbox"][1], x["bbox"][0] + x["bbox"][2], x["bbox"][1] + x["bbox"][3]]
                      for x in ds]).reshape(-1, 4)
        m = iou_matrix(g, d)
        for i, a in enumerate(anns):
            name = cats[a["category_id"]]
            stats[name]["n"] += 1
            if m.shape[1] and m[i].max() >= iou:
                stats[name]["found"] += 1
                stats[name]["named"] += int(ds[int(m[i].argmax())]["category_id"] == a["category_id"])
    return {n: {"n": s["n"], "found": round(s["found"] / s["n"], 4) if s["n"] else None,
                "named_if_found": round(s["named"] / s["found"], 4) if s["found"] else None}
            for n, s in stats.items()}


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

    from detection.base import load_detector, model_bytes, model_name
    from detection.val import detect_split, evaluate
    from facewear.data.layout import load_spec
    from facewear.io import read_image

    spec = load_spec(data)
    split = "test" if "test" in spec else "val"
    frames = {k: read_image(p) for k, p in _faces_images(data).items()}
    rows = []
    for m in models:
        det = load_detector(m, imgsz=imgsz, conf=0.001, threads=2)
        gt, dets, _ = detect_split(det, spec, split, max_images)
        res = evaluate(gt, dets, det.names, 0.25)
        lat = {}
        for t in (1, 2):
            d = load_detector(m, imgsz=imgsz, conf=0.25, threads=t)
            torch.set_num_threads(t)
            for k, fr in frames.items():
                lat[f"{k} face{'s' if k > 1 else ''} {t}t"] = {
                    kk: round(v, 2) for kk, v in call_latency(d, fr, warmup=3, iters=iters).items()}
        rows.append({"model": model_name(m), "spec": m, "MB": round(model_bytes(m) / 1e6, 2),
                     "mAP50": round(res["mAP50"], 4), "mAP50-95": round(res["mAP50-95"], 4),
                     "AP50": {n: round(res["per_class"][n]["AP50"], 4) for n in CLASS_NAMES},
                     "found": found_and_named(gt, dets), "latency": lat, "images": res["images"]})
        print(json.dumps({k: rows[-1][k] for k in ("model", "mAP50", "found")}), flush=True)
    torch.set_num_threads(2)
    res = {"machine": machine(), "data": data, "split": split, "imgsz": imgsz,
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
