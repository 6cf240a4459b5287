"""``facewear data build`` end to end on generated data only (no ../shared).

The generated sources mimic the real ones: a Kaggle-like VOC set with the
public labels, YouTube-Faces-like frames with a 68-landmark table, and an
ILC-like held-out VOC set. Faces are drawn (skin ellipse, brows, eyes, nose,
mouth) where :func:`~facewear.data.landmarks.mean_landmarks` puts them, so
the landmarks handed to the composites fit the drawing and dlib is never
needed. Every build runs with ``workers=1`` and the procedural overlay
library is drawn once per module.
"""
from __future__ import annotations

import csv
import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from conftest import voc_xml

from facewear.constants import CLASS_IDS, CLASS_NAMES
from facewear.data import build
from facewear.data import composite as fw_composite
from facewear.data.corrections import load_corrections, write_corrections
from facewear.data.landmarks import mean_landmarks, plausible
from facewear.data.layout import load_spec, read_meta
from facewear.data.procedural import procedural_overlays
from facewear.formats import Box, ImageAnn

PUBLIC_TO_OURS = {"with_mask": "mask", "without_mask": "face", "mask_weared_incorrect": "mask",
                  "with_incorrect_mask": "mask"}


# --- generated media -------------------------------------------------------------------------
def draw_face(img: np.ndarray, box, rng: np.random.Generator) -> np.ndarray:
    """Draw a simple face filling ``box`` (in place); returns its mean 68 landmarks."""
    x1, y1, x2, y2 = box
    lm = mean_landmarks(box)
    skin = tuple(int(v) for v in rng.integers([90, 120, 170], [140, 170, 230]))
    cv2.ellipse(img, (int((x1 + x2) / 2), int((y1 + y2) / 2)), (int((x2 - x1) / 2), int((y2 - y1) / 2)),
                0, 0, 360, skin, -1, cv2.LINE_AA)
    for sl in (slice(36, 42), slice(42, 48)):
        e = lm[sl].mean(0)
        cv2.circle(img, (int(e[0]), int(e[1])), max(int(0.05 * (x2 - x1)), 2), (40, 30, 30), -1, cv2.LINE_AA)
    for sl in (slice(17, 22), slice(22, 27)):
        cv2.polylines(img, [lm[sl].astype(np.int32)], False, (50, 60, 80), 2, cv2.LINE_AA)
    cv2.polylines(img, [lm[27:31].astype(np.int32)], False, (80, 100, 150), 1, cv2.LINE_AA)
    cv2.fillPoly(img, [lm[48:60].astype(np.int32)], (70, 70, 170), cv2.LINE_AA)
    return lm


