"""``facewear bench``: accuracy, size and speed of a YOLO model and its ONNX variants, on this machine.

For the torch ``.pt`` and each ONNX file beside it (fp32, fp16, int8):
held-out mAP50 / mAP50-95 and per-class AP50 (through ``facewear val``, the
same code for every variant), file size, and latency p50/p95 of the network
at batch 1 with 1 and 2 threads after a warm-up (timm ``benchmark`` style).
Optionally the end-to-end video FPS (decode, detect, track, write crops) of
``facewear predict`` on a video. Writes a JSON file and a markdown table.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from facewear.constants import CLASS_NAMES, DATASETS_DIR, WEIGHTS_DIR
from facewear.io import write_json, write_text
from facewear.metrics import AP50, MAP50, MAP50_95, DetMetrics
from facewear.timing import machine

from .registry import is_cascade_spec


def variants(pt: Path) -> dict[str, Path]:
    """The model and the ONNX exports that sit beside it."""
    out = {"torch": pt}
    for prec, suffix in (("onnx-fp32", ".onnx"), ("onnx-fp16", "-fp16.onnx"), ("onnx-int8", "-int8.onnx")):
        f = pt.with_name(pt.stem + suffix)
        if f.is_file():
            out[prec] = f
    return out


def run(model: str = str(WEIGHTS_DIR / "yolov5n-facewear4.pt"), data: str = str(DATASETS_DIR / "ilc-heldout.yaml"),
        imgsz: int | None = None, video: str | None = None, json_out: str | None = None, md_out: str | None = None,
        iters: int = 50, max_images: int | None = None, command: str | None = None, suite: str = "detector",
        models: list[str] | None = None, out: str | None = None, crops: str | None = None,
        synth_data: str | None = None, readme: bool | str | None = None,
        slice_models: list[str] | None = None) -> dict[str, Any]:
    """Benchmark ``model`` and its ONNX exports (or, by ``suite``, the classifiers / cascades in ``models``, or
    the model card of every shipped model: :func:`detection.card.run`). ``imgsz`` None: the card runs each model at
    its own input size; the other suites at the model's own size (a ``.pt``'s training size, an ONNX file's
    input), 320 for a cascade."""
    from facewear.io import check_not_inputs

    ins = [Path(m) for m in (model, data, video, synth_data, *(models or ())) if m and "+" not in str(m)]
    for opt, out_file in (("--json", json_out), ("--md", md_out), ("--out", out)):
        if out_file:
            check_not_inputs([out_file], ins, opt)
    if suite == "detector" and models:  # the CLI's --model fills ``models``
        if len(models) != 1:
            raise ValueError(f"--suite detector benchmarks one model; got {len(models)}: {' '.join(models)}")
        model, models = models[0], None
    if suite == "card":
        from .card import run as card

        return card(models=models, data=data, synth_data=synth_data, video=video, out=out, max_images=max_images,
                    iters=iters, imgsz=imgsz, readme=readme, command=command, slice_models=slice_models)
    if imgsz is None and suite == "detector":
        from .registry import load_detector

        imgsz = load_detector(model).imgsz
    imgsz = imgsz or 320
    if suite in ("cls", "cascade"):
        if not models:
            raise ValueError(f"--suite {suite} needs --model (one or more)")
        from classification.bench import bench_classifiers

        from .cascade_bench import bench_cascades

        if suite == "cls":
            return bench_classifiers(models, data=crops, out=out, iters=max(iters, 100), command=command)
        return bench_cascades(models, data=data, imgsz=imgsz, out=out, iters=min(iters, 20), max_images=max_images,
                              command=command)
    from .registry import model_bytes, model_name
    from .speed import cascade_latency, time_variants, video_fps
    from .val import run as val

    vs: dict[str, Path | str]
    if is_cascade_spec(model):  # one row, timed end to end
        vs = {"cascade": model}
        lat = {"cascade": cascade_latency(model, data, imgsz, iters=iters)}
    else:
        pt = Path(model)
        if not pt.is_file():
            raise FileNotFoundError(f"{pt}: model not found")
        vs = variants(pt)
        onnx_files = {k.removeprefix("onnx-"): v for k, v in vs.items() if k != "torch"}
        lat = time_variants(pt, onnx_files, imgsz, iters=iters)
    rows = []
    for key, f in vs.items():
        m = DetMetrics.from_json(val(str(f), data=data, imgsz=imgsz, max_images=max_images))
        ap = m.ap50()
        rows.append({"variant": key, "file": model_name(f), "MB": round(model_bytes(f) / 1e6, 2),
                     MAP50: round(m.map50, 4), MAP50_95: round(m.map50_95, 4),
                     AP50: {n: round(ap[n], 4) for n in CLASS_NAMES},
                     "instances": {n: m.per_class[n]["instances"] for n in CLASS_NAMES},
                     "latency": lat.get(key, {})})
    res: dict[str, Any] = {"model": str(model), "data": data, "imgsz": imgsz, "machine": machine(),
                           "command": command or "facewear bench " + " ".join(shlex.quote(a) for a in sys.argv[2:]),
                           "rows": rows}
    if video:
        res["video"] = video_fps(vs.get("onnx-fp32", next(iter(vs.values()))), video, imgsz)
    md = to_markdown(res)
    print(md)
    if json_out:
        write_json(json_out, res)
    if md_out:
        write_text(md_out, md)
    return res


def to_markdown(res: dict[str, Any]) -> str:
    lines = [f"Machine: {res['machine']}  ", f"Data: `{Path(res['data']).name}`, input {res['imgsz']} px, "
             f"command: `{res['command']}`", "",
             "| variant | file | MB | mAP50 | mAP50-95 | " + " | ".join(f"AP50 {n}" for n in CLASS_NAMES)
             + " | p50 1t ms | p95 1t ms | p50 2t ms | p95 2t ms |",
             "|---|---|---:|---:|---:|" + "---:|" * len(CLASS_NAMES) + "---:|---:|---:|---:|"]
    for r in res["rows"]:
        lt = r["latency"]
        ap = " | ".join(f"{r['AP50'][n]:.3f}" if r["AP50"][n] == r["AP50"][n] else "n/a" for n in CLASS_NAMES)
        lines.append(f"| {r['variant']} | `{r['file']}` | {r['MB']} | {r['mAP50']:.3f} | {r['mAP50-95']:.3f} | {ap} | "
                     f"{lt.get('1t', {}).get('p50_ms', 0):.1f} | {lt.get('1t', {}).get('p95_ms', 0):.1f} | "
                     f"{lt.get('2t', {}).get('p50_ms', 0):.1f} | {lt.get('2t', {}).get('p95_ms', 0):.1f} |")
    if res.get("video"):
        v = res["video"]
        lines += ["", f"Video `{v['video']}`: {v['frames']} frames in {v['seconds']} s = **{v['fps']} FPS** end to end "
                      f"(decode, detect at {res['imgsz']} px, {'track, ' if v['track'] else ''}write crops)."]
    if any(r["variant"] == "cascade" for r in res["rows"]):
        lines += ["", ("Cascade latency is end to end on one image of the split (find faces, crop, classify each), "
                       "not a single network forward.")]
    inst = res["rows"][0]["instances"] if res["rows"] else {}
    lines += ["", "Instances in the evaluated split: " + ", ".join(f"{n} {inst.get(n, 0)}" for n in CLASS_NAMES) + "."]
    return "\n".join(lines) + "\n"


def add_args(p: argparse.ArgumentParser) -> None:
    """The options; their defaults are :func:`run`'s (an option not given is left out)."""
    d = argparse.SUPPRESS
    p.add_argument("--model", dest="models", nargs="+", action="extend", default=d, metavar="MODEL",
                   help="--suite detector: one .pt (ONNX files beside it are included) or cascade FINDER+CLASSIFIER "
                        "(default weights/yolov5n-facewear4.pt); --suite cls / cascade / card: one or more models "
                        "(list them or repeat --model; card default: every model in weights/)")
    p.add_argument("--models", dest="models", nargs="+", action="extend", default=d,
                   help=argparse.SUPPRESS)  # deprecated spelling of --model
    p.add_argument("--data", default=d,
                   help="dataset spec for accuracy (default datasets/ilc-heldout.yaml)")
    p.add_argument("--imgsz", type=int, default=d, help="inference size in pixels (default: each model's own, "
                   "320 for a cascade suite)")
    p.add_argument("--video", default=d, help="also measure end-to-end video FPS on this file (--suite card: "
                   "default ../shared/data/videos/faces_stage.mp4 when present; none: no video)")
    p.add_argument("--json", dest="json_out", default=d, help="write the report as JSON here")
    p.add_argument("--md", dest="md_out", default=d, help="write the markdown table here")
    p.add_argument("--iters", type=int, default=d, help="timed iterations per latency figure")
    p.add_argument("--max-images", type=int, default=d,
                   help="evaluate on part of each split: the first N images (--suite card: N evenly spaced ones)")
    p.add_argument("--suite", choices=("detector", "cls", "cascade", "card"), default=d,
                   help="detector: --model and its exports (default); cls: the classifier table over the --model "
                        "checkpoints (exports made beside them); cascade: the detectors and cascades in --model "
                        "compared on --data; card: the model card weights/README.md over every shipped model "
                        "(or the --model list)")
    p.add_argument("--out", default=d, help="for --suite cls / cascade: write <out>.md, .json (and .png); "
                   "for --suite card: the card (default weights/README.md; card.json and plots/ beside it)")
    p.add_argument("--synth-data", default=d,
                   help="for --suite card: synthetic spec, val split (default datasets/facewear4.yaml; none: skip)")
    p.add_argument("--readme", nargs="?", const=True, default=d,
                   help="for --suite card: also write the headline table into README.md (or this file) between "
                        "<!-- card:begin/end -->; done anyway when --out is the default")
    p.add_argument("--slice-model", dest="slice_models", nargs="+", action="extend", default=d, metavar="MODEL",
                   help="for --suite card: also measure these models with sliced inference (--slice), beside their "
                        "rows (default: the released weights/yolov5n-facewear4.pt; none: no sliced rows)")
    p.add_argument("--crops", default=d, help="for --suite cls: crop dataset root (default build/crops)")
