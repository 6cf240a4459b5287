"""``facewear data crops``: the crop-classifier dataset, cut from the four-class detection dataset.

Layout (ImageFolder-like, under ``build/crops`` by default)::

    <out>/<split>/<class>/<image stem>__<box>.jpg     split: train | val | heldout-real | heldout-synth
    <out>/index.csv                                    one row per crop: split, class, file, source image, box, ...

Each stored crop is a *context* crop: the square of side ``max(w, h) * CLS_STORE_CONTEXT`` centred on the
ground-truth box, at ``CLS_STORE_SIZE`` pixels. Training jitters the box inside it (``preprocess.from_context``)
to imitate a real detector; evaluation cuts the exact box. Splits follow the detection dataset's splits, which
keep whole source photos (and their composites) together.

``heldout-real`` is the held-out set (``ilc-heldout.yaml``) with its corrected labels. ``heldout-synth`` is the
same held-out photos with masks and sunglasses composited onto their faces (the build's overlay code, seeded
per photo), so all four classes are tested; every face of a composited photo is kept.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import multiprocessing as mp
import zlib
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from facewear.constants import (
    CLASS_NAMES,
    CLS_STORE_CONTEXT,
    CLS_STORE_SIZE,
    DATASETS_DIR,
    SEED,
    default_build_dir,
    default_data_root,
)
from facewear.formats import ImageAnn, read_yolo
from facewear.io import (
    ImageReadError,
    atomic_dir,
    image_size,
    list_images,
    read_image,
    write_image,
    write_text,
)

from .preprocess import square_crop

LOG = logging.getLogger("facewear.crops")
SPLITS = ("train", "val", "heldout-real", "heldout-synth")
MIN_SIDE = 8  # px: boxes smaller than this are not cropped (counted in the summary)
#: held-out synthetic recipe: what happens to each held-out face (same vocabulary as datasets/facewear4.recipe.yaml)
SYNTH_VARIANT = {"name": "heldout-synth", "p_face": {"sunglasses": 0.3, "mask": 0.25, "mask+sunglasses": 0.3},
                 "p_mask": {"sunglasses": 0.6}}


def context_crop(img: np.ndarray, box) -> np.ndarray | None:
    """The stored crop for one box (see module doc)."""
    return square_crop(img, box, CLS_STORE_SIZE, margin=CLS_STORE_CONTEXT - 1.0)


def _anns(spec_path: Path, split: str) -> tuple[list[tuple[Path, ImageAnn]], dict[str, dict]]:
    from facewear.data.layout import load_spec, split_paths

    spec = load_spec(spec_path)
    images, labels, meta_file = split_paths(spec, split)
    if not images.is_dir():
        raise FileNotFoundError(f"{images}: images of split {split!r} of {spec_path} not found "
                                "(run `facewear data build` first)")
    meta = {}
    if meta_file.is_file():
        for line in meta_file.read_text().splitlines():
            if line.strip():
                m = json.loads(line)
                meta[m["file"]] = m
    names = [spec["names"][i] for i in sorted(spec["names"])]
    out = []
    for p in list_images(images):
        w, h = image_size(p)
        out.append((p, read_yolo(labels / (p.stem + ".txt"), w, h, names=names, file=p.name)))
    return out, meta


_W: dict = {}


def _init(lib, out: str) -> None:
    cv2.setNumThreads(1)
    _W.update(lib=lib, out=Path(out))


def _cut(job: tuple[str, str, ImageAnn, dict, bool]) -> tuple[list[list], Counter]:
    """Cut the crops of one image; with ``synth`` composite overlays first. Returns (index rows, skip counts)."""
    split, path, ann, meta, synth = job
    rows, skipped = [], Counter()
    try:
        img = read_image(path)
    except (ImageReadError, OSError) as e:
        LOG.warning("%s: skipped (%s)", path, e)
        skipped["unreadable"] += 1
        return rows, skipped
    if synth:
        from facewear.data.build import make_composite

        rng = np.random.default_rng(zlib.crc32(f"{SEED}:{ann.file}:heldout-synth".encode()))
        res = make_composite(img, ann, [], SYNTH_VARIANT, _W["lib"], rng, min_face=24)
        if res is None:
            skipped["no overlay applied"] += 1
            return rows, skipped
        img, ann, _ = res
    stem = Path(ann.file).stem
    for i, b in enumerate(ann.boxes):
        if min(b.w, b.h) < MIN_SIDE:
            skipped[f"box < {MIN_SIDE} px"] += 1
            continue
        c = context_crop(img, b.xyxy())
        if c is None:
            skipped["empty crop"] += 1
            continue
        rel = f"{split}/{b.label}/{stem}__{i}.jpg"
        write_image(_W["out"] / rel, c, quality=95)
        rows.append([split, b.label, rel, ann.file, i, round(b.w, 1), round(b.h, 1),
                     int(bool(meta.get("synthetic", False)) or synth), meta.get("source", ""), meta.get("group", "")])
    return rows, skipped


def run(data: str | None = None, heldout: str | None = None, out: str | None = None, workers: int | None = None,
        data_root: str | None = None, no_synth: bool = False) -> dict:
    """Write the crop dataset; returns crop counts per split and class."""
    from facewear.data.build import load_overlays

    data_spec = Path(data) if data else DATASETS_DIR / "facewear4.yaml"
    held_spec = Path(heldout) if heldout else DATASETS_DIR / "ilc-heldout.yaml"
    out_dir = Path(out) if out else default_build_dir() / "crops"
    jobs = []
    for split in ("train", "val"):
        anns, meta = _anns(data_spec, split)
        jobs += [(split, str(p), a, meta.get(p.name, {}), False) for p, a in anns]
    if held_spec.is_file():
        anns, meta = _anns(held_spec, "test")
        jobs += [("heldout-real", str(p), a, meta.get(p.name, {}), False) for p, a in anns]
        if not no_synth:
            jobs += [("heldout-synth", str(p), a, meta.get(p.name, {}), True) for p, a in anns]
    else:
        LOG.warning("%s: held-out spec not found; no held-out crops", held_spec)
    root = Path(data_root) if data_root else default_data_root()
    lib = load_overlays(root) if root is not None and not no_synth else None
    if lib is None and any(j[4] for j in jobs):
        from facewear.data.procedural import procedural_overlays

        lib = procedural_overlays()
    rows, skipped = [], Counter()
    workers = workers or 2
    with atomic_dir(out_dir) as tmp:
        for s in SPLITS:
            for c in CLASS_NAMES:
                (tmp / s / c).mkdir(parents=True, exist_ok=True)
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers, initializer=_init, initargs=(lib, str(tmp))) as pool:
            for r, sk in tqdm(pool.imap_unordered(_cut, jobs, chunksize=16), total=len(jobs), desc="crops"):
                rows += r
                skipped.update(sk)
        rows.sort(key=lambda r: (SPLITS.index(r[0]), r[2]))
        with open(tmp / "index.csv", "w", newline="") as f:
            wr = csv.writer(f)
            wr.writerow(["split", "class", "file", "image", "box", "w", "h", "synthetic", "source", "group"])
            wr.writerows(rows)
        counts = {s: {c: 0 for c in CLASS_NAMES} for s in SPLITS}
        for r in rows:
            counts[r[0]][r[1]] += 1
        summary = {"out": str(out_dir), "counts": counts, "skipped": dict(skipped)}
        write_text(tmp / "summary.json", json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return summary


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help="detection spec with train/val (default: datasets/facewear4.yaml)")
    p.add_argument("--heldout", default=None, help="held-out spec (default: datasets/ilc-heldout.yaml)")
    p.add_argument("--out", default=None, help="output folder (default: $FACEWEAR_BUILD/crops or build/crops)")
    p.add_argument("--workers", type=int, default=None, help="processes (default 2)")
    p.add_argument("--data-root", default=None,
                   help="raw data with overlays/ for heldout-synth (default ../shared/data)")
    p.add_argument("--no-synth", action="store_true", help="skip the composited held-out crops")
