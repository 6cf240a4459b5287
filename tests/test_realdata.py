"""Real-looking composites, reviewed real photos, background images and the held-out leak check.

Every input is generated here: drawn faces with the mean 68-point landmarks, drawn glasses and masks.
"""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from conftest import voc_xml

from facewear.data import build, realbox
from facewear.data import composite as comp
from facewear.data.landmarks import mean_landmarks
from facewear.data.layout import read_meta
from facewear.data.procedural import procedural_overlays
from facewear.formats import Box, ImageAnn
from facewear.overlays import (
    OverlayLibrary,
    SunglassesTemplate,
    clear_lenses,
    lens_masks,
    lenses_opaque,
    mask_template_from_cutout,
    tint_lenses,
)

FACE = (60.0, 40.0, 180.0, 190.0)


@pytest.fixture(scope="module")
def lib() -> OverlayLibrary:
    return procedural_overlays(seed=0)


def drawn_face(size=(240, 240), box=FACE, blur: float = 0.0, tint=(1.0, 1.0, 1.0), seed: int = 0):
    """A smooth background with one drawn face; returns (BGR image, 68 landmarks)."""
    rng = np.random.default_rng(seed)
    w, h = size
    img = cv2.resize(rng.integers(60, 200, (3, 4, 3)).astype(np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    lm = mean_landmarks(box)
    x1, y1, x2, y2 = box
    cv2.ellipse(img, (int((x1 + x2) / 2), int((y1 + y2) / 2)), (int((x2 - x1) / 2), int((y2 - y1) / 2)), 0, 0, 360,
                (120, 150, 200), -1, cv2.LINE_AA)
    for sl in (slice(36, 42), slice(42, 48)):
        e = lm[sl].mean(0)
        cv2.circle(img, (int(e[0]), int(e[1])), 6, (40, 30, 30), -1, cv2.LINE_AA)
    cv2.fillPoly(img, [lm[48:60].astype(np.int32)], (70, 70, 170), cv2.LINE_AA)
    img = np.clip(img * np.float32(tint), 0, 255).astype(np.uint8)
    if blur:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    return img, lm


def drawn_clear_glasses(w: int = 300, h: int = 110) -> np.ndarray:
    """Two thin round rims and a bridge on a transparent canvas: clear-lens eyeglasses (BGRA)."""
    rgba = np.zeros((h, w, 4), np.uint8)
    for cx in (w // 4 + 5, 3 * w // 4 - 5):
        cv2.circle(rgba, (cx, h // 2), h // 2 - 8, (20, 20, 20, 255), 5, cv2.LINE_AA)
    cv2.line(rgba, (w // 2 - 25, h // 2 - 10), (w // 2 + 25, h // 2 - 10), (20, 20, 20, 255), 5)
    return rgba


# --- measurements the matching relies on -----------------------------------------------------------------
def test_noise_sigma_estimates_added_noise():
    flat = np.full((120, 160), 128, np.float32)
    for sigma in (2.0, 6.0, 12.0):
        noisy = flat + np.random.default_rng(0).normal(0, sigma, flat.shape)
        assert comp.noise_sigma(noisy) == pytest.approx(sigma, rel=0.2)
    assert comp.noise_sigma(flat) < 0.5


def test_match_overlay_blurs_to_the_face_and_takes_its_colour_temperature():
    rng = np.random.default_rng(0)
    face, _ = drawn_face(blur=3.0, tint=(0.7, 1.0, 1.3))  # blurry and warm (BGR: more red, less blue)
    over = np.zeros((80, 80, 3), np.float32)
    over[::4] = 200.0  # sharp stripes, neutral grey
    alpha = np.ones((80, 80), np.float32)
    out, a2 = comp.match_overlay(over.copy(), alpha, face, rng)
    sel = a2 > 0.5
    assert comp.sharpness(comp._gray(out), sel) < 0.6 * comp.sharpness(comp._gray(over), sel)
    assert out[..., 2].mean() / out[..., 0].mean() > 1.1  # warmer: red over blue went up from 1.0


def test_contact_shadow_darkens_below_the_overlay_only():
    img = np.full((100, 100, 3), 200, np.uint8)
    alpha = np.zeros((100, 100), np.float32)
    alpha[40:50, 20:80] = 1.0
    comp.contact_shadow(img, alpha, face_w=100.0, rng=np.random.default_rng(0))
    assert img[52:56, 30:70].mean() < 190  # just below the frame: darker
    assert img[5:15, 30:70].mean() == 200  # far above: untouched


def test_jpeg_roundtrip_keeps_size_and_changes_little():
    img, _ = drawn_face()
    out = comp.jpeg_roundtrip(img, np.random.default_rng(0), 60, 60)
    assert out.shape == img.shape and out.dtype == np.uint8
    d = np.abs(out.astype(int) - img.astype(int))
    assert 0 < d.mean() < 6


# --- glasses -----------------------------------------------------------------------------------------------
def _lens_rows(changed: np.ndarray, x0: int, x1: int) -> int:
    rows = np.nonzero(changed[:, x0:x1].any(1))[0]
    return int(rows.max() - rows.min()) if len(rows) else 0


def test_glasses_follow_yaw_with_perspective(lib):
    """A head turned toward the image left: the far (image-left) lens is drawn shorter than the near one."""
    img, lm = drawn_face()
    turned = lm.copy()
    turned[27:36, 0] -= 22  # nose toward the image left
    tpl = lib.sunglasses[2]
    heights = {}
    for name, marks in (("front", lm), ("turned", turned)):
        out = img.copy()
        comp.apply_glasses(out, marks, FACE, lib, np.random.default_rng(1), template=tpl)
        ch = np.abs(out.astype(int) - img.astype(int)).max(2) > 40
        le, re_ = marks[36:42].mean(0), marks[42:48].mean(0)
        heights[name] = (_lens_rows(ch, int(le[0]) - 8, int(le[0]) + 8),
                         _lens_rows(ch, int(re_[0]) - 8, int(re_[0]) + 8))
    fl, fr = heights["front"]
    tl, tr = heights["turned"]
    assert abs(fl - fr) <= 0.12 * max(fl, fr)  # frontal: both lenses alike
    assert tl < 0.93 * tr  # turned: the far lens is foreshortened


def test_three_quarter_glasses_are_not_stretched_for_the_turn_twice(lib):
    """On a turned head a front view's lens height is scaled up by 1/sqrt(1 - yaw^2), since the face's eye
    distance shortens with the turn and its span does not; a three-quarter view is shortened like the face
    already, so the same cut-out drawn as one comes out that much shorter (it was stretched twice before)."""
    from dataclasses import replace

    img, lm = drawn_face()
    turned = lm.copy()
    turned[27:36, 0] -= 30  # nose toward the image left: yaw about -0.5
    yaw = (comp.head_pose(turned)[1] - 0.5) * 2
    assert -0.8 < yaw < -0.3
    front = lib.sunglasses[2]
    heights = {}
    for tpl in (front, replace(front, view="three-quarter")):
        out = img.copy()
        pool = OverlayLibrary(sunglasses=[tpl])
        comp.apply_glasses(out, turned, FACE, pool, np.random.default_rng(1), template=tpl)
        ch = np.abs(out.astype(int) - img.astype(int)).max(2) > 40
        re_ = turned[42:48].mean(0)
        heights[tpl.view] = _lens_rows(ch, int(re_[0]) - 8, int(re_[0]) + 8)  # the near lens
    want = np.sqrt(1 - yaw ** 2)
    assert heights["three-quarter"] == pytest.approx(heights["front"] * want, rel=0.06)  # before: equal


def test_sunglasses_hide_the_eyes_and_eyeglasses_do_not():
    img, lm = drawn_face()
    clear = drawn_clear_glasses()
    _, (le, re_) = lens_masks(clear)
    dark = tint_lenses(clear, np.random.default_rng(0), "dark")
    eye_lib = OverlayLibrary(eyeglasses=[SunglassesTemplate("clear", clear, le, re_, tinted=False)],
                             sunglasses=[SunglassesTemplate("dark", dark, le, re_)])
    eye = lm[36:42].mean(0).astype(int)
    out_clear, out_dark = img.copy(), img.copy()
    assert comp.apply_eyeglasses(out_clear, lm, FACE, eye_lib, np.random.default_rng(0)).kind == "eyeglasses"
    assert comp.apply_sunglasses(out_dark, lm, FACE, eye_lib, np.random.default_rng(0)).kind == "sunglasses"
    patch = (slice(eye[1] - 3, eye[1] + 4), slice(eye[0] - 3, eye[0] + 4))
    skin = (slice(int(lm[33, 1]) - 2, int(lm[33, 1]) + 3), slice(int(lm[33, 0]) - 2, int(lm[33, 0]) + 3))
    # the dark pupil stays visible through clear lenses; dark lenses cover the whole eye region
    assert out_clear[patch].mean() < out_clear[skin].mean() - 40
    assert np.abs(out_dark[patch].astype(int) - img[patch].astype(int)).mean() > np.abs(
        out_clear[patch].astype(int) - img[patch].astype(int)).mean()


def test_tint_and_clear_lenses():
    clear = drawn_clear_glasses()
    _, c = lens_masks(clear)
    assert c[0][0] < 150 < c[1][0]  # one centre per lens, image-left first
    assert not lenses_opaque(clear, c)
    for style in ("dark", "brown", "gradient", "mirror"):
        assert lenses_opaque(tint_lenses(clear, np.random.default_rng(0), style), c), style
    grey = clear.copy()
    grey[..., 3] = np.where(grey[..., 3] > 0, 255, 0)
    lens, _ = lens_masks(grey)
    grey[lens] = (128, 128, 128, 255)  # a product photo with opaque grey "clear" lenses
    assert lenses_opaque(grey, c)
    assert not lenses_opaque(clear_lenses(grey), c)


def test_mask_cutout_on_white_background_gets_alpha_and_anchors(lib):
    rgba = np.full((120, 200, 4), 255, np.uint8)
    cv2.ellipse(rgba, (100, 60), (80, 45), 0, 0, 360, (200, 150, 90, 255), -1)
    tpl = mask_template_from_cutout("m.png", rgba)
    assert tpl.rgba[0, 0, 3] == 0 and tpl.rgba[60, 100, 3] == 255
    assert tpl.points["b"][1] < tpl.points["d"][1] < tpl.points["e"][1]
    assert tpl.points["a"][0] < tpl.points["b"][0] < tpl.points["c"][0]


def test_mask_placements_move_the_mask_down_to_the_nose_tip_or_lip(lib):
    """below_nose moves the mask's top edge down by the bridge-to-nose-tip distance, chin by bridge-to-lower-lip."""
    img, lm = drawn_face()
    tpl = lib.masks_for_pose("front")[0]
    top = {}
    for placement in ("nose", "below_nose", "chin"):
        out = img.copy()
        a = comp.apply_mask(out, lm, FACE, lib, np.random.default_rng(3), template=tpl, placement=placement)
        assert a.kind == "mask" and a.placement == placement
        ch = np.abs(out.astype(int) - img.astype(int)).max(2) > 40
        top[placement] = int(np.nonzero(ch[:, int(lm[30, 0]) - 3:int(lm[30, 0]) + 3].any(1))[0].min())
    bridge = float((lm[28, 1] + lm[29, 1]) / 2)
    assert top["below_nose"] - top["nose"] == pytest.approx(lm[33, 1] - bridge, rel=0.3)
    assert top["chin"] - top["nose"] == pytest.approx(lm[57, 1] - bridge, rel=0.3)


# --- background images -----------------------------------------------------------------------------------
def test_uniform_backgrounds_are_deterministic_and_face_free():
    spec = {"seed": 5, "w": 64, "h": 48}
    a, b = build.make_uniform_background(spec), build.make_uniform_background(spec)
    assert a.shape == (48, 64, 3) and np.array_equal(a, b)
    flat = build.make_uniform_background({**spec, "style": "uniform"})
    assert (flat == flat[0, 0]).all()


def test_background_crops_stay_clear_of_faces(tmp_path):
    items = []
    for i in range(4):
        ann = ImageAnn(f"p{i}.jpg", 400, 300, [Box(150, 100, 230, 200, "face")])
        items.append(build.RawItem("kaggle-facemask", f"kaggle-facemask/p{i}.jpg", tmp_path / f"p{i}.jpg", ann,
                                   group=f"g{i}", split="train"))
    bg = build.background_items(items * 10, fraction=0.3, seed=0)
    assert len(bg) == 12
    crops = [b for b in bg if b.background["kind"] == "crop"]
    assert crops and all(b.split == "train" for b in crops)
    for b in crops:
        x1, y1, x2, y2 = b.background["box"]
        assert x2 <= 150 - 40 or x1 >= 230 + 40 or y2 <= 100 - 50 or y1 >= 200 + 50
        assert b.ann.boxes == []


# --- reviewed real photos and the leak check in a build ------------------------------------------------------
def _write_voc(src: Path, name: str, img: np.ndarray, objects) -> None:
    (src / "images").mkdir(parents=True, exist_ok=True)
    (src / "annotations").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(src / "images" / name), img)
    (src / "annotations" / f"{Path(name).stem}.xml").write_text(voc_xml(name, img.shape[1], img.shape[0], objects))


def _photo(seed: int) -> np.ndarray:
    img, _ = drawn_face(size=(240, 200), box=(70, 30, 170, 170), seed=seed)
    return img


def _labels(root: Path, split: str, stem: str) -> list[str]:
    return (root / "labels" / split / f"{stem}.txt").read_text().splitlines()


def test_build_drops_heldout_leaks_uses_reviewed_labels_and_adds_backgrounds(tmp_path, lib, monkeypatch):
    monkeypatch.setattr(build, "load_overlays", lambda root: lib)
    data = tmp_path / "data"
    box = (70, 30, 170, 170)
    for i in range(6):
        _write_voc(data / "kaggle-facemask", f"k{i}.jpg", _photo(100 + i), [("without_mask", box)])
    leaked = _photo(103)
    _write_voc(data / build.HELDOUT, "h0.jpg", np.clip(leaked.astype(int) + 12, 0, 255).astype(np.uint8),
               [("with_mask", box)])  # k3, re-saved a little brighter
    _write_voc(data / build.HELDOUT, "h1.jpg", _photo(900), [("without_mask", box)])
    bare = data / "karan-scenes" / "bare"
    bare.mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(bare / f"r{i}.jpg"), _photo(300 + i))
    rows = [dict(source="karan-scenes/bare", image="r0.jpg", x1=70, y1=30, x2=170, y2=170, **{"class": "sunglasses"},
                 decision="relabel", proposed="face", score=0.9),
            dict(source="karan-scenes/bare", image="r0.jpg", x1=5, y1=5, x2=25, y2=25, **{"class": "face"},
                 decision="drop-box", proposed="face", score=0.6),
            dict(source="karan-scenes/bare", image="r1.jpg", x1=70, y1=30, x2=170, y2=170, **{"class": "face"},
                 decision="keep", proposed="face", score=0.9),
            dict(source="karan-scenes/bare", image="r2.jpg", x1=70, y1=30, x2=170, y2=170, **{"class": "face"},
                 decision="drop-image", proposed="face", score=0.9)]
    labels = tmp_path / "real-labels.csv"
    realbox.write_labels(rows, labels, header="test")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"seed": 0, "val_fraction": 0.0, "near_duplicate_hamming": 6, "min_face": 24,
                                      "background_fraction": 0.5, "sources": {}}))
    out = tmp_path / "out"
    summary = build.run(data_root=str(data), out=str(out), specs=str(tmp_path / "specs"), recipe=str(recipe),
                        corrections=str(tmp_path / "none.csv"), workers=1, real_labels_file=str(labels),
                        sources=["kaggle-facemask", "karan-scenes/bare"])
    root = out / "facewear4"
    metas = read_meta(root, "train")
    origins = {m.origin for m in metas}
    assert "kaggle-facemask/images/k3.jpg" not in origins  # the held-out near-duplicate is gone
    assert {f"kaggle-facemask/images/k{i}.jpg" for i in (0, 1, 2, 4, 5)} <= origins
    assert "k3.jpg" in (root / "skipped.txt").read_text() and "leak" in (root / "skipped.txt").read_text()
    # reviewed labels: relabel kept, drop-box left out, drop-image photo left out
    assert "karan-scenes/bare/r2.jpg" not in origins
    r0 = next(m for m in metas if m.origin == "karan-scenes/bare/r0.jpg")
    assert [ln.split()[0] for ln in _labels(root, "train", Path(r0.file).stem)] == ["2"]
    # background images: present, with empty label files
    bgs = [m for m in metas if m.source == "background"]
    assert bgs and all(_labels(root, "train", Path(m.file).stem) == [] for m in bgs)
    # the real-checks spec holds no training source
    assert "real-checks" in summary
    with pytest.raises(ValueError, match="real check"):
        build.run(data_root=str(data), out=str(tmp_path / "o2"), specs=str(tmp_path / "s2"), recipe=str(recipe),
                  corrections=str(tmp_path / "none.csv"), workers=1, sources=["cmu-faces/sunglasses"])


def test_heldout_leaks_unit(tmp_path):
    paths = []
    for i, img in enumerate([_photo(1), _photo(2), np.clip(_photo(1).astype(int) - 10, 0, 255).astype(np.uint8)]):
        p = tmp_path / f"i{i}.png"
        cv2.imwrite(str(p), img)
        paths.append(p)
    mk = [build.RawItem("s", p.name, p, ImageAnn(p.name, 240, 200, []), group=p.name) for p in paths]
    assert build.heldout_leaks(mk[:2], [mk[2]], max_dist=6) == [0]
    assert build.heldout_leaks(mk[:2], [], max_dist=6) == []


# --- autobox decisions -----------------------------------------------------------------------------------
def test_parse_decisions_and_errors_name_file_and_line(tmp_path):
    f = tmp_path / "d.txt"
    f.write_text("# sheet 0\nb1 sunglasses\nb2 drop  # blurred\ni7 drop\n\nb3 keep\n")
    boxes, images = realbox.parse_decisions(f)
    assert boxes == {1: "sunglasses", 2: "drop", 3: "keep"} and images == {7}
    f.write_text("b1 sunglases\n")
    with pytest.raises(ValueError, match=r"d\.txt:1"):
        realbox.parse_decisions(f)


def test_apply_decisions_and_label_file_round_trip(tmp_path):
    P = realbox.Proposal
    props = [P(0, 0, "rmfd-part1", "a.jpg", 1, 2, 30, 40, 0.9, "mask", []),
             P(1, 0, "rmfd-part1", "a.jpg", 50, 2, 80, 40, 0.8, "mask", []),
             P(2, 1, "rmfd-part1", "b.jpg", 1, 2, 30, 40, 0.9, "face", []),
             P(3, 2, "rmfd-part1", "c.jpg", 1, 2, 30, 40, 0.9, "face", [])]
    images = [{"id": 0, "auto_drop": ""}, {"id": 1, "auto_drop": ""}, {"id": 2, "auto_drop": "crowd"}]
    rows = realbox.apply_decisions(props, images, {0: "mask_sunglasses", 1: "drop"}, {1})
    assert [r["decision"] for r in rows] == ["relabel", "drop-box", "drop-image", "drop-crowd"]
    assert rows[0]["class"] == "mask_sunglasses"
    with pytest.raises(ValueError, match="never proposed"):
        realbox.apply_decisions(props, images, {99: "drop"}, set())
    path = tmp_path / "labels.csv"
    realbox.write_labels(rows, path, header="reviewed")
    back = realbox.read_labels(path)
    assert [r["decision"] for r in back] == [r["decision"] for r in rows]
    counts = realbox.label_counts(back)
    assert counts["rmfd-part1"]["mask_sunglasses"] == 1
    bad = path.read_text().replace("mask_sunglasses", "goggles")
    path.write_text(bad)
    with pytest.raises(ValueError, match="unknown class"):
        realbox.read_labels(path)
    with open(path, newline="") as f:
        assert next(csv.reader(ln for ln in f if not ln.startswith("#")))[:3] == ["source", "image", "x1"]


def test_true_class_outcomes_give_recall_and_the_sunglasses_face_confusion():
    from detection.val import true_class_outcomes

    names = ("face", "mask", "sunglasses", "mask_sunglasses")
    cm = np.zeros((5, 5), int)  # rows predicted (+ background), columns true
    cm[2, 2], cm[0, 2], cm[4, 2] = 6, 3, 1  # 10 sunglasses faces: 6 right, 3 called face, 1 missed
    cm[0, 0] = 4
    out = true_class_outcomes(cm, names)
    assert out["sunglasses"]["n"] == 10 and out["sunglasses"]["recall"] == 0.6
    assert out["sunglasses"]["as"]["face"] == 0.3 and out["sunglasses"]["as"]["missed"] == 0.1
    assert set(out) == {"face", "sunglasses"}


def test_blank_frame_check_counts_frames_with_boxes():
    from detection.blank import blank_frame_check, blank_frames

    class Fake:
        names = ("face", "mask", "sunglasses", "mask_sunglasses")
        source = "fake"

        def __call__(self, frame):  # boxes the whole frame when it is bright, as the field report says
            h, w = frame.shape[:2]
            s = 0.6 if frame.mean() > 150 else 0.1
            return np.array([[0, 0, w, h, s, 2]], np.float32)

    names = [n for n, _ in blank_frames()]
    assert {"grey128_640x480", "grey255_640x480", "grey128_1x1"} <= set(names)
    r = blank_frame_check(Fake(), conf=0.25)
    bright = sum(1 for _, f in blank_frames() if f.mean() > 150)
    assert r["frames"] == len(names) and r["frames_with_detections"] == bright > 0
    assert r["per_frame"]["grey255_640x480"] == [["sunglasses", 0.6]] and r["max_score"] == 0.6


def test_released_detector_boxes_no_blank_frame():
    """Field report: uniform grey/white frames got whole-frame `sunglasses` boxes at 0.6 and were cropped. The cure
    is background images in training; the released detector must find nothing on blank frames."""
    from detection.blank import blank_frame_check
    from detection.registry import load_detector
    from facewear.constants import WEIGHTS_DIR

    onnx = WEIGHTS_DIR / "yolov5n-facewear4.onnx"
    if not onnx.is_file():
        pytest.skip(f"{onnx}: released detector not present")
    r = blank_frame_check(load_detector(onnx, conf=0.25))
    assert r["frames_with_detections"] == 0, r["per_frame"]


def test_autobox_verb_loads_the_classifier_and_passes_it_down(tmp_path, monkeypatch):
    """`facewear data autobox` is classification.autobox: it loads --classifier (facewear/data may not) and hands
    the loaded classifier to realbox.run; applying decisions loads none."""
    from conftest import make_cls_ckpt

    from classification import autobox
    from facewear.cli import main

    seen: list = []
    monkeypatch.setattr(realbox, "run", lambda **kw: seen.append(kw) or {})
    ckpt = make_cls_ckpt(tmp_path / "cls.pt")
    assert main(["data", "autobox", "--data-root", str(tmp_path), "--classifier", str(ckpt)]) == 0
    assert hasattr(seen[-1]["classifier"], "classify") and seen[-1]["data_root"] == str(tmp_path)
    assert main(["data", "autobox", "--decisions", str(tmp_path / "d.txt")]) == 0
    assert seen[-1]["classifier"] is None and seen[-1]["decisions"] == str(tmp_path / "d.txt")
    autobox.run(classifier=str(tmp_path / "missing.onnx"), data_root=str(tmp_path))  # a warning, no classifier
    assert seen[-1]["classifier"] is None
