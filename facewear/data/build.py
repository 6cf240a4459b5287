"""``facewear data build``: the four-class dataset and the held-out spec from the raw public data.

Steps (each logged, with counts):

1. **collect** the real sets under the data root: ``kaggle-facemask`` (VOC),
   ``ytf-landmarks`` (one face per frame, box and landmarks from
   ``landmarks68.csv``), ``chandrika-faces`` (class folders; one face box per
   photo from MTCNN, cached) and, separately, ``ilc2021-heldout`` (VOC);
   labels go through :data:`~facewear.constants.SOURCE_CLASS_MAP`;
2. apply the reviewed **label corrections** (``datasets/corrections.csv``);
3. group images by source photo, identity and **near-duplicate** pHash, and
   **split** whole groups with a fixed seed;
4. make **composites** of whole photos as the recipe says
   (``datasets/facewear4.recipe.yaml``), with provenance per image;
5. write images, YOLO labels, COCO JSON and ``meta/*.jsonl`` into a temporary
   folder that is renamed into place only when complete, then the specs
   ``datasets/facewear4.yaml`` and ``datasets/ilc-heldout.yaml``.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import multiprocessing as mp
import os
import re
import shutil
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from tqdm import tqdm

from ..constants import CLASS_NAMES, DATASETS_DIR, SEED, default_build_dir, default_data_root
from ..formats import AnnotationError, Box, ImageAnn, Report, read_voc, sanitize, to_coco, yolo_lines
from ..io import ImageReadError, atomic_dir, image_size, list_images, read_image, write_image, write_json, write_text
from ..overlays import OverlayLibrary, load_shared_overlays
from .corrections import Correction, apply_corrections, load_corrections
from .layout import ImageMeta, write_spec

LOG = logging.getLogger("facewear.build")

HELDOUT = "ilc2021-heldout"
TRAIN_SOURCES = ("kaggle-facemask", "ytf-landmarks", "chandrika-faces")
DEFAULT_RECIPE = DATASETS_DIR / "facewear4.recipe.yaml"
DEFAULT_CORRECTIONS = DATASETS_DIR / "corrections.csv"


@dataclass
class RawItem:
    """One real image with its (mapped) labels and where it comes from."""

    source: str
    origin: str  # path relative to the data root
    path: Path
    ann: ImageAnn
    group: str
    landmarks: list[list[list[float]] | None] = field(default_factory=list)  # per box, optional
    corrections: list[dict[str, Any]] = field(default_factory=list)
    split: str = ""


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


# --- collect -------------------------------------------------------------------------------
def collect_voc(root: Path, source: str, report: Report, strict: bool) -> list[RawItem]:
    """A VOC set laid out as ``<root>/images`` + ``<root>/annotations``."""
    img_dir, ann_dir = root / "images", root / "annotations"
    if not img_dir.is_dir():
        raise FileNotFoundError(f"{img_dir}: images folder of {source} not found")
    files = list_images(img_dir)
    if not files:
        raise FileNotFoundError(f"{img_dir}: no images in {source} (empty folder)")
    items = []
    for img in files:
        rel = img.relative_to(img_dir)
        xml = ann_dir / rel.with_suffix(".xml")
        try:
            if not xml.is_file():
                raise AnnotationError(f"{xml}: annotation missing for {img}")
            w, h = image_size(img)  # also proves the image is readable enough to open
            unknown_before, degenerate_before = Counter(report.unknown_class), report.degenerate
            ann = read_voc(xml, None, report, image_path=img)
            if (ann.width, ann.height) != (w, h):
                sx, sy = w / ann.width, h / ann.height
                for b in ann.boxes:
                    b.x1, b.x2, b.y1, b.y2 = b.x1 * sx, b.x2 * sx, b.y1 * sy, b.y2 * sy
                ann.width, ann.height = w, h
            if not ann.boxes:
                unknown = sorted((report.unknown_class - unknown_before).keys())
                dropped = report.degenerate - degenerate_before
                why = ([f"unknown class(es) {unknown}"] if unknown else []) + (
                    [f"{dropped} box(es) outside the image or degenerate"] if dropped else [])
                raise AnnotationError(f"{xml}: no usable boxes ({'; '.join(why) or 'empty annotation'})")
        except (AnnotationError, ImageReadError) as e:
            if strict:
                raise
            report.skipped.append(str(e))
            continue
        ann.file = str(rel)
        items.append(RawItem(source, f"{source}/images/{rel}", img, ann, group=f"{source}/{rel.stem}"))
    return items


def collect_ytf(root: Path, report: Report, strict: bool) -> list[RawItem]:
    """YouTube Faces frames: one face each, box from the 68 landmarks; grouped by identity."""
    from .landmarks import box_from_landmarks  # noqa: PLC0415

    csv_path = root / "landmarks68.csv"
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path}: landmark table not found")
    items = []
    with open(csv_path, newline="") as f:
        for ln, row in enumerate(csv.DictReader(f), 2):
            try:
                img = root / "images" / row["image"]
                if not img.is_file():
                    raise ImageReadError(f"{img}: file not found (listed in {csv_path}:{ln})")
                w, h = int(row["width"]), int(row["height"])
                lm = np.array([[float(row[f"x{i}"]), float(row[f"y{i}"])] for i in range(68)], np.float32)
            except (KeyError, ValueError, TypeError, ImageReadError) as e:
                msg = str(e) if isinstance(e, ImageReadError) else f"{csv_path}:{ln}: bad row ({e})"
                if strict:
                    raise AnnotationError(msg) from None
                report.skipped.append(msg)
                continue
            ann = sanitize(ImageAnn(row["image"], w, h, [Box(*box_from_landmarks(lm, w, h), "face")]), report)
            identity = re.sub(r"_\d+$", "", Path(row["image"]).stem)
            items.append(RawItem("ytf-landmarks", f"ytf-landmarks/images/{row['image']}", img, ann,
                                 group=f"ytf/{identity}", landmarks=[lm.tolist()]))
    return items


def collect_folders(root: Path, source: str, report: Report, strict: bool, cache: Path) -> list[RawItem]:
    """Class-folder photos of one face each (``with_mask/``, ``without_mask/``); box from MTCNN, cached."""
    boxes: dict[str, list[float] | None] = json.loads(cache.read_text()) if cache.is_file() else {}
    todo = []
    files = []
    for cls_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for img in list_images(cls_dir):
            rel = str(img.relative_to(root))
            files.append((cls_dir.name, img, rel))
            if rel not in boxes:
                todo.append((img, rel))
    if todo:
        from facenet_pytorch import MTCNN  # noqa: PLC0415  (weights ship inside the package)

        det = MTCNN(keep_all=True, device="cpu", post_process=False)
        for img, rel in tqdm(todo, desc=f"{source}: MTCNN face boxes", unit="img"):
            try:
                rgb = read_image(img, rgb=True)
            except ImageReadError as e:
                boxes[rel] = None
                report.skipped.append(str(e))
                continue
            b, p = det.detect(rgb)
            if b is None or len(b) == 0:
                boxes[rel] = None
                continue
            i = int(np.argmax((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) * (np.asarray(p) > 0.9)))
            boxes[rel] = [float(v) for v in b[i]] if p[i] > 0.9 else None
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_json(cache, boxes)
    items = []
    for cls_name, img, rel in files:
        label = {"with_mask": "mask", "without_mask": "face"}.get(cls_name)
        if label is None:
            report.unknown_class[cls_name] += 1
            continue
        b = boxes.get(rel)
        if b is None:
            report.skipped.append(f"{img}: no face found by MTCNN (not used for detection)")
            continue
        try:
            w, h = image_size(img)
        except ImageReadError as e:
            report.skipped.append(str(e))
            continue
        ann = sanitize(ImageAnn(rel, w, h, [Box(*b, label)]), report)
        if ann.boxes:
            items.append(RawItem(source, f"{source}/{rel}", img, ann, group=f"{source}/{Path(rel).stem}"))
    return items


# --- near duplicates and splits ------------------------------------------------------------
def phash_bits(path: Path) -> np.ndarray:
    import imagehash  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    with Image.open(path) as im:
        return np.asarray(imagehash.phash(im).hash, dtype=bool).reshape(-1)


def near_duplicate_groups(items: list[RawItem], max_dist: int, cache: Path | None = None) -> int:
    """Merge the groups of images whose pHash distance is <= ``max_dist``; returns merges made."""
    known = json.loads(cache.read_text()) if cache is not None and cache.is_file() else {}
    hashes = []
    for it in tqdm(items, desc="pHash", unit="img", leave=False):
        st = it.path.stat()  # a file replaced under the same name must not keep its old hash
        key = f"{it.origin}|{st.st_size}|{st.st_mtime_ns}"
        if key not in known:
            known[key] = np.packbits(phash_bits(it.path)).tolist()
        hashes.append(np.unpackbits(np.array(known[key], np.uint8)))
    if cache is not None:
        write_json(cache, known, indent=None)
    H = np.array(hashes, dtype=np.uint8)
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    # union identical source groups first
    first: dict[str, int] = {}
    for i, it in enumerate(items):
        j = first.setdefault(it.group, i)
        parent[find(i)] = find(j)
    merges = 0
    for i in range(len(items)):
        d = (H[i + 1:] != H[i]).sum(1)
        for j in np.nonzero(d <= max_dist)[0] + i + 1:
            a, b = find(i), find(int(j))
            if a != b:
                parent[a] = b
                merges += 1
    for i, it in enumerate(items):
        it.group = items[find(i)].group
    return merges


def assign_splits(items: list[RawItem], val_fraction: float, seed: int) -> None:
    """Whole groups go to train or val by a seeded hash of the group name (stable across runs)."""
    for it in items:
        u = zlib.crc32(f"{seed}:{it.group}".encode()) / 2**32
        it.split = "val" if u < val_fraction else "train"


# --- composites ----------------------------------------------------------------------------
ACTIONS = {  # action -> {old class -> new class}
    "sunglasses": {"face": "sunglasses", "mask": "mask_sunglasses"},
    "mask": {"face": "mask"},
    "mask+sunglasses": {"face": "mask_sunglasses"},
}


def _choose(probs: dict[str, float] | None, rng: np.random.Generator) -> str | None:
    if not probs:
        return None
    u, acc = rng.random(), 0.0
    for action, p in probs.items():
        acc += p
        if u < acc:
            return action
    return None


def make_composite(img: np.ndarray, ann: ImageAnn, lms: list, variant: dict, lib: OverlayLibrary,
                   rng: np.random.Generator, min_face: float) -> tuple[np.ndarray, ImageAnn, list[dict]] | None:
    """Apply one recipe variant to a whole photo. Returns None when no face got an overlay."""
    from .composite import apply_mask, apply_sunglasses  # noqa: PLC0415
    from .landmarks import landmarks68, plausible  # noqa: PLC0415

    out = img.copy()
    gray = None
    new = ImageAnn(ann.file, ann.width, ann.height, [Box(b.x1, b.y1, b.x2, b.y2, b.label) for b in ann.boxes])
    applied = []
    for i, b in enumerate(new.boxes):
        probs = {"face": variant.get("p_face"), "mask": variant.get("p_mask")}.get(b.label)
        action = _choose(probs, rng)
        if action is None or b.w < min_face:
            continue
        lm = np.asarray(lms[i], np.float32) if i < len(lms) and lms[i] is not None else None
        if lm is None:
            gray = gray if gray is not None else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
            lm = landmarks68(gray, b.xyxy())
        if not plausible(lm, b.xyxy()):
            continue
        try:
            # draw on a copy: when a later step fails, an earlier one must not stay on a face whose label is kept
            trial = out.copy()
            steps = []
            if action in ("mask", "mask+sunglasses"):
                steps.append(apply_mask(trial, lm, b.xyxy(), lib, rng))
            if action in ("sunglasses", "mask+sunglasses"):
                steps.append(apply_sunglasses(trial, lm, b.xyxy(), lib, rng))
        except (ValueError, cv2.error) as e:
            LOG.debug("%s: overlay failed on box %d (%s)", ann.file, i, e)
            continue
        out = trial
        old = b.label
        b.label = ACTIONS[action][old]
        applied.append({"box": i, "action": action, "from": old, "to": b.label,
                        "overlays": [s.overlay for s in steps], "pose": steps[0].pose})
    if not applied:
        return None
    return out, new, applied


# --- worker ----------------------------------------------------------------------------------
_W: dict[str, Any] = {}


def _init_worker(lib: OverlayLibrary, recipe: dict, out_root: str) -> None:
    cv2.setNumThreads(1)
    _W.update(lib=lib, recipe=recipe, out=Path(out_root))


def _process(it: RawItem) -> tuple[list[tuple[str, ImageAnn, ImageMeta]], list[str]]:
    """Write one real image and its composite variants; returns (records, errors)."""
    out: Path = _W["out"]
    recipe = _W["recipe"]
    stem = _safe(f"{it.source}__{Path(it.ann.file).with_suffix('')}")
    records, errors = [], []
    base_meta = dict(split=it.split, source=it.source, origin=it.origin, group=it.group, corrections=it.corrections)
    try:
        img = None
        fname = f"{stem}.jpg"
        dst = out / "images" / it.split / fname
        w, h = it.ann.width, it.ann.height
        if it.path.suffix.lower() in (".jpg", ".jpeg") and image_size(it.path) == _raw_size(it.path):
            shutil.copyfile(it.path, dst)
        else:
            img = read_image(it.path)
            write_image(dst, img, quality=95)
        ann = ImageAnn(fname, w, h, it.ann.boxes)
        records.append((it.split, ann, ImageMeta(file=fname, synthetic=False, **base_meta)))
        variants = recipe.get("sources", {}).get(it.source, {}).get("variants", [])
        if variants:
            img = img if img is not None else read_image(it.path)
            for v in variants:
                rng = np.random.default_rng(zlib.crc32(f"{recipe.get('seed', SEED)}:{it.origin}:{v['name']}".encode()))
                res = make_composite(img, ann, it.landmarks, v, _W["lib"], rng, recipe.get("min_face", 24))
                if res is None:
                    continue
                cimg, cann, applied = res
                cname = f"{stem}__{v['name']}.jpg"
                write_image(out / "images" / it.split / cname, cimg, quality=int(rng.integers(82, 96)))
                cann.file = cname
                records.append((it.split, cann, ImageMeta(file=cname, synthetic=True, overlays=applied,
                                                          **{**base_meta, "corrections": []})))
    except (ImageReadError, OSError, ValueError) as e:
        errors.append(f"{it.path}: {e}")
    return records, errors


def _raw_size(path: Path) -> tuple[int, int]:
    from PIL import Image  # noqa: PLC0415

    with Image.open(path) as im:
        return im.size


# --- build -------------------------------------------------------------------------------------
def load_overlays(data_root: Path) -> OverlayLibrary:
    """The public overlays under ``<data_root>/overlays``, else the project's drawn ones."""
    if (data_root / "overlays" / "masks" / "masks.cfg").is_file():
        return load_shared_overlays(data_root / "overlays")
    from .procedural import procedural_overlays  # noqa: PLC0415

    LOG.warning("%s: no overlays folder; using the project's procedural masks and sunglasses", data_root / "overlays")
    return procedural_overlays()


