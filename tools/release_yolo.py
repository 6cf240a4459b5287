#!/usr/bin/env python3
"""Release a trained YOLO run into ``weights/``: copy, export, validate, benchmark, manifest, report.

    python tools/release_yolo.py --run runs/yolo/v5n-320-coco --name yolov5n-facewear4 \\
        --train-command "facewear train yolo --epochs 7 --imgsz 320 --batch 32 --cache ram --name v5n-320-coco"

Every figure it writes (``weights/<name>.metrics.json``, ``weights/<name>.bench.md``,
the manifest's metrics) comes from ``facewear val`` / ``facewear export`` /
``facewear bench`` run here, on this machine.

Release gate (``facewear.gate``): before anything in ``weights/`` is touched, the run's ``best.pt`` is measured
on the held-out set and the real checks and compared with the released model (``--against``; default the entry
named ``--name``, else the one the default detector was exported from): held-out face and mask AP50 and real
sunglasses recall at conf 0.25 must be at least as good. The released model's figures are read from its manifest
entry / ``weights/<name>.metrics.json`` (not re-measured; ``--remeasure-old`` measures them now). Old and new are
printed side by side; a worse model is refused unless ``--force``, and the manifest entry's ``gate`` records
the decision.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from facewear.constants import (  # noqa: E402
    DATASETS_DIR,
    DEFAULT_DETECTOR,
    REPO_ROOT,
    WEIGHTS_DIR,
    default_data_root,
)
from facewear.io import OverwriteError, check_not_inputs, portable_paths, write_json, write_marked_block  # noqa: E402
from facewear.metrics import MAP50, MAP50_95, DetMetrics  # noqa: E402


def stored(m: dict) -> dict:
    """``facewear val`` metrics as the metrics files keep them: without the confusion matrix and PR curves."""
    return DetMetrics.from_json(m).without_curves(confusion=False)


def held_table(held: dict, synth: dict) -> str:
    """Per-class AP on the held-out set and the synthetic val split, side by side."""
    lines = ["| class | held-out n | held-out AP50 | held-out AP50-95 | facewear4 val n | facewear4 val AP50 | "
             "facewear4 val AP50-95 |", "|---|---:|---:|---:|---:|---:|---:|"]
    f = lambda v: "n/a" if v != v else f"{v:.3f}"  # noqa: E731
    for n, pc in held["per_class"].items():
        sc = synth["per_class"][n]
        lines.append(f"| {n} | {pc['instances']} | {f(pc['AP50'])} | {f(pc['AP50-95'])} | {sc['instances']} | "
                     f"{f(sc['AP50'])} | {f(sc['AP50-95'])} |")
    lines.append(f"| **all (mAP)** | | **{held['mAP50']:.3f}** | **{held['mAP50-95']:.3f}** | | "
                 f"**{synth['mAP50']:.3f}** | **{synth['mAP50-95']:.3f}** |")
    return "\n".join(lines) + "\n"


def relativize_file(path: Path) -> None:
    """Rewrite a JSON report in place with :func:`facewear.io.portable_paths` (no-op when the file is missing)."""
    if path.is_file():
        write_json(path, portable_paths(json.loads(path.read_text())))


def real_lines(real: dict | None, blank: dict) -> str:
    """The real-check recall per class (and what the rest were called) and the blank-frame count, as text."""
    out = ""
    if real:
        parts = []
        for n, o in real.get("true_class", {}).items():
            called = ", ".join(f"{k} {v:.2f}" for k, v in o["as"].items() if v and k != n)
            parts.append(f"{n} {o['recall']:.2f} of {o['n']}" + (f" (else: {called})" if called else ""))
        out += ("Real checks (`datasets/real-checks.yaml`: held-out photos with real sunglasses faces and "
                "`cmu-faces`), recall per true class at conf 0.25: " + "; ".join(parts) + ".  \n")
    out += (f"Blank frames (`detection/blank.py`): {blank['frames_with_detections']} of {blank['frames']} "
            f"uniform or near-uniform frames get a detection at conf 0.25 (max score {blank['max_score']}).\n\n")
    return out


def block(m: dict) -> str:
    """The README block, from the metrics file's content ``m`` (``weights/<name>.metrics.json``): per-class table,
    real-check and blank-frame lines, and the benchmark table."""
    from detection import bench

    return (f"{held_table(m['ilc-heldout'], m['facewear4-val'])}\n{real_lines(m.get('real-checks'), m['blank-frames'])}"
            f"{bench.to_markdown(m['bench'])}")


def real_recall(real: dict | None) -> dict:
    """``{"real-checks-recall": {class: recall}}`` for a manifest entry (the gate reads it), or ``{}``."""
    if not real:
        return {}
    return {"real-checks-recall": {n: o["recall"] for n, o in real.get("true_class", {}).items()}}


def add_gate_args(ap: argparse.ArgumentParser) -> None:
    """The release gate's options (``facewear.gate``), shared by the detector release tools."""
    ap.add_argument("--force", action="store_true",
                    help="release even when the gate fails (worse than the released model on a real check); "
                         "the manifest entry records it")
    ap.add_argument("--against", default=None,
                    help="manifest name of the released model the gate compares with (default: --name's entry, "
                         "else the model the released default detector was exported from)")
    ap.add_argument("--remeasure-old", action="store_true",
                    help="measure the released model's gate figures now instead of reading what its release "
                         "recorded (use after a dataset rebuild)")
    ap.add_argument("--gate-tolerance", type=float, default=0.0,
                    help="a new figure may be this much below the old one and still pass (default 0)")


