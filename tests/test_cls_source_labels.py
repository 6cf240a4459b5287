"""Held-out crops get back the source dataset's own labels (ILC's with_incorrect_mask), scored per label."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from facewear.formats import Box, ImageAnn, write_voc, yolo_lines
from facewear.io import write_image


def _held_out(tmp_path):
    """A one-image held-out build (built at half the source size) and its source VOC file; returns (spec, crops,
    data root)."""
    data = tmp_path / "data" / "ilc"
    (data / "annotations").mkdir(parents=True)
    src = ImageAnn("p1.jpg", 400, 200, [Box(10, 10, 90, 90, "with_mask"), Box(200, 20, 280, 100, "with_incorrect_mask"),
                                        Box(300, 100, 380, 180, "without_mask")])
    write_voc(src, data / "annotations" / "p1.xml")
    build = tmp_path / "build" / "held"
    for d in ("images/test", "labels/test", "meta"):
        (build / d).mkdir(parents=True)
    write_image(build / "images/test/ilc__p1.jpg", np.zeros((100, 200, 3), np.uint8))
    # ours at half size, mapped to our classes, in another order; a third box the source lacks
    ours = ImageAnn("ilc__p1.jpg", 200, 100, [Box(100, 10, 140, 50, "mask"), Box(5, 5, 45, 45, "mask"),
                                              Box(0, 60, 20, 99, "face")])
    (build / "labels/test/ilc__p1.txt").write_text(yolo_lines(ours))
    (build / "meta/test.jsonl").write_text(json.dumps({"file": "ilc__p1.jpg", "origin": "ilc/images/p1.jpg"}) + "\n")
    spec = tmp_path / "held.yaml"
    spec.write_text(f"path: {build}\nval: images/test\ntest: images/test\nnames: [face, mask, sunglasses, "
                    "mask_sunglasses]\n")
    crops = tmp_path / "crops"
    crops.mkdir()
    with open(crops / "index.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["split", "class", "file", "image", "box", "w", "h", "synthetic", "source", "group"])
        for i, (c, bw, bh) in enumerate((("mask", 40, 40), ("mask", 40, 40), ("face", 20, 39))):
            w.writerow(["heldout-real", c, f"heldout-real/{c}/ilc__p1__{i}.jpg", "ilc__p1.jpg", i, bw, bh, 0, "", ""])
        w.writerow(["train", "face", "train/face/x__0.jpg", "x.jpg", 0, 40, 40, 0, "", ""])
    return spec, crops, tmp_path / "data"


def test_source_labels_match_boxes_across_scale_and_order(tmp_path):
    from classification.source_labels import UNMATCHED, source_labels

    spec, crops, data = _held_out(tmp_path)
    got = source_labels(crops, spec=spec, data_root=data)
    assert got == {"heldout-real/mask/ilc__p1__0.jpg": "with_incorrect_mask",
                   "heldout-real/mask/ilc__p1__1.jpg": "with_mask",
                   "heldout-real/face/ilc__p1__2.jpg": UNMATCHED}


def test_source_labels_bad_input(tmp_path):
    from classification.source_labels import source_labels

    spec, crops, data = _held_out(tmp_path)
    with pytest.raises(ValueError, match="no crop of split 'heldout-synth'"):
        source_labels(crops, "heldout-synth", spec=spec, data_root=data)
    (data / "ilc" / "annotations" / "p1.xml").unlink()
    with pytest.raises(FileNotFoundError, match="p1.xml: source annotation of ilc__p1.jpg not found"):
        source_labels(crops, spec=spec, data_root=data)
    with pytest.raises(FileNotFoundError, match="index.csv: crop index not found"):
        source_labels(tmp_path, spec=spec, data_root=data)
    # crops cut from an older build: box 1 of the label file is not the recorded crop any more
    rows = (crops / "index.csv").read_text().replace(",1,40,40,", ",1,60,40,")
    (crops / "index.csv").write_text(rows)
    with pytest.raises(ValueError, match="index.csv: crop heldout-real/mask/ilc__p1__1.jpg does not match box 1"):
        source_labels(crops, spec=spec, data_root=data, missing_ok=True)
    (spec.parent / "build/held/meta/test.jsonl").write_text('{"origin": "x"}\n')
    with pytest.raises(ValueError, match="test.jsonl:1: not a provenance record"):
        source_labels(crops, spec=spec, data_root=data)


def test_scores_by_group():
    from classification.evaluate import scores_by_group

    y = np.array([1, 1, 1, 0])
    pred = np.array([1, 0, 0, 0])
    res = scores_by_group(y, pred, ["with_mask", "with_incorrect_mask", "with_incorrect_mask", "without_mask"])
    assert list(res) == ["with_mask", "with_incorrect_mask", "without_mask"]
    assert res["with_mask"]["accuracy"] == 1.0 and res["with_incorrect_mask"]["accuracy"] == 0.0
    assert res["with_incorrect_mask"]["confusion"][1][0] == 2 and res["without_mask"]["n"] == 1
    with pytest.raises(ValueError, match="lengths differ"):
        scores_by_group(y, pred, ["a"])


def test_source_weight_sampling(tmp_path, monkeypatch):
    """--source-weight draws one source label W times as often inside its class; --balance keeps class totals."""
    import classification.source_labels as sl
    from classification.source_labels import parse_source_weights
    from classification.train import sampling_weights

    files = ["train/face/a.jpg", "train/mask/b.jpg", "train/mask/c.jpg", "train/mask/d.jpg"]
    labels = {"train/mask/b.jpg": "mask_weared_incorrect", "train/mask/c.jpg": "with_mask"}
    monkeypatch.setattr(sl, "source_labels", lambda *a, **k: labels)
    y = np.array([0, 1, 1, 1])
    w = sampling_weights(y, files, tmp_path, False, ["mask_weared_incorrect=4"])
    assert w.tolist() == [1.0, 4.0, 1.0, 1.0]
    w = sampling_weights(y, files, tmp_path, True, ["mask_weared_incorrect=4"])
    assert w[0] == pytest.approx(1.0) and w[1:].sum() == pytest.approx(1.0) and w[1] == pytest.approx(4 * w[2])
    assert sampling_weights(y, files, tmp_path, True, []).tolist() == pytest.approx([1.0, 1 / 3, 1 / 3, 1 / 3])
    with pytest.raises(ValueError, match="no training crop .* has that source label"):
        sampling_weights(y, files, tmp_path, False, ["with_incorrect_mask=4"])
    for bad in ("mask_weared_incorrect", "x=0", "x=abc", "=2", "x=inf", "x=nan"):
        with pytest.raises(ValueError, match="expected LABEL=W"):
            parse_source_weights([bad])


def test_source_labels_synthetic_and_sources_without_voc(tmp_path):
    from classification.source_labels import NO_SOURCE, SYNTHETIC, source_labels

    spec, crops, data = _held_out(tmp_path)
    with open(crops / "index.csv", "a", newline="") as f:
        w = csv.writer(f)
        w.writerow(["heldout-real", "mask", "heldout-real/mask/ilc__p1__9.jpg", "ilc__p1.jpg", 0, 40, 40, 1, "", ""])
    got = source_labels(crops, spec=spec, data_root=data)
    assert got["heldout-real/mask/ilc__p1__9.jpg"] == SYNTHETIC  # composited: its source label no longer holds
    (data / "ilc" / "annotations" / "p1.xml").unlink()
    got = source_labels(crops, spec=spec, data_root=data, missing_ok=True)
    assert set(got.values()) == {NO_SOURCE, SYNTHETIC}


def test_detector_found_and_named_by_source_label(tmp_path):
    """The model card's found / named table by the held-out set's own labels: ground-truth boxes get their source
    label, and a mask worn wrong that the detector calls face counts as found but not named."""
    from detection.cascade_bench import found_and_named, source_groups

    spec, _, data = _held_out(tmp_path)
    gt = {"images": [{"id": 1, "file_name": "ilc__p1.jpg", "width": 200, "height": 100}],
          "categories": [{"id": i, "name": n} for i, n in enumerate(("face", "mask", "sunglasses", "mask_sunglasses"))],
          "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [100, 10, 40, 40]},
                          {"id": 8, "image_id": 1, "category_id": 1, "bbox": [5, 5, 40, 40]}]}
    groups = source_groups(gt, spec, "test", data)
    assert groups == {7: "with_incorrect_mask", 8: "with_mask"}
    dets = [{"image_id": 1, "category_id": 0, "bbox": [100, 10, 40, 40], "score": 0.9},   # called face
            {"image_id": 1, "category_id": 1, "bbox": [5, 5, 40, 40], "score": 0.9}]
    got = found_and_named(gt, dets, groups=groups)
    assert got == {"with_incorrect_mask": {"n": 1, "found": 1.0, "named_if_found": 0.0},
                   "with_mask": {"n": 1, "found": 1.0, "named_if_found": 1.0}}
    assert found_and_named(gt, dets)["mask"] == {"n": 2, "found": 1.0, "named_if_found": 0.5}


def test_yolo_weighted_train_list(tmp_path):
    """train yolo --source-weight lists the training images with a box of that source label W times."""
    import yaml

    from detection.yolo.train import weighted_train_list

    data = tmp_path / "data" / "kag"
    (data / "annotations").mkdir(parents=True)
    write_voc(ImageAnn("k1.png", 100, 100, [Box(10, 10, 50, 50, "mask_weared_incorrect")]),
              data / "annotations" / "k1.xml")
    write_voc(ImageAnn("k2.png", 100, 100, [Box(10, 10, 50, 50, "with_mask")]), data / "annotations" / "k2.xml")
    build = tmp_path / "build"
    for d in ("images/train", "labels/train", "meta"):
        (build / d).mkdir(parents=True)
    meta = []
    for stem, origin in (("kag__k1", "kag/images/k1.png"), ("kag__k2", "kag/images/k2.png"), ("other__o", "")):
        write_image(build / f"images/train/{stem}.jpg", np.zeros((100, 100, 3), np.uint8))
        (build / f"labels/train/{stem}.txt").write_text(yolo_lines(ImageAnn(f"{stem}.jpg", 100, 100,
                                                                            [Box(10, 10, 50, 50, "mask")])))
        meta.append(json.dumps({"file": f"{stem}.jpg", "origin": origin}))
    (build / "meta/train.jsonl").write_text("\n".join(meta) + "\n")
    spec = tmp_path / "run.data.yaml"
    spec.write_text(f"path: {build}\ntrain: images/train\nval: images/train\nnames: [face, mask, sunglasses, "
                    "mask_sunglasses]\n")
    out = tmp_path / "run.train.txt"
    got = weighted_train_list(spec, ["mask_weared_incorrect=3"], out, data_root=tmp_path / "data")
    assert got == {"images": 3, "listed": 5, "weighted": 1}
    lines = out.read_text().splitlines()
    assert sum(ln.endswith("kag__k1.jpg") for ln in lines) == 3 and sum(ln.endswith("kag__k2.jpg") for ln in lines) == 1
    assert yaml.safe_load(spec.read_text())["train"] == str(out.resolve())
    spec.write_text(f"path: {build}\ntrain: images/train\nval: images/train\nnames: [face, mask]\n")
    with pytest.raises(ValueError, match="whole number"):
        weighted_train_list(spec, ["mask_weared_incorrect=2.5"], out, data_root=tmp_path / "data")
    with pytest.raises(ValueError, match="with_incorrect_mask: no training image"):
        weighted_train_list(spec, ["with_incorrect_mask=3"], out, data_root=tmp_path / "data")
    # a machine with the unpacked dataset but not the raw data (a GPU box): the error says what needs it
    with pytest.raises(FileNotFoundError, match="--source-weight needs .* raw data.*no-raw-data: data root not found"):
        weighted_train_list(spec, ["mask_weared_incorrect=3"], out, data_root=tmp_path / "no-raw-data")


def test_coco_xyxy():
    from facewear.boxes import coco_xyxy

    got = coco_xyxy([{"bbox": [1, 2, 3, 4]}, {"bbox": [0.5, 0, 10, 1]}])
    assert got.dtype == np.float64 and got.tolist() == [[1, 2, 4, 6], [0.5, 0, 10.5, 1]]
    assert coco_xyxy([]).shape == (0, 4)


def test_yolo_overlay_weight_list(tmp_path):
    """train yolo --overlay-weight lists the images the build drew an overlay on, on a face of that pose, W times,
    from meta/train.jsonl alone (no raw data); an image matching several entries takes the largest weight."""
    from detection.yolo.train import parse_overlay_weights, weighted_train_list

    build = tmp_path / "build"
    for d in ("images/train", "labels/train", "meta"):
        (build / d).mkdir(parents=True)
    overlays = {"a": [{"box": 0, "action": "sunglasses", "pose": "left"},
                      {"box": 1, "action": "mask+sunglasses", "pose": "front"}],
                "b": [{"box": 0, "action": "sunglasses", "pose": "front"}],
                "c": [{"box": 0, "action": "mask+sunglasses", "pose": "right"}], "d": []}
    meta = []
    for stem, ov in overlays.items():
        write_image(build / f"images/train/{stem}.jpg", np.zeros((40, 40, 3), np.uint8))
        (build / f"labels/train/{stem}.txt").write_text("2 0.5 0.5 0.5 0.5\n")
        meta.append(json.dumps({"file": f"{stem}.jpg", "split": "train", "source": "t", "origin": "", "group": stem,
                                "overlays": ov}))
    (build / "meta/train.jsonl").write_text("\n".join(meta) + "\n")
    spec = tmp_path / "run.data.yaml"
    spec.write_text(f"path: {build}\ntrain: images/train\nval: images/train\nnames: [face, mask, sunglasses, "
                    "mask_sunglasses]\n")
    out = tmp_path / "run.train.txt"
    got = weighted_train_list(spec, None, out, data_root=tmp_path / "no-raw-data",
                              overlay_weight=["sunglasses:turned=3", "mask+sunglasses=2"])
    lines = [ln.rsplit("/", 1)[-1][:-4] for ln in out.read_text().splitlines()]
    assert {s: lines.count(s) for s in "abcd"} == {"a": 3, "b": 1, "c": 2, "d": 1}
    assert got == {"images": 4, "listed": 7, "weighted": 2}
    assert parse_overlay_weights(["sunglasses=2", "mask:front=4"]) == {("sunglasses", None): 2, ("mask", "front"): 4}
    for bad in ("hat=2", "sunglasses:up=2", "sunglasses=0", "sunglasses=1.5", "sunglasses"):
        with pytest.raises(ValueError, match="--overlay-weight"):
            parse_overlay_weights([bad])
    spec.write_text(f"path: {build}\ntrain: images/train\nval: images/train\nnames: [face, mask]\n")
    with pytest.raises(ValueError, match="overlay eyeglasses: no training image"):
        weighted_train_list(spec, None, out, overlay_weight=["eyeglasses=2"])


def test_read_meta_file_names_a_bad_line(tmp_path):
    """facewear.data.layout.read_meta_file (what --overlay-weight and tools/pose_gap.py read): a line that is not
    a provenance record is named by file and line; a missing file is a FileNotFoundError."""
    from facewear.data.layout import read_meta_file

    f = tmp_path / "train.jsonl"
    f.write_text(json.dumps({"file": "a.jpg", "split": "train", "source": "s", "origin": "", "group": "a"})
                 + "\n\n{not json\n")
    with pytest.raises(ValueError, match=r"train.jsonl:3: not a provenance record"):
        read_meta_file(f)
    f.write_text(json.dumps({"file": "a.jpg"}) + "\n")
    with pytest.raises(ValueError, match=r"train.jsonl:1: not a provenance record"):
        read_meta_file(f)
    with pytest.raises(FileNotFoundError, match="provenance file missing"):
        read_meta_file(tmp_path / "none.jsonl")
