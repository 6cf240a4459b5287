"""Benchmarks for the crop classifiers and the cascades (``facewear bench --suite cls|cascade``).

``bench_classifiers``: one table over every architecture and precision (torch fp32 / TorchScript int8, fp16;
ONNX fp32 / fp16 / int8): parameters, file MB, accuracy on held-out real and synthetic crops, and latency
p50/p95 at batch 1 (timm ``benchmark`` style: fixed threads, warm-up, then timed iterations) at the
reference 112 px (``CLS_REF_IMGSZ``) and our input size, with 1 and 2 threads. Also a size/latency/accuracy plot.

The cascades against the four-class detector are measured by :mod:`detection.cascade_bench` (they run
through the detectors' loader and ``facewear val``'s code, which sit above this package).
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from facewear.constants import (
    CLASS_NAMES,
    CLS_IMGSZ,
    CLS_REF_IMGSZ,
    default_build_dir,
)
from facewear.io import atomic_path, write_json, write_text
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