def released_entry(name: str, fallback_default: bool = True) -> dict | None:
    """The manifest entry named ``name``; else (``fallback_default``) the entry of the file the released default
    detector was exported from; None when there is none."""
    from detection import manifest

    if not manifest.MANIFEST.is_file():
        return None
    models = manifest.load()["models"]
    e = next((m for m in models if m["name"] == name), None)
    if e is None and fallback_default:
        d = next((m for m in models if m["name"] == DEFAULT_DETECTOR), None) or {}
        src = d.get("exported_from", d.get("file"))
        e = next((m for m in models if m["file"] == src), None)
    return e


def gate_detector(held: dict, real: dict | None, against: dict | None, val_kw: dict, a: argparse.Namespace) -> dict:
    """Run the release gate for a detector: the new model's held-out and real-check results against the released
    model ``against`` (figures as recorded; missing ones, or all with ``--remeasure-old``, measured on its file
    with ``val_kw``). Prints both side by side; exits when the new model is worse (unless ``--force``). Returns
    the manifest's ``gate`` record."""
    from detection import val
    from facewear import gate

    new = gate.detector_figures(held, real)
    if a.max_images:
        print(f"note: --max-images {a.max_images}: the new figures come from a subset, the recorded old ones from "
              "the full sets; add --remeasure-old for a like-for-like dry run")
    if against is None:
        return gate.enforce(gate.decide(None, new, gate.DETECT_CHECKS, force=a.force))
    old_file = WEIGHTS_DIR / against["file"]
    mfile = WEIGHTS_DIR / f"{against['name']}.metrics.json"
    recorded = gate.detector_figures_recorded(against, json.loads(mfile.read_text()) if mfile.is_file() else None)
    real_spec = DATASETS_DIR / "real-checks.yaml"

    def measure(keys: list[str]) -> dict:
        print(f"gate: measuring {', '.join(keys)} of the released {old_file.name} (not recorded by its release"
              + (", or --remeasure-old" if a.remeasure_old else "") + ")")
        kw = dict(imgsz=against.get("input_size") or 320, **val_kw)
        h = (val.run(str(old_file), data=str(DATASETS_DIR / "ilc-heldout.yaml"), **kw)
             if any(k.startswith("heldout") for k in keys) else None)
        r = (val.run(str(old_file), data=str(real_spec), **kw)
             if "real_sunglasses_recall" in keys and real_spec.is_file() else None)
        return gate.detector_figures(h, r)

    old, source = gate.old_figures(recorded, gate.DETECT_CHECKS, measure if old_file.is_file() else None,
                                   remeasure=a.remeasure_old)
    return gate.enforce(gate.decide(old, new, gate.DETECT_CHECKS, force=a.force, tol=a.gate_tolerance,
                                    against=against["name"], source=source))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=None, help="ultralytics run folder (holds weights/best.pt); required unless "
                    "--readme-only")
    ap.add_argument("--name", default="yolov5n-facewear4")
    ap.add_argument("--arch", default="yolov5n")
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--train-command", default=None, help="the training command (required unless --readme-only)")
    ap.add_argument("--readme-only", action="store_true",
                    help="re-render the README block from weights/<name>.metrics.json; measures nothing")
    ap.add_argument("--video", default=None, help="video for end-to-end FPS (default: ../shared/data/videos/faces_stage.mp4)")
    ap.add_argument("--skip-export", action="store_true")
    ap.add_argument("--max-images", type=int, default=None, help="evaluate on the first N images only (dry runs)")
    add_gate_args(ap)
    a = ap.parse_args()
    mfile = WEIGHTS_DIR / f"{a.name}.metrics.json"
    if a.readme_only:
        if not mfile.is_file():
            raise SystemExit(f"{mfile}: not found (release first)")
        write_marked_block(REPO_ROOT / "README.md", a.name, block(json.loads(mfile.read_text())),
                           "tools/release_yolo.py")
        return 0
    if not a.run or not a.train_command:
        raise SystemExit("--run and --train-command are required (unless --readme-only)")

    from detection import bench, export, manifest, val
    from detection.yolo.train import portable_checkpoint

    run = Path(a.run)
    best = run / "weights" / "best.pt"
    if not best.is_file():
        raise SystemExit(f"{best}: not found")
    pt = WEIGHTS_DIR / f"{a.name}.pt"
    try:
        check_not_inputs([pt], [best], "--name")  # a run inside weights/ must not be copied onto itself
    except OverwriteError as e:
        raise SystemExit(str(e)) from None
    # the gate's figures are measured on the run's checkpoint, before anything in weights/ is touched
    gate_plots = run / "release-plots"
    held = val.run(str(best), data=str(DATASETS_DIR / "ilc-heldout.yaml"), imgsz=a.imgsz,
                   plots_dir=str(gate_plots / f"{a.name}-heldout"), max_images=a.max_images)
    real_spec = DATASETS_DIR / "real-checks.yaml"
    real = None
    if real_spec.is_file():  # real sunglasses faces: measured, never trained or tuned on
        real = val.run(str(best), data=str(real_spec), imgsz=a.imgsz, max_images=a.max_images)
    against = released_entry(a.against or a.name, fallback_default=not a.against)
    gate_record = gate_detector(held, real, against, dict(max_images=a.max_images), a)
    for r in (held, real):
        if r is not None:
            r["model"] = str(pt)
    WEIGHTS_DIR.mkdir(exist_ok=True)
    portable_checkpoint(best, pt)  # best.pt with no machine path in its train_args
    if (gate_plots / f"{a.name}-heldout").is_dir():
        shutil.copytree(gate_plots / f"{a.name}-heldout", WEIGHTS_DIR / "plots" / f"{a.name}-heldout",
                        dirs_exist_ok=True)
    if not a.skip_export:
        export.run(str(pt), imgsz=a.imgsz, json_out=str(WEIGHTS_DIR / f"{a.name}.export.json"))
    synth = val.run(str(pt), data=str(DATASETS_DIR / "facewear4.yaml"), split="val", imgsz=a.imgsz,
                    plots_dir=str(WEIGHTS_DIR / "plots" / f"{a.name}-val"), max_images=a.max_images)
    metrics = {"ilc-heldout": stored(held), "facewear4-val": stored(synth), "gate": gate_record}
    if real is not None:
        metrics["real-checks"] = stored(real)
    from detection.blank import blank_frame_check
    from detection.registry import load_detector

    metrics["blank-frames"] = blank_frame_check(load_detector(str(pt), imgsz=a.imgsz, conf=0.25))
    video = a.video
    root = default_data_root()
    if video is None and root is not None and (root / "videos" / "faces_stage.mp4").is_file():
        video = str(root / "videos" / "faces_stage.mp4")
    if video is None:  # say so: a release without the video figure must not look like a complete one
        print(f"release_yolo: no video (--video, or videos/faces_stage.mp4 under {root or '../shared/data'}): "
              "the end-to-end video FPS is not measured", file=sys.stderr)
    b = bench.run(str(pt), imgsz=a.imgsz, video=video, json_out=str(WEIGHTS_DIR / f"{a.name}.bench.json"),
                  md_out=str(WEIGHTS_DIR / f"{a.name}.bench.md"), max_images=a.max_images,
                  iters=20 if a.max_images else 50,
                  command="python tools/release_yolo.py " + " ".join(shlex.quote(x) for x in sys.argv[1:]))
    metrics["bench"] = b
    metrics = portable_paths(metrics)
    write_json(mfile, metrics)
    for suffix in (".export.json", ".bench.json"):
        relativize_file(WEIGHTS_DIR / f"{a.name}{suffix}")
    ex = json.loads((WEIGHTS_DIR / f"{a.name}.export.json").read_text()) if (WEIGHTS_DIR / f"{a.name}.export.json").is_file() else {}
    common = dict(task="detect", architecture=a.arch, imgsz=a.imgsz, train_command=a.train_command,
                  data="datasets/facewear4.yaml")
    rows = {r["variant"]: r for r in b["rows"]}
    manifest.add_entry(pt, name=a.name, precision="fp16 weights (ultralytics checkpoint)",
                       metrics={"ilc-heldout": DetMetrics.from_json(held).head(),
                                "ilc-heldout-AP50": DetMetrics.from_json(held).ap50(),
                                "facewear4-val-AP50": DetMetrics.from_json(synth).ap50(),
                                **real_recall(real), "latency": rows.get("torch", {}).get("latency")},
                       gate=gate_record, **common)
    for prec, suffix in (("fp32", ""), ("fp16", "-fp16"), ("int8", "-int8")):
        f = WEIGHTS_DIR / f"{a.name}{suffix}.onnx"
        if not f.is_file():
            continue
        r = rows.get(f"onnx-{prec}", {})
        manifest.add_entry(f, name=f"{a.name}{suffix}-onnx", precision=prec,
                           metrics={"ilc-heldout": {MAP50: r.get(MAP50), MAP50_95: r.get(MAP50_95)},
                                    "ilc-heldout-AP50": r.get("AP50"), "latency": r.get("latency"),
                                    "agreement_with_torch": {k: v for k, v in ex.get("files", {}).get(prec, {}).items()
                                                             if k not in ("file", "bytes")}},
                           io=manifest.YOLO_ONNX_IO, exported_from=pt.name, **common)
    write_marked_block(REPO_ROOT / "README.md", a.name, block(metrics), "tools/release_yolo.py")
    print(f"released {a.name}: held-out mAP50 {held['mAP50']:.4f}, synthetic val mAP50 {synth['mAP50']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
