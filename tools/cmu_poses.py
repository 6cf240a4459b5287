#!/usr/bin/env python3
"""Real sunglasses recall on ``cmu-faces`` by head pose: which poses a detector loses.

    python tools/cmu_poses.py --model E=weights/yolov5n-facewear4.pt \\
        --model H=runs/yolo/v5n-640-ft2-gray/weights/best.pt --out weights/cmu-poses.md
    python tools/cmu_poses.py --merge weights/cmu-poses.json --model N=runs/yolo/NAME/weights/best.pt \\
        --out weights/cmu-poses.md      # add a row; the merged rows keep their figures

``cmu-faces`` (the CMU "Face Images" set, T. Mitchell) names each photo ``<person>_<pose>_<expression>_<eyes>``
with pose ``straight``, ``left``, ``right`` or ``up``. Its sunglasses photos make up most of the real sunglasses
faces of ``datasets/real-checks.yaml``, so the real sunglasses recall of the release gate moves with them. For
every model this runs ``facewear val``'s detection pass (:func:`detection.val.detect_split`) on the real checks
and, per pose, reports how many sunglasses faces have any box (IoU >= 0.5, score >= 0.25: *found*) and how many
of those are named ``sunglasses`` (``detection.cascade_bench.found_and_named``). It only measures: never train or
tune on the real checks.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from real_ab import _pair  # LABEL=VALUE arguments, as real_ab parses them (tools/ is this script's folder)

from facewear.constants import DATASETS_DIR
from facewear.io import portable_path, read_report_json, write_json, write_text
from facewear.timing import machine

PREFIX = "cmu-faces_sunglasses__"  # file names in the built real checks: <source>_<folder>__<photo>
POSES = ("straight", "left", "right", "up")


def cmu_pose(name: str) -> str | None:
    """The pose of a built ``cmu-faces`` sunglasses photo from its file name (``cmu-faces_sunglasses__<person>_
    <pose>_...``), None for any other photo. Raises ValueError naming a file whose pose is not one of
    :data:`POSES`."""
    if not name.startswith(PREFIX):
        return None
    parts = name[len(PREFIX):].split("_")
    if len(parts) < 2 or parts[1] not in POSES:
        raise ValueError(f"{name}: no cmu-faces pose ({'/'.join(POSES)}) as the second field of the name")
    return parts[1]


def pose_groups(gt: dict) -> dict[int, str]:
    """``{annotation id: pose}`` for the ``sunglasses`` boxes of the ``cmu-faces`` sunglasses photos of the COCO
    ground truth ``gt`` (file name ``cmu-faces_sunglasses__<person>_<pose>_...``); other photos and boxes of
    other classes are left out. Raises ValueError naming a file whose pose is not one of :data:`POSES`."""
    pose_of = {}
    for im in gt["images"]:
        pose = cmu_pose(Path(im["file_name"]).name)
        if pose is not None:
            pose_of[im["id"]] = pose
    sunglasses = {c["id"] for c in gt.get("categories", []) if c["name"] == "sunglasses"}
    return {a["id"]: pose_of[a["image_id"]] for a in gt["annotations"]
            if a["image_id"] in pose_of and a["category_id"] in sunglasses}


def measure(model: str, data: str, imgsz: int | None = None, pad: float | None = None) -> dict[str, dict]:
    """Per pose: ``n``, ``found`` and ``named_if_found`` (shares) and ``recall`` (found and named) at conf 0.25.

    ``pad``: each photo is first placed in a ``pad`` times larger grey canvas
    (:class:`detection.detector.PadCanvas`), so the faces reach the model ``pad`` times smaller."""
    from detection.cascade_bench import found_and_named
    from detection.detector import PadCanvas
    from detection.registry import load_detector
    from detection.val import detect_split
    from facewear.data.layout import load_spec

    spec = load_spec(data)
    det = load_detector(model, imgsz=imgsz, conf=0.001, iou=0.6)  # val's defaults; found_and_named cuts at 0.25
    if pad:
        det = PadCanvas(det, pad)
    gt, dets, _ = detect_split(det, spec, "test" if "test" in spec else "val")
    groups = pose_groups(gt)
    if not groups:
        raise SystemExit(f"{data}: no {PREFIX}* photos (build the real checks with ../shared/data/cmu-faces)")
    out = found_and_named(gt, dets, conf=0.25, groups=groups)
    order = {p: i for i, p in enumerate(POSES)}
    out = dict(sorted(out.items(), key=lambda kv: order[kv[0]]))
    for s in out.values():
        s["recall"] = round((s["found"] or 0) * (s["named_if_found"] or 0), 4)
    return out


def render(results: dict[str, dict], models: dict[str, str], data: str, imgsz: int | None = None,
           machine_name: str | None = None, pad: float | None = None) -> str:
    """The Markdown report (paths as given: pass :func:`facewear.io.portable_path` ones); ``machine_name``
    defaults to this machine (:func:`facewear.timing.machine`)."""
    f = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    args = " ".join(f"--model {k!r}={v}" for k, v in models.items()) + (f" --imgsz {imgsz}" if imgsz else "")
    args += f" --pad {pad:g}" if pad else ""
    lines = ["# Real sunglasses on cmu-faces, by head pose", "",
             f"Machine: {machine_name or machine()}. Command: `python tools/cmu_poses.py {args} --data {data}`. "
             "Found: any box with IoU >= 0.5 at score >= 0.25; named: the best-overlapping box says `sunglasses`; "
             "recall: both." + (f" Each photo was placed in the middle of a {pad:g} times larger grey canvas "
                                "(`--pad`), so its face reached the model that many times smaller." if pad else ""),
             "", "| model | pose | n | found | named if found | recall |", "|---|---|---:|---:|---:|---:|"]
    for label, per_pose in results.items():
        lines += [f"| {label} | {p} | {s['n']} | {f(s['found'])} | {f(s['named_if_found'])} | {f(s['recall'])} |"
                  for p, s in per_pose.items()]
    return "\n".join(lines) + "\n"


def render_saved(saved: dict) -> str:
    """The Markdown report again from the JSON :func:`main` wrote beside it (``models``, ``data``, ``imgsz``,
    ``machine``, ``results``); nothing is measured. KeyError names a missing field."""
    return render(saved["results"], saved["models"], saved["data"], saved.get("imgsz"), saved["machine"],
                  saved.get("pad"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", default=[], help="LABEL=PATH (.pt or .onnx); repeat")
    ap.add_argument("--merge", nargs="+", default=[],
                    help="earlier JSON outputs of this tool whose rows go into the report as measured then (same "
                         "machine, data, input size and --pad only; merged rows first, then --model)")
    ap.add_argument("--data", default="datasets/real-checks.yaml", help="the real checks spec")
    ap.add_argument("--imgsz", type=int, default=None, help="input size (default: each model's own)")
    ap.add_argument("--pad", type=float, default=None,
                    help="place each photo in a K times larger grey canvas first, so its face reaches the model K "
                         "times smaller (a face-size diagnostic; default: the photos as they are)")
    ap.add_argument("--out", default=None, help="write the Markdown table here (and its JSON beside it)")
    a = ap.parse_args(argv)
    if a.pad is not None and not a.pad >= 1:
        raise SystemExit(f"--pad {a.pad:g}: must be at least 1")
    pad = a.pad if a.pad and a.pad != 1 else None
    models = _pair(a.model, "model")
    if not models and not a.merge:
        raise SystemExit("give --model LABEL=PATH and/or --merge FILE.json")
    data = Path(a.data) if Path(a.data).is_file() else DATASETS_DIR / Path(a.data).name
    if not data.is_file():
        raise SystemExit(f"{a.data}: spec not found (facewear data build writes datasets/real-checks.yaml)")
    results: dict[str, dict] = {}
    shown: dict[str, str] = {}
    for f in a.merge:
        old = read_report_json(f, "tools/cmu_poses.py --out", ("models", "results"),
                               {"machine": machine(), "data": portable_path(data), "imgsz": a.imgsz, "pad": pad})
        results.update(old["results"])
        shown.update(old["models"])
    results.update({label: measure(path, str(data), a.imgsz, pad) for label, path in models.items()})
    shown.update({k: portable_path(v) for k, v in models.items()})  # committed reports name no machine directory
    md = render(results, shown, portable_path(data), a.imgsz, pad=pad)
    if a.out:
        write_text(Path(a.out), md)
        write_json(Path(a.out).with_suffix(".json"), {"models": shown, "data": portable_path(data),
                                                      "imgsz": a.imgsz, **({"pad": pad} if pad else {}),
                                                      "machine": machine(), "results": results})
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