def _write_split_files(root: Path, split: str, records: list[tuple[ImageAnn, ImageMeta]]) -> None:
    records.sort(key=lambda r: r[0].file)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    for ann, _ in records:
        write_text(root / "labels" / split / f"{Path(ann.file).stem}.txt", yolo_lines(ann))
    anns = []
    for ann, meta in records:
        a = ImageAnn(ann.file, ann.width, ann.height, ann.boxes,
                     meta={"source": meta.source, "synthetic": meta.synthetic, "origin": meta.origin})
        anns.append(a)
    write_json(root / "coco" / f"{split}.json", to_coco(anns, info={"description": f"facewear {root.name} {split}"}),
               indent=None)
    write_text(root / "meta" / f"{split}.jsonl", "".join(m.to_json() + "\n" for _, m in records))


def _write_dataset(name: str, items: list[RawItem], out_dir: Path, lib: OverlayLibrary, recipe: dict,
                   workers: int, report: Report, on_error: str) -> dict[str, list[tuple[ImageAnn, ImageMeta]]]:
    wanted = sorted({it.split for it in items} | ({"train", "val"} if "test" not in {it.split for it in items} else set()))
    splits: dict[str, list[tuple[ImageAnn, ImageMeta]]] = {s: [] for s in wanted}
    with atomic_dir(out_dir / name) as tmp:
        for s in wanted:
            (tmp / "images" / s).mkdir(parents=True, exist_ok=True)
        args = (lib, recipe, str(tmp))
        if workers > 1:
            # spawn, not fork: a forked child inherits torch/OpenMP thread state (MTCNN ran in
            # this process) and can deadlock
            ctx = mp.get_context("spawn")
            with ctx.Pool(workers, initializer=_init_worker, initargs=args) as pool:
                results = pool.imap(_process, items, chunksize=8)
                results = list(tqdm(results, total=len(items), desc=f"build {name}", unit="img"))
        else:
            _init_worker(*args)
            results = [_process(it) for it in tqdm(items, desc=f"build {name}", unit="img")]
        for recs, errs in results:
            if errs and on_error == "stop":
                raise ImageReadError("; ".join(errs))
            report.skipped.extend(errs)
            for split, ann, meta in recs:
                splits.setdefault(split, []).append((ann, meta))
        for split, recs in splits.items():
            _write_split_files(tmp, split, recs)
        write_text(tmp / "skipped.txt", "".join(s + "\n" for s in report.skipped))
    return splits


