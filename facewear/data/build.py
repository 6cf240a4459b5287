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
from .realbox import CHECK_SOURCES, REVIEWED_SOURCES, read_labels
from .realbox import DEFAULT_LABELS as DEFAULT_REAL_LABELS

LOG = logging.getLogger("facewear.build")

HELDOUT = "ilc2021-heldout"
# Real photos boxed by `facewear data autobox` and reviewed by eye (datasets/real-labels.csv); the real
# checks among them are never training data.
TRAIN_SOURCES = ("kaggle-facemask", "ytf-landmarks", "chandrika-faces", *REVIEWED_SOURCES)
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
    background: dict[str, Any] | None = None  # a face-free image to make: {"kind": "uniform"|"crop", ...}


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
            try:
                b, p = det.detect(rgb)
            except Exception as e:  # noqa: BLE001  (one image MTCNN cannot handle must not stop the build)
                boxes[rel] = None
                report.skipped.append(f"{img}: MTCNN failed ({e})")
                continue
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


def collect_reviewed(root: Path, source: str, rows: list[dict[str, Any]], report: Report) -> list[RawItem]:
    """Photos of ``source`` with their reviewed boxes (``datasets/real-labels.csv``).

    Boxes decided ``keep`` or ``relabel`` are used; ``drop-box`` rows are left out; a photo with any
    ``drop-image`` or ``drop-crowd`` row is left out whole (missed faces would teach the model that a
    face is background).
    """
    by_img: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["source"] == source:
            by_img.setdefault(r["image"], []).append(r)
    items = []
    for rel, rs in sorted(by_img.items()):
        if any(r["decision"] in ("drop-image", "drop-crowd") for r in rs):
            continue
        keep = [r for r in rs if r["decision"] in ("keep", "relabel")]
        if not keep:
            continue
        img = root / source / rel
        try:
            w, h = image_size(img)
        except ImageReadError as e:
            report.skipped.append(str(e))
            continue
        ann = sanitize(ImageAnn(rel, w, h, [Box(r["x1"], r["y1"], r["x2"], r["y2"], r["class"]) for r in keep]), report)
        if ann.boxes:
            items.append(RawItem(source, f"{source}/{rel}", img, ann, group=f"{source}/{Path(rel).stem}"))
    return items


def load_real_labels(path: Path) -> list[dict[str, Any]]:
    """The reviewed label rows, or [] (with a warning) when the file does not exist."""
    if not path.is_file():
        LOG.warning("%s: no reviewed labels; the unboxed real sources are left out", path)
        return []
    return read_labels(path)


# --- background images ---------------------------------------------------------------------------
def make_uniform_background(spec: dict[str, Any]) -> np.ndarray:
    """A face-free frame from ``{"seed", "w", "h"}``: uniform, near-uniform (gradient, vignette, noise) or
    a blurred colour field, as camera start-up frames, walls and fades look. Deterministic per seed."""
    rng = np.random.default_rng(spec["seed"])
    h, w = int(spec["h"]), int(spec["w"])
    base = rng.integers(0, 256, 3).astype(np.float32)
    style = spec.get("style") or ["uniform", "gradient", "noise", "field"][int(rng.integers(4))]
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    if style == "gradient":
        t = np.linspace(0, 1, w if rng.random() < 0.5 else h, dtype=np.float32)
        other = rng.integers(0, 256, 3).astype(np.float32)
        ramp = base + (other - base) * t[:, None] * rng.uniform(0.1, 0.6)
        img[:] = ramp[None, :, :] if len(t) == w else ramp[:, None, :]
    elif style == "field":
        small = rng.integers(0, 256, (4, 4, 3)).astype(np.float32)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        img = cv2.GaussianBlur(img, (0, 0), max(w, h) / 12)
    if style != "uniform":
        img += rng.normal(0, rng.uniform(1, 8), (h, w, 1))
    return np.clip(img, 0, 255).astype(np.uint8)