def face_image(seed: int, size=(160, 120), boxes=()) -> tuple[np.ndarray, list[np.ndarray]]:
    """A colourful smooth background (different per seed, so pHashes differ) with faces drawn in ``boxes``."""
    rng = np.random.default_rng(seed)
    w, h = size
    img = cv2.resize(rng.integers(0, 256, (3, 4, 3)).astype(np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    img = np.clip(img.astype(np.int16) + rng.integers(-6, 7, img.shape), 0, 255).astype(np.uint8)
    return img, [draw_face(img, b, rng) for b in boxes]


def write_voc_image(src: Path, name: str, img: np.ndarray, objects) -> None:
    """``src/images/<name>`` + ``src/annotations/<stem>.xml``."""
    (src / "images").mkdir(parents=True, exist_ok=True)
    (src / "annotations").mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(src / "images" / name), img)
    h, w = img.shape[:2]
    (src / "annotations" / f"{Path(name).stem}.xml").write_text(voc_xml(name, w, h, objects))


TWO_BOXES = ((10.0, 20.0, 70.0, 96.0), (90.0, 24.0, 150.0, 100.0))
ONE_BOX = ((50.0, 22.0, 110.0, 98.0),)


def write_kaggle(root: Path, n: int = 8, seed0: int = 0) -> dict[str, list[tuple[str, tuple]]]:
    """A Kaggle-like VOC source with the public labels; returns {image name: [(label, box), ...]}."""
    src = root / "kaggle-facemask"
    labels = ("with_mask", "without_mask", "mask_weared_incorrect")
    truth = {}
    for i in range(n):
        boxes = TWO_BOXES if i % 2 == 0 else ONE_BOX
        img, _ = face_image(seed0 + i, boxes=boxes)
        objects = [(labels[(i + j) % 3], b) for j, b in enumerate(boxes)]
        name = f"k{i:02d}.png" if i % 3 else f"k{i:02d}.jpg"  # both the copy and the re-encode path
        write_voc_image(src, name, img, objects)
        truth[name] = objects
    return truth


YTF_PEOPLE = ("Alice_Archer", "Bob_Brown", "Carol_Chen", "Dan_Diaz", "Eve_Evans", "Fay_Fox")


def ytf_box(k: int) -> tuple[float, float, float, float]:
    return (40.0 + 6 * k, 18.0 + 2 * k, 104.0 + 6 * k, 98.0 + 2 * k)


def write_ytf(root: Path, people=YTF_PEOPLE, frames: int = 3, seed0: int = 500) -> list[str]:
    """YTF-like frames ``Name_Surname_NN.jpg`` (different backgrounds per frame) and ``landmarks68.csv``."""
    src = root / "ytf-landmarks"
    (src / "images").mkdir(parents=True, exist_ok=True)
    cols = ["image", "source_split", "width", "height"] + [f"{a}{i}" for i in range(68) for a in "xy"]
    rows, names = [], []
    for p, person in enumerate(people):
        for k in range(frames):
            box = ytf_box(k)
            img, (lm,) = face_image(seed0 + 10 * p + k, boxes=[box])
            name = f"{person}_{k + 1:02d}.jpg"
            assert cv2.imwrite(str(src / "images" / name), img)
            rows.append([name, "train", img.shape[1], img.shape[0]] + [f"{v:.2f}" for v in lm.reshape(-1)])
            names.append(name)
    with open(src / "landmarks68.csv", "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(cols)
        wr.writerows(rows)
    return names


def write_heldout(root: Path, n: int = 4, seed0: int = 900) -> dict[str, list[tuple[str, tuple]]]:
    src = root / build.HELDOUT
    labels = ("with_incorrect_mask", "with_mask", "without_mask")
    truth = {}
    for i in range(n):
        img, _ = face_image(seed0 + i, boxes=TWO_BOXES)
        objects = [(labels[(i + j) % 3], b) for j, b in enumerate(TWO_BOXES)]
        name = f"h{i}.jpg"
        write_voc_image(src, name, img, objects)
        truth[name] = objects
    return truth


def write_recipe(path: Path, variants: dict[str, list[dict]] | None = None, val_fraction: float = 0.5) -> Path:
    recipe = {"seed": 0, "val_fraction": val_fraction, "near_duplicate_hamming": 6, "min_face": 24,
              "sources": {src: {"variants": v} for src, v in (variants or {}).items()}}
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def run_build(data: Path, out: Path, recipe: Path, corrections: Path | None = None, **kw) -> dict:
    kw.setdefault("sources", ["kaggle-facemask"])
    kw.setdefault("skip_heldout", True)
    return build.run(data_root=str(data), out=str(out), specs=str(out.parent / f"{out.name}-specs"),
                     recipe=str(recipe), corrections=str(corrections or out.parent / "no-corrections.csv"),
                     workers=1, **kw)


# --- reading a built dataset -----------------------------------------------------------------
def labels_of(root: Path, split: str, file: str) -> list[tuple[int, float, float, float, float]]:
    txt = root / "labels" / split / f"{Path(file).stem}.txt"
    out = []
    for line in txt.read_text().splitlines():
        c, *v = line.split()
        out.append((int(c), *(float(x) for x in v)))
    return out


def metas(root: Path) -> list:
    splits = [p.stem for p in sorted((root / "meta").glob("*.jsonl"))]
    return [m for s in splits for m in read_meta(root, s)]


def yolo_of(box, w: int, h: int) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = box
    return ((x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lib():
    return procedural_overlays(seed=0)


@pytest.fixture(autouse=True)
def _drawn_overlays_once(monkeypatch, lib):
    """Every build in this module uses the module's overlay library (drawing it takes seconds)."""
    monkeypatch.setattr(build, "load_overlays", lambda root: lib)


@dataclass
class Built:
    data: Path
    out: Path
    specs: Path
    summary: dict
    kaggle: dict
    ytf: list[str]
    heldout: dict
    corrections: Path
    recipe: Path
    dups: tuple[str, ...] = ()


# The corrections of the main build: (source, image, index of the box in the truth, old, new).
CORR_KAGGLE = ("kaggle-facemask", "k01.png", 0, "face", "sunglasses")  # k01 box 0 is without_mask
CORR_HELD = (build.HELDOUT, "h1.jpg", 1, "face", "mask_sunglasses")  # h1 box 1 is without_mask
CORR_UNMATCHED = ("kaggle-facemask", "k02.png", (0.0, 0.0, 6.0, 6.0))


def _main_data(data: Path) -> dict:
    kaggle = write_kaggle(data)
    # near duplicates: one photo saved twice under other names and once a little brighter
    img, _ = face_image(77, boxes=TWO_BOXES)
    objects = [("without_mask", TWO_BOXES[0]), ("with_mask", TWO_BOXES[1])]
    src = data / "kaggle-facemask"
    write_voc_image(src, "dup_a.png", img, objects)
    write_voc_image(src, "zz_copy_of_a.png", img, objects)
    write_voc_image(src, "other_bright.png", np.clip(img.astype(np.int16) + 25, 0, 255).astype(np.uint8), objects)
    return kaggle


@pytest.fixture(scope="module")
def main_build(tmp_path_factory, lib) -> Built:
    tmp = tmp_path_factory.mktemp("main_build")
    data = tmp / "data"
    kaggle = _main_data(data)
    ytf = write_ytf(data)
    held = write_heldout(data)
    recipe = write_recipe(tmp / "recipe.yaml", {
        "ytf-landmarks": [{"name": "sg", "p_face": {"sunglasses": 1.0}},
                          {"name": "msg", "p_face": {"mask+sunglasses": 1.0}}]})
    rows = []
    for source, image, j, old, new in (CORR_KAGGLE, CORR_HELD):
        truth = (kaggle if source == "kaggle-facemask" else held)[image]
        assert PUBLIC_TO_OURS[truth[j][0]] == old
        x1, y1, x2, y2 = truth[j][1]
        # reviewed boxes are rounded, not identical: matched by IoU
        rows.append(dict(source=source, image=image, x1=x1 + 1.5, y1=y1 - 1, x2=x2 + 1, y2=y2 + 2,
                         old_class=old, new_class=new, note="drawn sunglasses"))
    s, im, b = CORR_UNMATCHED
    rows.append(dict(source=s, image=im, x1=b[0], y1=b[1], x2=b[2], y2=b[3], old_class="face",
                     new_class="sunglasses", note="stale"))
    corr = tmp / "corrections.csv"
    write_corrections(rows, corr, header="reviewed on the test's drawn faces")
    out = tmp / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(build, "load_overlays", lambda root: lib)
        summary = build.run(data_root=str(data), out=str(out), specs=str(tmp / "specs"), recipe=str(recipe),
                            corrections=str(corr), workers=1, skip_heldout=False,
                            sources=["kaggle-facemask", "ytf-landmarks"])
    return Built(data, out, tmp / "specs", summary, kaggle, ytf, held, corr, recipe,
                 dups=("dup_a.png", "zz_copy_of_a.png", "other_bright.png"))


# --- class map, spec, COCO and meta ------------------------------------------------------------
def test_class_map_gives_face_and_mask_ids(main_build):
    root = main_build.out / "facewear4"
    by_origin = {m.origin: m for m in metas(root) if not m.synthetic}
    for name, objects in main_build.kaggle.items():
        m = by_origin[f"kaggle-facemask/images/{name}"]
        assert m.source == "kaggle-facemask" and m.split in ("train", "val")
        got = sorted(labels_of(root, m.split, m.file), key=lambda r: r[1])
        want = []
        for j, (label, box) in enumerate(objects):
            cls = PUBLIC_TO_OURS[label]
            if (name, j) == (CORR_KAGGLE[1], CORR_KAGGLE[2]):
                cls = CORR_KAGGLE[4]
            want.append((CLASS_IDS[cls], *yolo_of(box, 160, 120)))
        want.sort(key=lambda r: r[1])
        assert [r[0] for r in got] == [r[0] for r in want], name
        np.testing.assert_allclose([r[1:] for r in got], [r[1:] for r in want], atol=1e-4)
    ids = {r[0] for m in by_origin.values() if m.source == "kaggle-facemask"
           for r in labels_of(root, m.split, m.file)}
    assert {CLASS_IDS["face"], CLASS_IDS["mask"]} <= ids


def test_spec_written_with_names_and_relative_path(main_build):
    spec_file = main_build.specs / "facewear4.yaml"
    raw = yaml.safe_load(spec_file.read_text())
    assert not Path(raw["path"]).is_absolute()
    assert raw["names"] == {0: "face", 1: "mask", 2: "sunglasses", 3: "mask_sunglasses"}
    assert (raw["train"], raw["val"]) == ("images/train", "images/val")
    spec = load_spec(spec_file)
    assert Path(spec["path"]) == (main_build.out / "facewear4").resolve()
    for split in ("train", "val"):
        assert any((Path(spec["path"]) / spec[split]).iterdir()), split


def test_coco_meta_labels_and_summary_agree(main_build):
    root = main_build.out / "facewear4"
    summary = main_build.summary["facewear4"]
    for split in ("train", "val"):
        images = sorted(p.name for p in (root / "images" / split).iterdir())
        label_files = sorted(p.stem for p in (root / "labels" / split).glob("*.txt"))
        meta = read_meta(root, split)
        coco = json.loads((root / "coco" / f"{split}.json").read_text())
        assert images and sorted(Path(f).stem for f in images) == label_files
        assert sorted(m.file for m in meta) == images
        assert sorted(im["file_name"] for im in coco["images"]) == images
        assert all(m.split == split for m in meta)
        lines = Counter(CLASS_NAMES[r[0]] for f in images for r in labels_of(root, split, f))
        cats = {c["id"]: c["name"] for c in coco["categories"]}
        assert [cats[i] for i in range(4)] == list(CLASS_NAMES)
        assert Counter(cats[a["category_id"]] for a in coco["annotations"]) == lines
        assert summary[split] == dict(lines)
    tv = Counter(summary["train"]) + Counter(summary["val"])
    assert summary["train+val"] == dict(tv)


# --- held-out set ------------------------------------------------------------------------------
def test_heldout_spec_has_no_train_and_maps_incorrect_mask(main_build):
    raw = yaml.safe_load((main_build.specs / "ilc-heldout.yaml").read_text())
    assert "train" not in raw
    assert raw["test"] == "images/test" and raw["heldout"] is True
    spec = load_spec(main_build.specs / "ilc-heldout.yaml")
    root = main_build.out / "ilc-heldout"
    assert Path(spec["path"]) == root.resolve()
    assert sorted(p.name for p in (root / "images").iterdir()) == ["test"]
    meta = read_meta(root, "test")
    assert len(meta) == len(main_build.heldout)
    assert all(m.split == "test" and not m.synthetic and m.source == build.HELDOUT for m in meta)
    for m in meta:
        name = Path(m.origin).name
        got = sorted(labels_of(root, "test", m.file), key=lambda r: r[1])
        want = []
        for j, (label, _) in enumerate(main_build.heldout[name]):
            cls = PUBLIC_TO_OURS[label]
            if (name, j) == (CORR_HELD[1], CORR_HELD[2]):
                cls = CORR_HELD[4]
            want.append(CLASS_IDS[cls])
        assert [r[0] for r in got] == want, name  # boxes are left to right in TWO_BOXES
    # with_incorrect_mask is mask, never a class of its own
    n_incorrect = sum(lab == "with_incorrect_mask" for objs in main_build.heldout.values() for lab, _ in objs)
    assert n_incorrect and main_build.summary["ilc-heldout"]["test"]["mask"] >= n_incorrect
    # no held-out image leaks into the training dataset
    origins = {m.origin for m in metas(main_build.out / "facewear4")}
    assert not any(o.startswith(build.HELDOUT) for o in origins)


# --- corrections -------------------------------------------------------------------------------
def test_corrections_relabel_training_and_heldout(main_build):
    for name, (source, image, j, old, new) in (("facewear4", CORR_KAGGLE), ("ilc-heldout", CORR_HELD)):
        root = main_build.out / name
        [m] = [m for m in metas(root) if not m.synthetic and m.origin == f"{source}/images/{image}"]
        assert len(m.corrections) == 1
        c = m.corrections[0]
        assert (c["from"], c["to"]) == (old, new)
        assert c["box"][0] == pytest.approx(dict(main_build.kaggle, **main_build.heldout)[image][j][1][0] + 1.5)
        got = sorted(labels_of(root, m.split, m.file), key=lambda r: r[1])
        assert got[j][0] == CLASS_IDS[new]
    # nothing else was corrected
    n = sum(len(m.corrections) for name in ("facewear4", "ilc-heldout") for m in metas(main_build.out / name))
    assert n == 2


def test_unmatched_correction_is_reported(main_build, caplog, tmp_path):
    assert main_build.summary["unmatched_corrections"] == 1
    # and skipping the held-out set leaves its correction unmatched too
    data = tmp_path / "data"
    write_kaggle(data, n=4)
    rows = [dict(source="kaggle-facemask", image="k01.png", x1=90, y1=24, x2=150, y2=100,
                 old_class="face", new_class="sunglasses"),  # k01 has one face, at 50..110: no match
            dict(source="kaggle-facemask", image="k03.jpg", x1=50, y1=22, x2=110, y2=98,
                 old_class="mask", new_class="mask_sunglasses"),
            # reaches past the image's left edge: matched once clipped, as the build clips its boxes
            dict(source="kaggle-facemask", image="k00.jpg", x1=-30, y1=20, x2=70, y2=96,
                 old_class="mask", new_class="mask_sunglasses")]
    write_corrections(rows, tmp_path / "c.csv")
    with caplog.at_level("WARNING", logger="facewear.build"):
        summary = run_build(data, tmp_path / "out", write_recipe(tmp_path / "r.yaml"), tmp_path / "c.csv")
    assert summary["unmatched_corrections"] == 1
    assert "kaggle-facemask/k01.png@90,24,150,100" in caplog.text
    assert summary["facewear4"]["train+val"].get("mask_sunglasses") == 2
    assert "sunglasses" not in summary["facewear4"]["train+val"]


@pytest.mark.parametrize("bad, message", [
    ({"new_class": "hat"}, "unknown class 'hat' in new_class"),
    ({"old_class": "without_mask"}, "unknown class 'without_mask' in old_class"),
    ({"x2": "12,5"}, "non-numeric box"),
    ({"y2": ""}, "non-numeric box"),
])
def test_load_corrections_rejects_bad_rows_naming_file_and_line(tmp_path, bad, message):
    good = dict(source="kaggle-facemask", image="k00.jpg", x1=1, y1=2, x2=30, y2=40, old_class="face",
                new_class="sunglasses", note="")
    rows = [good, {**good, "image": "k01.png", **bad}, {**good, "image": "k02.png"}]
    path = tmp_path / "corrections.csv"
    write_corrections(rows, path, header="line one of the header\nline two")
    lines = path.read_text().splitlines()
    [bad_line] = [i for i, ln in enumerate(lines, 1) if ",k01.png," in ln]
    with pytest.raises(ValueError, match=re.escape(f"{path}:{bad_line}: {message}")):
        load_corrections(path)
    # and the good rows alone load, remembering their lines
    write_corrections([good], path, header="one")
    [c] = load_corrections(path)
    assert c.line == 3 and c.box == (1.0, 2.0, 30.0, 40.0)


# --- no leakage --------------------------------------------------------------------------------
def test_near_duplicates_share_a_split(main_build):
    root = main_build.out / "facewear4"
    real = {Path(m.origin).name: m for m in metas(root) if not m.synthetic and m.source == "kaggle-facemask"}
    dup = [real[n] for n in main_build.dups]
    assert len({m.group for m in dup}) == 1
    assert len({m.split for m in dup}) == 1
    # only they were merged: the other photos keep groups of their own
    others = [m for n, m in real.items() if n not in main_build.dups]
    assert len({m.group for m in others}) == len(others)
    assert dup[0].group not in {m.group for m in others}


def test_near_duplicate_groups_unit(tmp_path):
    img, _ = face_image(3, boxes=ONE_BOX)
    other, _ = face_image(4, boxes=ONE_BOX)
    files = {"a.png": img, "b.png": img, "c.jpg": np.clip(img.astype(np.int16) + 25, 0, 255).astype(np.uint8),
             "d.png": other}
    items = []
    for name, im in files.items():
        cv2.imwrite(str(tmp_path / name), im)
        items.append(build.RawItem("s", f"s/{name}", tmp_path / name, ImageAnn(name, 160, 120), group=f"s/{name}"))
    merges = build.near_duplicate_groups(items, 6, tmp_path / "phash.json")
    assert merges == 2
    assert items[0].group == items[1].group == items[2].group != items[3].group
    # the cache follows a file replaced under the same name
    items = [build.RawItem("s", f"s/{n}", tmp_path / n, ImageAnn(n, 160, 120), group=f"s/{n}") for n in files]
    cv2.imwrite(str(tmp_path / "b.png"), face_image(5, boxes=TWO_BOXES)[0])
    os.utime(tmp_path / "b.png", ns=(1, 1))
    assert build.near_duplicate_groups(items, 6, tmp_path / "phash.json") == 1
    assert items[0].group == items[2].group and items[1].group not in (items[0].group, items[3].group)


def test_ytf_identities_never_straddle_splits(main_build):
    root = main_build.out / "facewear4"
    ytf = [m for m in metas(root) if m.source == "ytf-landmarks"]
    assert len([m for m in ytf if not m.synthetic]) == len(main_build.ytf)
    by_person: dict[str, set[str]] = {}
    for m in ytf:
        person = re.sub(r"_\d+\.jpg$", "", Path(m.origin).name)
        by_person.setdefault(person, set()).add(m.split)
        assert m.group == f"ytf/{person}"
    assert set(by_person) == set(YTF_PEOPLE)
    assert all(len(s) == 1 for s in by_person.values()), by_person
    # the check means something: identities do land on both sides
    assert {s for v in by_person.values() for s in v} == {"train", "val"}


def test_ytf_frames_are_not_near_duplicates(tmp_path):
    """Frames of one person differ, so keeping them together is the identity grouping's doing."""
    data = tmp_path / "data"
    write_ytf(data, people=YTF_PEOPLE[:2])
    items = build.collect_ytf(data / "ytf-landmarks", build.Report(), strict=True)
    assert len(items) == 6 and {it.group for it in items} == {"ytf/Alice_Archer", "ytf/Bob_Brown"}
    for it in items:
        it.group = it.origin
    assert build.near_duplicate_groups(items, 6) == 0
    # the box comes from the landmarks: close to the drawn one
    for it in items:
        k = int(Path(it.origin).stem[-2:]) - 1
        np.testing.assert_allclose(it.ann.boxes[0].xyxy(), ytf_box(k), atol=2.0)
        assert it.ann.boxes[0].label == "face" and len(it.landmarks) == 1


def test_composites_follow_their_photo(main_build):
    root = main_build.out / "facewear4"
    all_meta = metas(root)
    real = {m.origin: m for m in all_meta if not m.synthetic}
    synth = [m for m in all_meta if m.synthetic]
    # every ytf frame got both variants (sg, msg)
    assert len(synth) == 2 * len(main_build.ytf)
    for m in synth:
        assert m.origin in real and real[m.origin].split == m.split and real[m.origin].group == m.group
        assert m.file.startswith(Path(real[m.origin].file).stem + "__")
        got = {r[0] for r in labels_of(root, m.split, m.file)}
        want = {"sg": "sunglasses", "msg": "mask_sunglasses"}[Path(m.file).stem.rsplit("__", 1)[1]]
        assert got == {CLASS_IDS[want]}
        assert [(o["from"], o["to"]) for o in m.overlays] == [("face", want)]
        # a composite differs from its photo, in the face
        a = cv2.imread(str(root / "images" / m.split / m.file)).astype(np.int16)
        b = cv2.imread(str(root / "images" / m.split / real[m.origin].file)).astype(np.int16)
        assert np.abs(a - b).max() > 60


def test_splits_are_deterministic(main_build, tmp_path):
    out2 = tmp_path / "out2"  # fresh caches too
    build.run(data_root=str(main_build.data), out=str(out2), specs=str(tmp_path / "specs"),
              recipe=str(main_build.recipe), corrections=str(main_build.corrections), workers=1,
              skip_heldout=False, sources=["kaggle-facemask", "ytf-landmarks"])
    for name in ("facewear4", "ilc-heldout"):
        a, b = main_build.out / name, out2 / name
        sa, sb = snapshot(a / "labels"), snapshot(b / "labels")
        assert sa == sb
        assert snapshot(a / "meta") == snapshot(b / "meta")
    assert snapshot(main_build.out / "facewear4" / "images") == snapshot(out2 / "facewear4" / "images")


# --- composites on drawn faces -----------------------------------------------------------------
FACE_BOX = (50.0, 40.0, 150.0, 160.0)


def _grow(box, f, shape):
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    return (int(max(x1 - f * w, 0)), int(max(y1 - f * h, 0)), int(min(x2 + f * w, shape[1])),
            int(min(y2 + f * h, shape[0])))


def _changed(a: np.ndarray, b: np.ndarray, thr: int = 12) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).max(2) > thr


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", ["sunglasses", "mask"])
def test_overlay_changes_the_face_only(lib, kind, seed):
    img, (lm,) = face_image(seed, size=(220, 200), boxes=[FACE_BOX])
    assert plausible(lm, FACE_BOX)
    before = img.copy()
    fn = fw_composite.apply_sunglasses if kind == "sunglasses" else fw_composite.apply_mask
    applied = fn(img, lm, FACE_BOX, lib, np.random.default_rng(seed))
    assert applied.kind == kind and applied.pose == "front"
    assert img.shape == before.shape and img.dtype == np.uint8
    ch = _changed(img, before)
    assert ch.sum() > 0.06 * 100 * 120
    x1, y1, x2, y2 = _grow(FACE_BOX, 0.15, img.shape)
    outside = ch.copy()
    outside[y1:y2, x1:x2] = False
    assert outside.sum() <= 0.02 * ch.sum()
    ys = np.nonzero(ch)[0]
    eye_y = float(lm[36:48, 1].mean())
    if kind == "sunglasses":  # around the eyes, and darker there
        assert abs(np.median(ys) - eye_y) < 0.12 * 120
        le = lm[36:42].mean(0).astype(int)
        assert img[le[1] - 2:le[1] + 3, le[0] - 2:le[0] + 3].mean() < 110
    else:  # below the eyes: nose to chin
        assert np.median(ys) > eye_y + 0.15 * 120
        assert ch[int(lm[57, 1]), int(lm[57, 0])]  # the mouth is covered


def _two_faces():
    a, b = (20.0, 30.0, 120.0, 150.0), (190.0, 40.0, 290.0, 160.0)
    img, lms = face_image(11, size=(320, 200), boxes=[a, b])
    ann = ImageAnn("two.jpg", 320, 200, [Box(*a, "face"), Box(*b, "mask")])
    return img, ann, [lm.tolist() for lm in lms]


@pytest.mark.parametrize("variant, want", [
    ({"p_face": {"sunglasses": 1.0}}, ["sunglasses", "mask"]),
    ({"p_face": {"sunglasses": 1.0}, "p_mask": {"sunglasses": 1.0}}, ["sunglasses", "mask_sunglasses"]),
    ({"p_mask": {"sunglasses": 1.0}}, ["face", "mask_sunglasses"]),
    ({"p_face": {"mask": 1.0}}, ["mask", "mask"]),
    ({"p_face": {"mask+sunglasses": 1.0}}, ["mask_sunglasses", "mask"]),
])
def test_make_composite_relabels_as_actions_say(lib, variant, want):
    img, ann, lms = _two_faces()
    before = img.copy()
    res = build.make_composite(img, ann, lms, variant, lib, np.random.default_rng(0), 24)
    assert res is not None
    out, new, applied = res
    assert np.array_equal(img, before)  # the photo itself is untouched
    assert out.shape == img.shape and out.dtype == np.uint8
    assert [b.label for b in new.boxes] == want
    assert [b.label for b in ann.boxes] == ["face", "mask"]
    for b, o in zip(new.boxes, ann.boxes):
        assert b.xyxy() == o.xyxy()
        assert 0 <= b.x1 < b.x2 <= new.width and 0 <= b.y1 < b.y2 <= new.height
    assert (new.width, new.height) == (320, 200)
    for a in applied:
        assert build.ACTIONS[a["action"]][a["from"]] == a["to"] == want[a["box"]]
        assert len(a["overlays"]) == (2 if a["action"] == "mask+sunglasses" else 1)
    touched = {a["box"] for a in applied}
    assert touched == {i for i, (b, w) in enumerate(zip(ann.boxes, want)) if b.label != w}
    ch = _changed(out, img, thr=40)  # the whole image is JPEG re-compressed: small changes everywhere
    for i, b in enumerate(ann.boxes):
        x1, y1, x2, y2 = _grow(b.xyxy(), 0.1, img.shape)
        assert (ch[y1:y2, x1:x2].sum() > 500) == (i in touched), i


def test_make_composite_skips_small_faces_and_unplausible_landmarks(lib):
    img, ann, lms = _two_faces()
    v = {"p_face": {"sunglasses": 1.0}, "p_mask": {"sunglasses": 1.0}}
    assert build.make_composite(img, ann, lms, v, lib, np.random.default_rng(0), 150) is None
    bad = [(np.asarray(lm) * 0.2).tolist() for lm in lms]  # eyes far outside the boxes
    assert build.make_composite(img, ann, bad, v, lib, np.random.default_rng(0), 24) is None


def test_make_composite_min_turn_overlays_only_turned_faces(lib):
    """A variant's ``min_turn`` leaves faces turned less than it alone (the head turn is |r - 0.5| of head_pose)."""
    img, ann, lms = _two_faces()
    ann.boxes[1].label = "face"
    turned = np.asarray(lms[1], np.float64)
    x0, x16 = turned[0, 0], turned[16, 0]
    turned[30, 0] = x0 + 0.78 * (x16 - x0)  # nose tip near the right jaw side: r = 0.78
    lms = [lms[0], turned.tolist()]
    assert abs(fw_composite.head_pose(np.asarray(lms[0]))[1] - 0.5) < 0.2
    v = {"p_face": {"sunglasses": 1.0}}
    _, new, applied = build.make_composite(img, ann, lms, {**v, "min_turn": 0.2}, lib, np.random.default_rng(0), 24)
    assert [b.label for b in new.boxes] == ["face", "sunglasses"]
    assert [(a["box"], a["pose"]) for a in applied] == [(1, "right")]
    _, new, _ = build.make_composite(img, ann, lms, v, lib, np.random.default_rng(0), 24)  # without: both
    assert [b.label for b in new.boxes] == ["sunglasses", "sunglasses"]
    assert build.make_composite(img, ann, lms, {**v, "min_turn": 0.3}, lib, np.random.default_rng(0), 24) is None


def test_make_composite_failed_step_leaves_no_trace(lib, monkeypatch):
    """mask+sunglasses on two faces; the second face's sunglasses fail after its mask was drawn."""
    img, ann, lms = _two_faces()
    ann.boxes[1].label = "face"
    calls = []
    real = fw_composite.apply_sunglasses

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("degenerate")
        return real(*a, **k)

    monkeypatch.setattr(fw_composite, "apply_sunglasses", flaky)
    out, new, applied = build.make_composite(img, ann, lms, {"p_face": {"mask+sunglasses": 1.0}}, lib,
                                             np.random.default_rng(0), 24)
    assert [b.label for b in new.boxes] == ["mask_sunglasses", "face"]
    assert [a["box"] for a in applied] == [0]
    x1, y1, x2, y2 = _grow(ann.boxes[1].xyxy(), 0.35, img.shape)
    # no mask left on a "face" (the JPEG re-compression of the whole image changes pixels only slightly)
    assert _changed(out[y1:y2, x1:x2], img[y1:y2, x1:x2], thr=40).sum() < 500  # a mask changes thousands


# --- bad input ---------------------------------------------------------------------------------
BAD_KINDS = ("corrupt", "no_xml", "unknown_class", "outside")


def _bad_source(data: Path, kinds=BAD_KINDS) -> dict[str, tuple[str, str]]:
    """Two good images plus one bad file per kind; returns kind -> (file named, reason in the message)."""
    src = data / "kaggle-facemask"
    for i in range(2):
        img, _ = face_image(i, boxes=ONE_BOX)
        write_voc_image(src, f"good{i}.png", img, [("without_mask", ONE_BOX[0])])
    img, _ = face_image(9, boxes=ONE_BOX)
    want = {}
    if "corrupt" in kinds:
        write_voc_image(src, "corrupt.jpg", img, [("with_mask", ONE_BOX[0])])
        (src / "images" / "corrupt.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
        want["corrupt"] = (str(src / "images" / "corrupt.jpg"), "not a readable image")
    if "no_xml" in kinds:
        write_voc_image(src, "no_xml.png", img, [("with_mask", ONE_BOX[0])])
        (src / "annotations" / "no_xml.xml").unlink()
        want["no_xml"] = (str(src / "annotations" / "no_xml.xml"), "annotation missing")
    if "unknown_class" in kinds:
        write_voc_image(src, "unknown_class.png", img, [("hat", ONE_BOX[0])])
        want["unknown_class"] = (str(src / "annotations" / "unknown_class.xml"), "unknown class(es) ['hat']")
    if "outside" in kinds:
        write_voc_image(src, "outside.png", img, [("with_mask", (300, 200, 400, 260))])
        want["outside"] = (str(src / "annotations" / "outside.xml"), "outside the image")
    return want


def test_bad_inputs_are_skipped_and_named(tmp_path):
    data = tmp_path / "data"
    want = _bad_source(data)
    out = tmp_path / "out"
    summary = run_build(data, out, write_recipe(tmp_path / "r.yaml"), on_error="skip")
    assert summary["skipped"] == len(BAD_KINDS)
    skipped = (out / "facewear4" / "skipped.txt").read_text().splitlines()
    assert len(skipped) == len(BAD_KINDS)
    for kind, (path, reason) in want.items():
        [line] = [s for s in skipped if s.startswith(path + ":")]
        assert reason in line, (kind, line)
    got = sorted(Path(m.origin).name for m in metas(out / "facewear4"))
    assert got == ["good0.png", "good1.png"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_input_stops_naming_the_file(tmp_path, kind):
    data = tmp_path / "data"
    path, reason = _bad_source(data, kinds=(kind,))[kind]
    out = tmp_path / "out"
    with pytest.raises(ValueError) as ei:
        run_build(data, out, write_recipe(tmp_path / "r.yaml"), on_error="stop")
    assert path in str(ei.value) and reason in str(ei.value)
    assert not (out / "facewear4").exists()
    assert not list(out.glob("facewear4*"))


def test_bad_ytf_row_names_table_and_line(tmp_path):
    data = tmp_path / "data"
    write_ytf(data, people=YTF_PEOPLE[:1])
    table = data / "ytf-landmarks" / "landmarks68.csv"
    lines = table.read_text().splitlines()
    lines[2] = lines[2].replace(lines[2].split(",")[6], "abc", 1)  # a non-numeric landmark
    lines[3] = "Ghost_Person_01.jpg" + lines[3][lines[3].index(","):]  # an image that does not exist
    table.write_text("\n".join(lines) + "\n")
    report = build.Report()
    items = build.collect_ytf(data / "ytf-landmarks", report, strict=False)
    assert len(items) == 1
    assert report.skipped[0].startswith(f"{table}:3: bad row")
    assert "Ghost_Person_01.jpg" in report.skipped[1] and f"{table}:4" in report.skipped[1]
    with pytest.raises(ValueError, match=re.escape(f"{table}:3")):
        build.collect_ytf(data / "ytf-landmarks", build.Report(), strict=True)


@pytest.mark.parametrize("on_error", ["skip", "stop"])
def test_empty_images_folder_raises_naming_it(tmp_path, on_error):
    src = tmp_path / "data" / "kaggle-facemask"
    (src / "images").mkdir(parents=True)
    (src / "annotations").mkdir()
    with pytest.raises(FileNotFoundError, match=re.escape(str(src / "images"))):
        run_build(tmp_path / "data", tmp_path / "out", write_recipe(tmp_path / "r.yaml"), on_error=on_error)
    assert not (tmp_path / "out" / "facewear4").exists()


def test_no_source_at_all_names_the_data_root(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "data"))):
        run_build(tmp_path / "data", tmp_path / "out", write_recipe(tmp_path / "r.yaml"))


# --- atomic output -----------------------------------------------------------------------------
def _fail_on_second_call(monkeypatch, name):
    real = getattr(build, name)
    calls = []

    def wrapper(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError(f"simulated crash in {name}")
        return real(*a, **k)

    monkeypatch.setattr(build, name, wrapper)
    return calls


@pytest.mark.parametrize("target", ["_process", "_write_split_files"])
def test_failed_build_leaves_no_half_dataset(tmp_path, monkeypatch, target):
    data = tmp_path / "data"
    write_kaggle(data, n=4)
    recipe = write_recipe(tmp_path / "r.yaml")
    out = tmp_path / "out"
    calls = _fail_on_second_call(monkeypatch, target)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_build(data, out, recipe)
    assert len(calls) == 2
    assert not (out / "facewear4").exists()
    assert [p.name for p in out.iterdir() if p.name.startswith("facewear4")] == []
    assert not (tmp_path / "out-specs" / "facewear4.yaml").exists()


@pytest.mark.parametrize("target", ["_process", "_write_split_files"])
def test_failed_build_keeps_the_previous_one(tmp_path, monkeypatch, target):
    data = tmp_path / "data"
    write_kaggle(data, n=4)
    recipe = write_recipe(tmp_path / "r.yaml")
    out = tmp_path / "out"
    run_build(data, out, recipe)
    before = snapshot(out / "facewear4")
    spec_before = (tmp_path / "out-specs" / "facewear4.yaml").read_bytes()
    assert any(k.startswith("labels/") for k in before)
    # the new build would differ: one more photo
    write_kaggle(data, n=5)
    real = getattr(build, target)
    _fail_on_second_call(monkeypatch, target)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_build(data, out, recipe)
    assert snapshot(out / "facewear4") == before
    assert (tmp_path / "out-specs" / "facewear4.yaml").read_bytes() == spec_before
    assert sorted(p.name for p in out.iterdir()) == ["cache", "facewear4"]
    # and once it works, the new build replaces the old one whole
    monkeypatch.setattr(build, target, real)
    run_build(data, out, recipe)
    assert len([m for m in metas(out / "facewear4") if not m.synthetic]) == 5
    assert sorted(p.name for p in out.iterdir()) == ["cache", "facewear4"]


def test_turned_recipe_is_the_default_plus_sgt():
    """datasets/facewear4-turned.recipe.yaml (row O of the real-data A/B) must stay the default recipe plus one
    ``sgt`` variant per source, so that its build holds the default build's images plus the turned composites."""
    from facewear.constants import DATASETS_DIR

    base = yaml.safe_load((DATASETS_DIR / "facewear4.recipe.yaml").read_text())
    turned = yaml.safe_load((DATASETS_DIR / "facewear4-turned.recipe.yaml").read_text())
    assert {k: v for k, v in turned.items() if k != "sources"} == {k: v for k, v in base.items() if k != "sources"}
    assert turned["sources"].keys() == base["sources"].keys()
    for src, spec in turned["sources"].items():
        *rest, sgt = spec["variants"]
        assert rest == base["sources"][src]["variants"], src
        assert sgt["name"] == "sgt" and sgt["min_turn"] > 0, src
