#!/usr/bin/env python3
"""Release the crop classifiers: benchmark every trained arch, commit the best, compare the cascades.

    python tools/release_cls.py --runs runs/cls/mobilenet_v3_small runs/cls/mobilenet_v2 ... [--cascades]

1. ``facewear bench --suite cls`` over each run's ``weights/best.pt`` (exports made beside them):
   ``weights/classifiers.bench.{md,json,png}``.
2. The best model (highest held-out real accuracy among those that meet the requirement ``BAR``, ties to the
   smaller file) and its exports are copied to ``weights/facewear-cls.*`` with manifest entries.
3. With ``--cascades``: ``facewear bench --suite cascade`` of the four-class detector against MTCNN, YOLO-as-finder
   and Haar cascades with that classifier: ``weights/cascades.bench.{md,json}``.
4. The README block between ``<!-- classifiers:begin -->`` and ``<!-- classifiers:end -->`` is rewritten.
Every figure comes from those commands, run here.

Release gate (``facewear.gate``, shared with the detector release tools): before anything in ``weights/`` is
written, the chosen model (torch fp32) must match or beat the released one (``facewear-cls-torch-fp32`` in the
manifest) on the real held-out crops: accuracy and face, mask and sunglasses recall. The released model's figures
are read from its manifest entry, not re-measured; after a crop rebuild (the real held-out crops may differ) pass
``--remeasure-old`` to measure it on the same crops. Old and new are printed side by side; ``--force`` releases a
worse model and the manifest records it. The bench report is written beside the first run and copied to
``weights/classifiers.bench.*`` once the gate passes.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from facewear.constants import CLS_IMGSZ, REPO_ROOT, WEIGHTS_DIR
from facewear.io import portable_checkpoint, same_file, write_marked_block, write_text

NAME = "facewear-cls"
BAR = {"MB": 15.0, "accuracy": 0.90, "ms": 6.0}  # required of a released classifier: file, real accuracy, p50
GOAL = {"MB": 3.0, "real": 0.97, "synth": 0.95, "ms": 1.0}  # ours


def _p50(r: dict) -> float:
    return r["latency"].get(f"{CLS_IMGSZ}px 1t", {}).get("p50_ms", float("nan"))


def _meets_bar(r: dict) -> bool:
    return (r["MB"] <= BAR["MB"] and r["accuracy"].get("heldout-real", 0) > BAR["accuracy"]
            and _p50(r) < BAR["ms"])


def _meets_goal(r: dict) -> bool:
    return (r["MB"] <= GOAL["MB"] and r["accuracy"].get("heldout-real", 0) >= GOAL["real"]
            and r["accuracy"].get("heldout-synth", 0) >= GOAL["synth"] and _p50(r) <= GOAL["ms"]
            and r["variant"].startswith("onnx"))


def _best(res: dict) -> dict:
    """The torch fp32 row of the arch with the best held-out real accuracy among archs that have a variant
    that meets ``BAR`` (all archs when none has); ties go to the smaller file."""
    fp32 = [r for r in res["rows"] if r["variant"] == "torch fp32"]
    ok_archs = {r["arch"] for r in res["rows"] if _meets_bar(r)}
    pool = [r for r in fp32 if r["arch"] in ok_archs] or fp32
    return max(pool, key=lambda r: (r["accuracy"].get("heldout-real", 0), -r["MB"]))


def _standing(rows: list[dict]) -> str:
    """Every variant of the released arch against the requirement and our goal (computed, not typed)."""
    y = lambda ok: "yes" if ok else "no"  # noqa: E731
    lines = [f"| variant | MB | real acc | synth acc | {CLS_IMGSZ} px 1 thr p50 ms | requirement "
             f"(<= {BAR['MB']:g} MB, > {BAR['accuracy']:.0%}, < {BAR['ms']:g} ms) | our goal (<= {GOAL['MB']:g} MB, "
             f">= {GOAL['real']:.0%} real, >= {GOAL['synth']:.0%} synth, <= {GOAL['ms']:g} ms onnxruntime) |",
             "|---|---:|---:|---:|---:|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['MB']:.2f} | {r['accuracy'].get('heldout-real', float('nan')):.4f} | "
                     f"{r['accuracy'].get('heldout-synth', float('nan')):.4f} | {_p50(r):.2f} | {y(_meets_bar(r))} | "
                     f"{y(_meets_goal(r))} |")
    return "\n".join(lines) + "\n"


def write_readme(res: dict, casc: dict | None) -> None:
    """Rewrite the README block between the classifier markers from the bench results."""
    write_marked_block(REPO_ROOT / "README.md", "classifiers", readme_body(res, casc), "tools/release_cls.py")


def readme_body(res: dict, casc: dict | None) -> str:
    """The README block's text from the classifier and cascade bench results."""
    from classification.bench import cls_markdown
    from detection.cascade_bench import cascade_markdown

    best = _best(res)
    rows = [r for r in res["rows"] if r["arch"] == best["arch"]]
    head = (f"Best: **{best['arch']}** ({best['start']}), committed as `weights/{NAME}.*` (chosen: highest held-out "
            f"real accuracy among the architectures with a variant that meets the requirement). Where it stands:\n\n"
            f"{_standing(rows)}\nIts confusion matrices (rows: true class): held-out real "
            f"![real](weights/plots/{NAME}-confusion_heldout-real.png) and synthetic "
            f"![synthetic](weights/plots/{NAME}-confusion_heldout-synth.png)\n\nAll architectures and precisions:\n\n")
    return (f"{head}{cls_markdown(res)}\n![trade-off](weights/classifiers.bench.png)\n\n"
            + (f"#### Cascades against the four-class detector\n\n{cascade_markdown(casc)}\n" if casc else ""))