def background_items(items: list[RawItem], fraction: float, seed: int) -> list[RawItem]:
    """About ``fraction`` x len(items) face-free images: a third uniform or near-uniform frames, the rest
    crops of real photos that stay clear of every labelled face (boxes grown by half). Crops follow
    their photo's split; frames get a split of their own from the seed."""
    rng = np.random.default_rng(seed)
    n = int(round(fraction * len(items)))
    out: list[RawItem] = []
    for k in range(n // 3):
        w, h = int(rng.integers(32, 640)), int(rng.integers(32, 640))
        spec = {"kind": "uniform", "seed": int(rng.integers(2**31)), "w": w, "h": h}
        out.append(RawItem("background", f"background/frame{k:04d}", Path(), ImageAnn(f"background__frame{k:04d}.jpg", w, h, []),
                           group=f"background/frame{k:04d}", background=spec))
    photos = [it for it in items if it.source not in ("ytf-landmarks", "chandrika-faces") and it.split]
    tries = 0
    while len(out) < n and photos and tries < 50 * n:
        tries += 1
        it = photos[int(rng.integers(len(photos)))]
        W, H = it.ann.width, it.ann.height
        cw, ch = int(rng.integers(64, max(65, W // 2))), int(rng.integers(64, max(65, H // 2)))
        if cw >= W or ch >= H:
            continue
        x, y = int(rng.integers(0, W - cw)), int(rng.integers(0, H - ch))
        if any(x < b.x2 + b.w / 2 and x + cw > b.x1 - b.w / 2 and y < b.y2 + b.h / 2 and y + ch > b.y1 - b.h / 2
               for b in it.ann.boxes):
            continue
        name = _safe(f"background__{it.source}__{Path(it.ann.file).stem}_bg{len(out):04d}")
        out.append(RawItem("background", it.origin, it.path, ImageAnn(f"{name}.jpg", cw, ch, []), group=it.group,
                           split=it.split, background={"kind": "crop", "box": [x, y, x + cw, y + ch], "name": name,
                                                       "from": it.source}))
    return out


# --- near duplicates and splits ------------------------------------------------------------
def phash_bits(path: Path) -> np.ndarray:
    import imagehash  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    with Image.open(path) as im:
        return np.asarray(imagehash.phash(im).hash, dtype=bool).reshape(-1)


def phash_matrix(paths: list[tuple[str, Path]], cache: Path | None = None) -> np.ndarray:
    """64-bit pHashes of ``(origin, path)`` pairs as an ``(N, 64)`` uint8 bit matrix, cached by origin, size
    and mtime (a file replaced under the same name does not keep its old hash)."""
    known = json.loads(cache.read_text()) if cache is not None and cache.is_file() else {}
    hashes = []
    for origin, path in tqdm(paths, desc="pHash", unit="img", leave=False):
        st = path.stat()
        key = f"{origin}|{st.st_size}|{st.st_mtime_ns}"
        if key not in known:
            known[key] = np.packbits(phash_bits(path)).tolist()
        hashes.append(np.unpackbits(np.array(known[key], np.uint8)))
    if cache is not None:
        write_json(cache, known, indent=None)
    return np.array(hashes, dtype=np.uint8).reshape(-1, 64)


def heldout_leaks(items: list[RawItem], held: list[RawItem], max_dist: int, cache: Path | None = None) -> list[int]:
    """Indices of ``items`` whose pHash is within ``max_dist`` bits of any held-out image (near-duplicates
    that would leak the test set into training)."""
    if not items or not held:
        return []
    A = phash_matrix([(it.origin, it.path) for it in items], cache)
    B = phash_matrix([(it.origin, it.path) for it in held], cache)
    return [i for i in range(len(items)) if int((A[i][None, :] != B).sum(1).min()) <= max_dist]


def near_duplicate_groups(items: list[RawItem], max_dist: int, cache: Path | None = None) -> int:
    """Merge the groups of images whose pHash distance is <= ``max_dist``; returns merges made."""
    H = phash_matrix([(it.origin, it.path) for it in items], cache)
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
    "eyeglasses": {"face": "face", "mask": "mask"},  # clear lenses: a hard negative, the class stays
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
    """Apply one recipe variant to a whole photo. Returns None when no face got an overlay.

    ``variant``: ``p_face`` / ``p_mask`` ({action: probability} for a face of that class) and optional
    ``min_turn``: only faces whose head turn ``|r - 0.5|`` (:func:`facewear.data.composite.head_pose`, from the
    68 landmarks; 0 frontal) is at least this get an overlay, for variants that target turned heads (real
    sunglasses photos turn further than most of our source faces).
    """
    from .composite import apply_eyeglasses, apply_mask, apply_sunglasses, head_pose, jpeg_roundtrip  # noqa: PLC0415
    from .landmarks import landmarks68, plausible  # noqa: PLC0415

    out = img.copy()
    gray = None
    new = ImageAnn(ann.file, ann.width, ann.height, [Box(b.x1, b.y1, b.x2, b.y2, b.label, dict(b.meta)) for b in ann.boxes])
    applied = []
    min_turn = float(variant.get("min_turn", 0.0))
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
        if min_turn and abs(head_pose(lm)[1] - 0.5) < min_turn:
            continue
        try:
            # draw on a copy: when a later step fails, an earlier one must not stay on a face whose label is kept
            trial = out.copy()
            steps = []
            if action in ("mask", "mask+sunglasses"):
                steps.append(apply_mask(trial, lm, b.xyxy(), lib, rng))
            if action in ("sunglasses", "mask+sunglasses"):
                steps.append(apply_sunglasses(trial, lm, b.xyxy(), lib, rng))
            if action == "eyeglasses":
                steps.append(apply_eyeglasses(trial, lm, b.xyxy(), lib, rng))
        except (ValueError, cv2.error) as e:
            LOG.debug("%s: overlay failed on box %d (%s)", ann.file, i, e)
            continue
        out = trial
        old = b.label
        b.label = ACTIONS[action][old]
        applied.append({"box": i, "action": action, "from": old, "to": b.label,
                        "overlays": [s.overlay for s in steps], "pose": steps[0].pose,
                        **({"placement": steps[0].placement} if steps[0].placement else {})})
    if not applied:
        return None
    return jpeg_roundtrip(out, rng), new, applied


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
    if it.background is not None:
        try:
            bg = it.background
            if bg["kind"] == "uniform":
                img = make_uniform_background(bg)
            else:
                x1, y1, x2, y2 = bg["box"]
                img = read_image(it.path)[y1:y2, x1:x2]
            fname = it.ann.file
            write_image(out / "images" / it.split / fname, img, quality=90)
            return [(it.split, ImageAnn(fname, img.shape[1], img.shape[0], []),
                     ImageMeta(file=fname, synthetic=bg["kind"] == "uniform", **base_meta))], []
        except (ImageReadError, OSError, ValueError, cv2.error, MemoryError) as e:
            return [], [f"{it.path}: background crop: {e}"]
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
    except (ImageReadError, OSError, ValueError, cv2.error, MemoryError) as e:
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
        from .procedural import random_sunglasses  # noqa: PLC0415

        lib = load_shared_overlays(data_root / "overlays")
        lib.sunglasses += random_sunglasses(np.random.default_rng(SEED), 40)  # variety no cut-out library has
        return lib
    from .procedural import procedural_overlays  # noqa: PLC0415

    LOG.warning("%s: no overlays folder; using the project's procedural masks and sunglasses", data_root / "overlays")
    return procedural_overlays()


def _write_split_files(root: Path, split: str, records: list[tuple[ImageAnn, ImageMeta]],
                       report: Report | None = None) -> None:
    records.sort(key=lambda r: r[0].file)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    for ann, _ in records:
        write_text(root / "labels" / split / f"{Path(ann.file).stem}.txt", yolo_lines(ann, report=report))
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
            _write_split_files(tmp, split, recs, report)
        write_text(tmp / "skipped.txt", "".join(s + "\n" for s in report.skipped))
        write_text(tmp / "label_problems.txt", "".join(ln + "\n" for ln in report.file_lines()))
    return splits


def count_boxes(records: list[tuple[ImageAnn, ImageMeta]]) -> Counter:
    return Counter(b.label for ann, _ in records for b in ann.boxes)


def _build_train(root: Path, out_dir: Path, spec_dir: Path, sources: list[str] | None, rcp: dict,
                 corr: list[Correction], lib: OverlayLibrary, workers: int, report: Report, strict: bool,
                 on_error: str, cache: Path, held: list[RawItem] | None = None,
                 real_labels: list[dict[str, Any]] | None = None) -> tuple[set[str], dict[str, dict[str, int]]]:
    """Collect, correct, check for held-out leaks, group, split, add background images and write
    ``facewear4``; returns (used corrections, counts per split)."""
    items: list[RawItem] = []
    wanted = sources or list(TRAIN_SOURCES)
    for src in wanted:
        if src in CHECK_SOURCES:
            raise ValueError(f"{src}: a real check, never training data")
        path = root / src
        if not path.is_dir():
            LOG.warning("%s: source not found, skipped", path)
            continue
        if src in REVIEWED_SOURCES:
            got = collect_reviewed(root, src, real_labels or [], report)
        elif src == "ytf-landmarks":
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
    max_dist = int(rcp.get("near_duplicate_hamming", 6))
    leaks = set(heldout_leaks(items, held or [], max_dist, cache / "phash.json"))
    if leaks:
        LOG.warning("%d training image(s) within pHash distance %d of a held-out image dropped: %s", len(leaks),
                    max_dist, [items[i].origin for i in sorted(leaks)][:5])
        report.skipped.extend(f"{items[i].path}: near-duplicate of a held-out image (leak), dropped" for i in sorted(leaks))
        items = [it for i, it in enumerate(items) if i not in leaks]
    merges = near_duplicate_groups(items, max_dist, cache / "phash.json")
    LOG.info("near-duplicate merges across groups: %d", merges)
    assign_splits(items, float(rcp.get("val_fraction", 0.15)), int(rcp.get("seed", SEED)))
    bg = background_items(items, float(rcp.get("background_fraction", 0.0)), int(rcp.get("seed", SEED)))
    if bg:
        assign_splits([b for b in bg if not b.split], float(rcp.get("val_fraction", 0.15)), int(rcp.get("seed", SEED)))
        LOG.info("background images (no faces): %d", len(bg))
        items += bg
    splits = _write_dataset("facewear4", items, out_dir, lib, rcp, workers, report, on_error)
    write_spec(spec_dir / "facewear4.yaml", out_dir / "facewear4", {"train": "images/train", "val": "images/val"})
    return used, {s: dict(count_boxes(r)) for s, r in splits.items()}


def _build_real_checks(root: Path, out_dir: Path, spec_dir: Path, hitems: list[RawItem],
                       real_labels: list[dict[str, Any]], lib: OverlayLibrary, workers: int, report: Report,
                       on_error: str) -> dict[str, dict[str, int]]:
    """``datasets/real-checks.yaml``: real sunglasses faces to measure on, never to train or tune on.

    The held-out photos holding a (corrected) sunglasses or mask_sunglasses face, with all their boxes,
    and ``cmu-faces`` (dark sunglasses and the same people without) with reviewed boxes.
    """
    items = [RawItem(it.source, it.origin, it.path, it.ann, it.group, split="test") for it in hitems
             if any(b.label in ("sunglasses", "mask_sunglasses") for b in it.ann.boxes)]
    for src in CHECK_SOURCES:
        for it in collect_reviewed(root, src, real_labels, report):
            it.split = "test"
            items.append(it)
    if not items:
        return {}
    splits = _write_dataset("real-checks", items, out_dir, lib, {}, workers, report, on_error)
    write_spec(spec_dir / "real-checks.yaml", out_dir / "real-checks", {"val": "images/test", "test": "images/test"},
               extra={"heldout": True})
    return {s: dict(count_boxes(r)) for s, r in splits.items()}


def run(data_root: str | None = None, out: str | None = None, specs: str | None = None,
        recipe: str | None = None, corrections: str | None = None, workers: int | None = None,
        on_error: str = "skip", skip_heldout: bool = False, sources: list[str] | None = None,
        heldout_only: bool = False, real_labels_file: str | None = None) -> dict:
    """Build ``facewear4`` (train/val), ``ilc-heldout`` (test) and ``real-checks`` (test); returns box counts
    per split and class.

    Raises:
        FileNotFoundError: no data root, recipe or training source.
        ValueError: a real-check source asked for as training data; a malformed reviewed label file.
    """
    root = Path(data_root) if data_root else default_data_root()
    if root is None or not root.is_dir():
        raise FileNotFoundError(f"{root or '../shared/data'}: data root not found; pass --data-root or set FACEWEAR_DATA")
    out_dir = Path(out) if out else default_build_dir()
    from ..io import check_dir_apart  # noqa: PLC0415

    for n in ("facewear4", "ilc-heldout", "real-checks"):  # replaced whole: must not overlap the data root
        check_dir_apart(out_dir / n, [root], "--out")
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
    real_labels = load_real_labels(Path(real_labels_file) if real_labels_file else DEFAULT_REAL_LABELS)
    held = root / HELDOUT
    if heldout_only and not held.is_dir():
        raise FileNotFoundError(f"{held}: held-out set not found")
    hreport = Report()
    hitems = collect_voc(held, HELDOUT, hreport, strict) if held.is_dir() else []
    if not hitems:
        LOG.warning("%s: no held-out set: the leak check cannot run", held)
    if not heldout_only:
        used, summary["facewear4"] = _build_train(root, out_dir, spec_dir, sources, rcp, corr, lib, workers, report,
                                                  strict, on_error, cache, held=hitems, real_labels=real_labels)

    if not skip_heldout and hitems:
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
        summary["real-checks"] = _build_real_checks(root, out_dir, spec_dir, hitems, real_labels, lib, workers, report,
                                                    on_error)
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
    p.add_argument("--real-labels", dest="real_labels_file", default=None,
                   help=f"reviewed boxes of the unboxed real photos (default: datasets/{DEFAULT_REAL_LABELS.name})")