def count_boxes(records: list[tuple[ImageAnn, ImageMeta]]) -> Counter:
    return Counter(b.label for ann, _ in records for b in ann.boxes)


def _build_train(root: Path, out_dir: Path, spec_dir: Path, sources: list[str] | None, rcp: dict,
                 corr: list[Correction], lib: OverlayLibrary, workers: int, report: Report, strict: bool,
                 on_error: str, cache: Path) -> tuple[set[str], dict[str, dict[str, int]]]:
    """Collect, correct, group, split and write ``facewear4``; returns (used corrections, counts per split)."""
    items: list[RawItem] = []
    wanted = sources or list(TRAIN_SOURCES)
    for src in wanted:
        path = root / src
        if not path.is_dir():
            LOG.warning("%s: source not found, skipped", path)
            continue
        if src == "ytf-landmarks":
            got = collect_ytf(path, report, strict)
        elif (path / "annotations").is_dir():
            got = collect_voc(path, src, report, strict)
        else:
            got = collect_folders(path, src, report, strict, cache / f"{src}-mtcnn.json")
        LOG.info("%s: %d images, %d boxes", src, len(got), sum(len(i.ann.boxes) for i in got))
        items += got
    if not items:
        raise FileNotFoundError(f"{root}: no training source found (looked for {', '.join(wanted)})")
    used = apply_corrections(items, corr)
    merges = near_duplicate_groups(items, int(rcp.get("near_duplicate_hamming", 6)), cache / "phash.json")
    LOG.info("near-duplicate merges across groups: %d", merges)
    assign_splits(items, float(rcp.get("val_fraction", 0.15)), int(rcp.get("seed", SEED)))
    splits = _write_dataset("facewear4", items, out_dir, lib, rcp, workers, report, on_error)
    write_spec(spec_dir / "facewear4.yaml", out_dir / "facewear4", {"train": "images/train", "val": "images/val"})
    return used, {s: dict(count_boxes(r)) for s, r in splits.items()}