def gate_cls(best: dict, a: argparse.Namespace) -> dict:
    """The release gate for the chosen classifier row ``best`` against the released torch fp32 classifier; prints
    both side by side, exits when worse (unless ``--force``), returns the manifest's ``gate`` record."""
    from classification.evaluate import evaluate
    from classification.runtime import load_classifier
    from detection import manifest
    from facewear import gate
    from facewear.constants import default_build_dir

    new = gate.cls_figures(best["accuracy"].get("heldout-real"), best["recall"].get("heldout-real"))
    name = f"{NAME}-torch-fp32"
    entry = next((m for m in manifest.load()["models"] if m["name"] == name), None) \
        if manifest.MANIFEST.is_file() else None
    if entry is None:
        return gate.enforce(gate.decide(None, new, gate.CLS_CHECKS, force=a.force))
    old_file = WEIGHTS_DIR / entry["file"]
    root = Path(a.crops) if a.crops else default_build_dir() / "crops"

    def measure(keys: list[str]) -> dict:
        print(f"gate: measuring the released {old_file.name} on {root / 'heldout-real'}")
        r = evaluate(load_classifier(old_file, threads=2), root, "heldout-real")
        return gate.cls_figures(r["accuracy"], r["recall"])

    old, source = gate.old_figures(gate.cls_figures_recorded(entry), gate.CLS_CHECKS,
                                   measure if old_file.is_file() and (root / "heldout-real").is_dir() else None,
                                   remeasure=a.remeasure_old)
    return gate.enforce(gate.decide(old, new, gate.CLS_CHECKS, force=a.force, tol=a.gate_tolerance, against=name,
                                    source=source))


