#!/usr/bin/env python3
"""Measure training speed here: seconds per iteration and per image, and minutes per epoch, per model and size.

    python tools/train_budget.py --cfg yolov5n.yaml yolov5s.yaml --imgsz 320 416 480 640 --batch 16 \\
        --iters 8 --warmup 2 --out weights/train-budget.md
    python tools/train_budget.py --cfg frcnn --imgsz 320 640 --batch 8 --iters 8 --warmup 2 \\
        --out weights/train-budget.md --merge

``--cfg frcnn`` times ``facewear train frcnn`` (the Faster R-CNN baseline, MobileNetV2 + FPN, ImageNet start,
horizontal flips, no loader workers: its CLI defaults; ``--workers``, ``--device`` and ``--cache`` are YOLO's
only) through that loop's ``on_train_batch_end`` callback, in the same way.
``--merge`` keeps the rows of ``--out``'s JSON that this call does not measure (same model, size and
batch are replaced), so the YOLO and Faster R-CNN figures live in one table with both commands.

Each (model, size) runs ``facewear train yolo``'s own training (``detection.yolo.train``: the same augmentation,
mosaic on, data loader workers, on the built dataset ``datasets/facewear4.yaml``) in a temporary run folder, and
stops after ``--warmup`` + ``--iters`` batches: an ``on_train_batch_end`` callback records the time of each batch
end and raises a private exception, so there is no full epoch, no validation and no checkpoint. Batch ``k``'s
time is the gap between the ends of batches ``k-1`` and ``k`` (data loading included); the first ``--warmup``
batches are left out. Minutes per epoch = s/iteration x ceil(train images / batch) / 60; the full epoch adds the
validation pass and ultralytics' optimizer step every ``ceil(64 / batch)`` batches (included in the timed batches
at the same rate). The markdown table is printed, and written to ``--out`` when given.

Run it on an idle machine: anything else running on the CPU makes every figure an upper bound.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from facewear.constants import DATASETS_DIR


class _Stop(Exception):
    """Raised by the batch callback once the timed batches are done."""


def measure(cfg: str, imgsz: int, batch: int, iters: int, warmup: int, data: str, workers: int = 2,
            device: str = "cpu", cache: str | bool = False) -> dict:
    """Time ``iters`` training batches of ``cfg`` at ``imgsz`` after ``warmup`` batches; returns the figures."""
    from detection.yolo.train import train

    if warmup < 1:
        raise ValueError("--warmup must be at least 1 (the first batch's time includes the loader start)")
    ends: list[float] = []
    info: dict = {}

    def on_batch_end(trainer) -> None:
        ends.append(time.perf_counter())
        if not info:
            info["train_images"] = len(trainer.train_loader.dataset)
            info["batch"] = trainer.batch_size
        if len(ends) >= warmup + iters:
            raise _Stop

    def on_epoch_end(trainer) -> None:  # the first epoch was shorter than the batches asked for
        raise _Stop

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="train-budget-") as tmp:
        try:
            # epochs=30 as `facewear train yolo`'s default so mosaic is on (close_mosaic is the last epochs/5)
            train(data=data, cfg=cfg, init="none", epochs=30, imgsz=imgsz, batch=batch, workers=workers,
                  device=device, project=tmp, name="budget", exist_ok=True, cache=cache, plots=False,
                  callbacks={"on_train_batch_end": on_batch_end, "on_train_epoch_end": on_epoch_end})
        except _Stop:
            pass
    return _figures(Path(cfg).stem, imgsz, ends, info, iters, warmup, t0)


def measure_frcnn(imgsz: int, batch: int, iters: int, warmup: int, data: str) -> dict:
    """Time ``iters`` training batches of ``facewear train frcnn`` at ``imgsz`` after ``warmup`` batches (the same
    figures as :func:`measure`); nothing is kept (a temporary run folder, stopped before the first checkpoint)."""
    from detection.frcnn.train import train

    if warmup < 1:
        raise ValueError("--warmup must be at least 1 (the first batch's time includes the model start)")
    ends: list[float] = []
    info: dict = {}

    def on_batch_end(state: dict) -> None:
        ends.append(time.perf_counter())
        info.update(train_images=state["train_images"], batch=state["batch"], iters=state["iters_per_epoch"])
        if len(ends) >= warmup + iters:
            raise _Stop

    def on_epoch_end(state: dict) -> None:
        raise _Stop

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="train-budget-") as tmp:
        try:
            train(data=data, epochs=12, imgsz=imgsz, batch=batch, project=tmp, name="budget",
                  callbacks={"on_train_batch_end": on_batch_end, "on_train_epoch_end": on_epoch_end})
        except _Stop:
            pass
    return _figures("frcnn", imgsz, ends, info, iters, warmup, t0)


def _figures(model: str, imgsz: int, ends: list[float], info: dict, iters: int, warmup: int, t0: float) -> dict:
    if len(ends) < warmup + iters:
        raise RuntimeError(f"{model} {imgsz}px: the epoch ended after {len(ends)} batches, before {warmup} warm-up "
                           f"+ {iters} timed ones; lower --iters/--warmup or --batch")
    gaps = [b - a for a, b in zip(ends[warmup - 1:-1], ends[warmup:])]
    s_it = statistics.fmean(gaps)
    n, b = info["train_images"], info["batch"]
    its = info.get("iters") or math.ceil(n / b)
    return {"model": model, "imgsz": imgsz, "batch": b, "iters": len(gaps), "warmup": warmup,
            "s_per_iter": round(s_it, 3), "s_per_iter_p50": round(statistics.median(gaps), 3),
            "s_per_image": round(s_it / b, 4), "train_images": n, "iters_per_epoch": its,
            "min_per_epoch": round(s_it * its / 60, 1), "setup_and_run_s": round(time.perf_counter() - t0, 1)}


def merge_rows(old: list[dict], new: list[dict]) -> list[dict]:
    """``old`` rows not measured again (same model, imgsz and batch) followed by ``new``; order: model, size."""
    key = lambda r: (r["model"], r["imgsz"], r["batch"])  # noqa: E731
    fresh = {key(r) for r in new}
    return sorted([r for r in old if key(r) not in fresh] + new, key=lambda r: (r["model"] == "frcnn", *key(r)))


def to_markdown(rows: list[dict], machine: str, command: str | list[str]) -> str:
    """The budget table: one row per (model, size)."""
    lines = ["| model | imgsz | batch | s/iter (mean) | s/iter (p50) | s/image | est. min/epoch (train images) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['imgsz']} | {r['batch']} | {r['s_per_iter']:.3f} | "
                     f"{r['s_per_iter_p50']:.3f} | {r['s_per_image']:.4f} | {r['min_per_epoch']:.1f} "
                     f"({r['train_images']}) |")
    cmds = [command] if isinstance(command, str) else list(command)
    yolo, frcnn = any(r["model"] != "frcnn" for r in rows), any(r["model"] == "frcnn" for r in rows)
    fams = " and ".join(f"`facewear train {f}`" for f, has in (("yolo", yolo), ("frcnn", frcnn)) if has)
    timed = sorted({(r["iters"], r["warmup"]) for r in rows})
    what = "; ".join(f"{i} timed batches after {w} warm-up ones" for i, w in timed)
    mosaic = "YOLO: mosaic on; " if yolo else ""
    return (f"Training speed of {fams or 'training'} ({mosaic}no validation; {what}). "
            f"Machine: {machine}.  \n"
            + "".join(f"Command: `{c}`  \n" for c in cmds) + "\n" + "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cfg", nargs="+", default=["yolov5n.yaml", "yolov5s.yaml"],
                    help="ultralytics model yamls, or frcnn (facewear train frcnn)")
    ap.add_argument("--imgsz", nargs="+", type=int, default=[320, 416, 480, 640])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--iters", type=int, default=8, help="timed batches per (model, size)")
    ap.add_argument("--warmup", type=int, default=2, help="batches run first and not timed (>= 1)")
    ap.add_argument("--data", default=str(DATASETS_DIR / "facewear4.yaml"))
    ap.add_argument("--workers", type=int, default=2, help="data loader processes (as facewear train yolo)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cache", default=False, help="ram | disk | False (ram caching loads the whole split first)")
    ap.add_argument("--out", default=None, help="write the markdown table here (e.g. weights/train-budget.md)")
    ap.add_argument("--merge", action="store_true",
                    help="keep --out's other rows (from its .json) and add this command beside the earlier ones")
    a = ap.parse_args(argv)

    import shlex

    from facewear.io import write_json, write_text
    from facewear.timing import machine

    old: dict = {}
    if a.merge:  # checked before any measurement
        if not a.out:
            raise SystemExit("--merge needs --out")
        prev = Path(a.out).with_suffix(".json")
        if prev.is_file():
            import json

            old = json.loads(prev.read_text())
            if old.get("machine") not in (None, machine()):
                raise SystemExit(f"{prev}: measured on another machine ({old['machine']}); one table holds one "
                                 f"machine's figures: write to another --out")
    rows = []
    for cfg in a.cfg:
        for sz in a.imgsz:
            r = (measure_frcnn(sz, a.batch, a.iters, a.warmup, a.data) if cfg == "frcnn" else
                 measure(cfg, sz, a.batch, a.iters, a.warmup, a.data, a.workers, a.device, a.cache))
            print(f"{r['model']} {sz}px batch {r['batch']}: {r['s_per_iter']:.3f} s/iter, {r['s_per_image']:.4f} "
                  f"s/image, ~{r['min_per_epoch']:.1f} min/epoch over {r['train_images']} images", flush=True)
            rows.append(r)
    args = argv if argv is not None else sys.argv[1:]
    cmd = "python tools/train_budget.py " + " ".join(shlex.quote(x) for x in args)
    cmds = [cmd]
    if old:
        rows = merge_rows(old.get("rows", []), rows)
        cmds = [c for c in old.get("commands", [old.get("command")]) if c and c != cmd] + [cmd]
    md = to_markdown(rows, machine(), cmds)
    print(md)
    if a.out:
        write_text(a.out, md)
        write_json(Path(a.out).with_suffix(".json"), {"machine": machine(), "command": cmd, "commands": cmds,
                                                      "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