def run(data_root: str | None = None, out: str | None = None, specs: str | None = None,
        recipe: str | None = None, corrections: str | None = None, workers: int | None = None,
        on_error: str = "skip", skip_heldout: bool = False, sources: list[str] | None = None,
        heldout_only: bool = False) -> dict:
    """Build ``facewear4`` (train/val) and ``ilc-heldout`` (test); returns box counts per split and class."""
    root = Path(data_root) if data_root else default_data_root()
    if root is None or not root.is_dir():
        raise FileNotFoundError(f"{root or '../shared/data'}: data root not found; pass --data-root or set FACEWEAR_DATA")
    out_dir = Path(out) if out else default_build_dir()
    spec_dir = Path(specs) if specs else DATASETS_DIR
    recipe_path = Path(recipe) if recipe else DEFAULT_RECIPE
    if not recipe_path.is_file():
        raise FileNotFoundError(f"{recipe_path}: build recipe not found")
    rcp = yaml.safe_load(recipe_path.read_text()) or {}
    corr_path = Path(corrections) if corrections else DEFAULT_CORRECTIONS
    corr = load_corrections(corr_path) if corr_path.is_file() else []
    workers = workers or min(os.cpu_count() or 1, 4)
    strict = on_error == "stop"
    report = Report()
    cache = out_dir / "cache"
    cache.mkdir(parents=True, exist_ok=True)

    summary: dict[str, Any] = {"facewear4": {}}
    used: set[str] = set()
    lib = load_overlays(root)
    if not heldout_only:
        used, summary["facewear4"] = _build_train(root, out_dir, spec_dir, sources, rcp, corr, lib, workers, report,
                                                  strict, on_error, cache)

    held = root / HELDOUT
    if heldout_only and not held.is_dir():
        raise FileNotFoundError(f"{held}: held-out set not found")
    if not skip_heldout and held.is_dir():
        hreport = Report()
        hitems = collect_voc(held, HELDOUT, hreport, strict)
        used |= apply_corrections(hitems, corr)
        for it in hitems:
            it.split = "test"
        hsplits = _write_dataset("ilc-heldout", hitems, out_dir, lib, {}, workers, hreport, on_error)
        # ultralytics wants a `val` key; `train` is deliberately absent: never train on the held-out set
        write_spec(spec_dir / "ilc-heldout.yaml", out_dir / "ilc-heldout", {"val": "images/test", "test": "images/test"},
                   extra={"heldout": True})
        summary["ilc-heldout"] = {s: dict(count_boxes(r)) for s, r in hsplits.items()}
        hreport.warn("ilc-heldout")
        report.merge(hreport)
    report.warn("build")
    unmatched = [c.key() for c in corr if c.key() not in used and (not heldout_only or c.source == HELDOUT)]
    if unmatched:
        LOG.warning("%d correction(s) matched no box: %s", len(unmatched), unmatched[:5])
    tv = Counter()
    for s in ("train", "val"):
        tv.update(summary["facewear4"].get(s, {}))
    if heldout_only:
        del summary["facewear4"]
    else:
        summary["facewear4"]["train+val"] = dict(tv)
    summary["skipped"] = len(report.skipped)
    summary["unmatched_corrections"] = len(unmatched)
    for name in CLASS_NAMES if not heldout_only else ():
        LOG.info("train+val %-16s %6d boxes", name, tv.get(name, 0))
    print(json.dumps({k: v for k, v in summary.items()}, indent=1))
    return summary


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", default=None, help="raw public data (default: $FACEWEAR_DATA or ../shared/data)")
    p.add_argument("--out", default=None, help="built datasets folder (default: $FACEWEAR_BUILD or build/)")
    p.add_argument("--specs", default=None, help="where the YAML specs go (default: datasets/)")
    p.add_argument("--recipe", default=None, help=f"build recipe (default: {DEFAULT_RECIPE.name})")
    p.add_argument("--corrections", default=None, help=f"reviewed label corrections (default: {DEFAULT_CORRECTIONS.name})")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores, up to 4)")
    p.add_argument("--on-error", choices=("skip", "stop"), default="skip",
                   help="skip a bad file and report it (default), or stop at the first one")
    p.add_argument("--skip-heldout", action="store_true", help="do not build the held-out spec")
    p.add_argument("--heldout-only", action="store_true", help="rebuild only the held-out spec")
    p.add_argument("--sources", nargs="+", default=None, help=f"training sources (default: {' '.join(TRAIN_SOURCES)})")
