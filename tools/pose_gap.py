"""How far real sunglasses faces turn, against the faces our sunglasses composites were drawn on.

    python tools/pose_gap.py --out weights/pose-gap.md

The head turn is :func:`facewear.data.composite.head_pose`'s ratio ``r`` (the nose tip's position between the jaw
sides; 0.5 = frontal), from dlib's 68 landmarks (:func:`facewear.data.landmarks.landmarks68`) inside each ground
truth box; the table gives ``|r - 0.5|`` per group. Groups: the ``sunglasses`` boxes of the ``cmu-faces``
photos of the real checks, by the pose in their file names (``straight``, ``left``, ``right``, ``up``), and a
sample of the training faces that the build gave sunglasses (``meta/train.jsonl`` overlays with action
``sunglasses``, on a bare face (``to`` = ``sunglasses``) and on a masked one (``mask_sunglasses``) apart; measured
on the composite, so with its sunglasses on). dlib's predictor is trained on mostly
frontal faces and tends to pull landmarks of strong profiles toward frontal, so large turns read smaller than
they are, on both sides.
"""
from __future__ import annotations

import argparse
import random
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from facewear.constants import DATASETS_DIR
from facewear.data.layout import load_spec, read_meta_file, split_paths
from facewear.io import image_size, portable_path, write_json, write_text
from facewear.timing import machine

THRESHOLDS = (0.2, 0.3)


def face_boxes(image: Path, label: Path) -> list[tuple[int, tuple[float, float, float, float]]]:
    """``[(class id, (x1, y1, x2, y2) pixels)]`` of a YOLO label file of the four classes, in file order
    (:func:`facewear.formats.read_yolo`)."""
    from facewear.constants import CLASS_NAMES
    from facewear.formats import read_yolo

    w, h = image_size(image)
    return [(CLASS_NAMES.index(b.label), tuple(b.xyxy())) for b in read_yolo(label, w, h).boxes]


def turn(image: Path, box: tuple[float, float, float, float]) -> float:
    """``|r - 0.5|`` of the face in ``box`` of ``image`` (0 frontal, up to 0.5 and beyond for a profile)."""
    import cv2

    from facewear.data.composite import head_pose
    from facewear.data.landmarks import landmarks68
    from facewear.io import read_image

    gray = cv2.cvtColor(read_image(image), cv2.COLOR_BGR2GRAY)
    return abs(head_pose(landmarks68(gray, box))[1] - 0.5)


def measure(checks: str | Path, data: str | Path, sample: int, seed: int = 0) -> dict[str, list[float]]:
    """``{group: [|r - 0.5| per face]}`` for the cmu-faces sunglasses faces by pose and ``sample`` training faces
    with a sunglasses composite (bare and masked faces apart). Raises FileNotFoundError when the checks hold no
    cmu-faces sunglasses photo or the training split has no provenance file, ValueError on a spec without the
    split, a photo name without a cmu-faces pose, or a provenance line that is not a record."""
    from cmu_poses import PREFIX, cmu_pose

    out: dict[str, list[float]] = defaultdict(list)
    spec = load_spec(checks)
    images, labels, _ = split_paths(spec, "test")
    sunglasses = [i for i, n in spec["names"].items() if n == "sunglasses"]
    photos = sorted(images.glob(f"{PREFIX}*"))
    if not photos:
        raise FileNotFoundError(f"{images}: no cmu-faces sunglasses photos ({PREFIX}*) in {checks}")
    for img in photos:
        pose = cmu_pose(img.name)
        for c, box in face_boxes(img, labels / (img.stem + ".txt")):
            if c in sunglasses:
                out[f"cmu-faces {pose}"].append(turn(img, box))
    spec = load_spec(data)
    images, labels, meta = split_paths(spec, "train")
    drawn = [(m.file, o["box"], o.get("to")) for m in read_meta_file(meta) for o in m.overlays
             if o.get("action") == "sunglasses"]
    random.Random(seed).shuffle(drawn)
    names = spec["names"]
    skipped = 0
    for name, k, to in drawn[:sample]:
        img = images / name
        boxes = face_boxes(img, labels / (Path(name).stem + ".txt"))
        if k >= len(boxes) or names.get(boxes[k][0]) != to:  # the overlay's box is not that label row
            skipped += 1
            continue
        group = "training sunglasses composites, bare face" if to == "sunglasses" else \
            "training sunglasses composites, masked face"
        out[group].append(turn(img, boxes[k][1]))
    if skipped:
        print(f"pose_gap: {skipped} sampled overlays did not match their label row; left out", file=sys.stderr)
    return dict(out)


def render(res: dict[str, list[float]], argv: str, machine_name: str | None = None) -> str:
    """The Markdown report: machine (default this one, :func:`facewear.timing.machine`), command, and per group
    n, median, 90th percentile and the shares above :data:`THRESHOLDS` of ``|r - 0.5|``."""
    lines = ["# Head turn of real sunglasses faces and of our sunglasses composites", "",
             f"Machine: {machine_name or machine()}. Command: `{argv}`. Turn: `|r - 0.5|` of "
             "`facewear.data.composite.head_pose` (nose tip between the jaw sides, dlib 68 landmarks in the "
             "ground-truth box; 0 = frontal). The build names a face `left`/`right` beyond 0.12.", "",
             "| faces | n | median | 90th percentile | " + " | ".join(f"share > {t}" for t in THRESHOLDS) + " |",
             "|---|---:|---:|---:|" + "---:|" * len(THRESHOLDS)]
    for group, v in res.items():
        a = np.asarray(v)
        lines.append(f"| {group} | {len(a)} | {np.median(a):.3f} | {np.percentile(a, 90):.3f} | "
                     + " | ".join(f"{np.mean(a > t):.2f}" for t in THRESHOLDS) + " |")
    return "\n".join(lines) + "\n"


def render_saved(saved: dict) -> str:
    """The Markdown report again from the JSON :func:`main` wrote beside it (``turn``, ``command``, ``machine``);
    nothing is measured. KeyError names a missing field."""
    return render(saved["turn"], saved["command"], saved["machine"])


def main(argv: list[str] | None = None) -> int:
    """``python tools/pose_gap.py [--checks SPEC] [--data SPEC] [--sample N] [--out FILE.md]``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checks", default=str(DATASETS_DIR / "real-checks.yaml"), help="the real checks spec")
    ap.add_argument("--data", default=str(DATASETS_DIR / "facewear4.yaml"), help="the training spec")
    ap.add_argument("--sample", type=int, default=700, help="training sunglasses faces to measure (default 700)")
    ap.add_argument("--out", default=None, help="write the Markdown table here (and its JSON beside it)")
    a = ap.parse_args(argv)
    res = measure(a.checks, a.data, a.sample)
    shown = " ".join(["python tools/pose_gap.py"] + [  # the options that differ from the defaults, portable paths
        f"--{k} {portable_path(str(getattr(a, k)))}" for k in ("checks", "data", "sample")
        if getattr(a, k) != ap.get_default(k)])
    text = render(res, shown, machine())
    if a.out:
        write_text(a.out, text)
        write_json(Path(a.out).with_suffix(".json"), {"sample": a.sample, "command": shown, "machine": machine(),
                                                      "turn": res})
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