def _ckpt_command(ckpt: Path) -> str:
    import torch

    return (torch.load(ckpt, map_location="cpu", weights_only=False).get("args") or {}).get("command") or ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", required=True, help="classifier run folders (each holds weights/best.pt)")
    ap.add_argument("--crops", default=None, help="crop dataset root (default build/crops)")
    ap.add_argument("--cascades", action="store_true", help="also compare the cascades on the held-out set")
    ap.add_argument("--detector", default=str(WEIGHTS_DIR / "yolov5n-facewear4.onnx"))
    ap.add_argument("--max-images", type=int, default=None, help="cascade comparison on the first N images only")
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--readme-only", action="store_true",
                    help="only rewrite the README block from weights/classifiers.bench.json and cascades.bench.json")
    ap.add_argument("--formats", nargs="+", default=None,
                    help="exports made for every run (default all; torch-fp16 evaluates slowly on CPU, so "
                         "make it, and torch-int8-qat, for the chosen model with `facewear export` first)")
    ap.add_argument("--force", action="store_true",
                    help="release even when the gate fails; the manifest entry records it")
    ap.add_argument("--remeasure-old", action="store_true",
                    help="measure the released classifier on the current crops instead of reading its manifest figures")
    ap.add_argument("--gate-tolerance", type=float, default=0.0,
                    help="a new figure may be this much below the old one and still pass (default 0)")
    a = ap.parse_args()
    cmd = "python tools/release_cls.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])

    from classification.bench import bench_classifiers
    from classification.preprocess import ONNX_IO
    from detection import manifest
    from detection.cascade_bench import bench_cascades

    if a.readme_only:  # re-render the markdown (README block, *.bench.md) from the saved measurements
        from classification.bench import cls_markdown
        from detection.cascade_bench import cascade_markdown

        res = json.loads((WEIGHTS_DIR / "classifiers.bench.json").read_text())
        write_text(WEIGHTS_DIR / "classifiers.bench.md", cls_markdown(res))
        cj = WEIGHTS_DIR / "cascades.bench.json"
        casc = json.loads(cj.read_text()) if cj.is_file() else None
        if casc:
            write_text(WEIGHTS_DIR / "cascades.bench.md", cascade_markdown(casc))
        write_readme(res, casc)
        return 0

    ckpts = [Path(r) / "weights" / "best.pt" for r in a.runs]
    bench_out = Path(a.runs[0]).resolve().parent / "release-classifiers.bench"  # weights/ only once the gate passes
    res = bench_classifiers([str(c) for c in ckpts], data=a.crops, out=str(bench_out),
                            iters=a.iters, command=cmd, formats=tuple(a.formats) if a.formats else None)
    best = _best(res)
    gate_record = gate_cls(best, a)
    for ext in (".json", ".md", ".png"):
        if bench_out.with_suffix(bench_out.suffix + ext).is_file():
            shutil.copyfile(bench_out.with_suffix(bench_out.suffix + ext), WEIGHTS_DIR / f"classifiers.bench{ext}")
    run = next(c for c in ckpts if json.loads((c.parent.parent / "metrics.json").read_text())["arch"] == best["arch"])
    train_cmd = _ckpt_command(run)
    rows = {r["variant"]: r for r in res["rows"] if r["arch"] == best["arch"]}
    common = dict(task="classify", architecture=best["arch"], imgsz=best["imgsz"],
                  train_command=train_cmd or f"facewear train cls --arch {best['arch']}",
                  data="build/crops (facewear data crops, from datasets/facewear4.yaml)")
    for variant, suffix in (("torch fp32", ".pt"), ("torch int8", "-int8.pt"), ("torch int8 qat", "-int8-qat.pt"),
                            ("torch fp16", "-fp16.pt"),
                            ("onnx fp32", ".onnx"), ("onnx fp16", "-fp16.onnx"), ("onnx int8", "-int8.onnx")):
        src = run.with_name(run.stem + suffix)
        if variant not in rows or not src.is_file():
            continue
        dst = WEIGHTS_DIR / f"{NAME}{suffix}"
        if same_file(src, dst):  # released from weights/ itself: the file is already in place
            print(f"{src} is already the released file; not copied onto itself")
        elif suffix == ".pt":  # the checkpoint dict: no machine path in its training arguments
            portable_checkpoint(src, dst, ("args",))
        else:
            shutil.copyfile(src, dst)
        r = rows[variant]
        manifest.add_entry(dst, name=f"{NAME}-{variant.replace(' ', '-')}", precision=variant.split()[1],
                           metrics={"heldout-real": {"accuracy": r["accuracy"].get("heldout-real"),
                                                     "recall": r["recall"].get("heldout-real")},
                                    "heldout-synth": {"accuracy": r["accuracy"].get("heldout-synth"),
                                                      "recall": r["recall"].get("heldout-synth")},
                                    "latency": r["latency"]},
                           io=ONNX_IO if suffix.endswith(".onnx") else None, runtime=variant.split()[0],
                           start=r["start"], gate=gate_record, **common)
    for s in ("heldout-real", "heldout-synth", "val"):
        png = run.parent.parent / f"confusion_{s}.png"
        if png.is_file():
            (WEIGHTS_DIR / "plots").mkdir(exist_ok=True)
            shutil.copyfile(png, WEIGHTS_DIR / "plots" / f"{NAME}-confusion_{s}.png")
    casc = None
    if a.cascades:
        clf = WEIGHTS_DIR / f"{NAME}.onnx"
        models = [a.detector, f"mtcnn+{clf}", f"{a.detector}+{clf}", f"haar+{clf}"]
        casc = bench_cascades(models, out=str(WEIGHTS_DIR / "cascades.bench"), max_images=a.max_images, command=cmd)
    write_readme(res, casc)
    print(f"released {NAME} = {best['arch']}: real {best['accuracy']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
