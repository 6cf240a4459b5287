"""VOC / YOLO / COCO readers, writers and folder conversion (facewear.formats)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import PUBLIC_TO_OURS, make_voc_folder, voc_xml, write_synth_image

from facewear.constants import CLASS_NAMES, SOURCE_CLASS_MAP
from facewear.data.convert import parse_class_map
from facewear.formats import (
    AnnotationError,
    Box,
    ImageAnn,
    Report,
    convert,
    from_coco,
    load_folder,
    map_label,
    read_voc,
    read_yolo,
    to_coco,
    write_voc,
    yolo_lines,
)
from facewear.io import ImageReadError


def _tol(w: int, h: int) -> float:
    """Lossless up to rounding: 0.01 px, plus YOLO's 6-decimal normalisation (1e-6 * size)."""
    return 0.01 + 2e-6 * max(w, h)


def _assert_same_boxes(got: list[Box], want: list[tuple[str, tuple]], w: int, h: int, where: str = "") -> None:
    assert [b.label for b in got] == [lab for lab, _ in want], where
    for b, (_, box) in zip(got, want):
        assert b.xyxy() == pytest.approx(box, abs=_tol(w, h)), f"{where}: {b.xyxy()} != {box}"


# --- round trip ----------------------------------------------------------------------
def test_round_trip_voc_yolo_coco_voc(tmp_path):
    src = make_voc_folder(tmp_path, 6)
    yolo_dir, coco_json, voc_dir = tmp_path / "yolo", tmp_path / "coco" / "ann.json", tmp_path / "voc_back"

    r1 = convert("voc", "yolo", src.images, src.labels, yolo_dir)
    r2 = convert("yolo", "coco", src.images, yolo_dir, coco_json)
    r3 = convert("coco", "voc", src.images, coco_json, voc_dir)
    for r in (r1, r2, r3):  # nothing clipped, dropped, unknown or skipped on clean data
        assert (r.clipped, r.degenerate, dict(r.unknown_class), r.skipped) == (0, 0, {}, [])

    assert sorted(p.name for p in yolo_dir.iterdir()) == [f"img_{i:03d}.txt" for i in range(6)]
    coco = json.loads(coco_json.read_text())
    assert [c["name"] for c in coco["categories"]] == list(CLASS_NAMES)
    assert len(coco["images"]) == 6

    for name, (w, h, objects) in src.truth.items():
        back = read_voc(voc_dir / Path(name).with_suffix(".xml"))
        assert (back.width, back.height) == (w, h), name
        assert back.file == name
        want = [(PUBLIC_TO_OURS[lab], box) for lab, box in objects]
        _assert_same_boxes(back.boxes, want, w, h, name)


def test_round_trip_keeps_our_own_names(tmp_path):
    """A VOC file already in our four classes converts to YOLO ids in CLASS_NAMES order and back."""
    img = write_synth_image(tmp_path / "images" / "a.png", 100, 50)
    objs = [(n, (10.5 + 20 * i, 5.25, 25.75 + 20 * i, 40.0)) for i, n in enumerate(CLASS_NAMES)]
    (tmp_path / "xml").mkdir()
    (tmp_path / "xml" / "a.xml").write_text(voc_xml(img.name, 100, 50, objs))
    convert("voc", "yolo", tmp_path / "images", tmp_path / "xml", tmp_path / "yolo")
    ids = [int(line.split()[0]) for line in (tmp_path / "yolo" / "a.txt").read_text().splitlines()]
    assert ids == [0, 1, 2, 3]
    back = read_yolo(tmp_path / "yolo" / "a.txt", 100, 50)
    _assert_same_boxes(back.boxes, objs, 100, 50)


# --- class maps ----------------------------------------------------------------------
@pytest.mark.parametrize("src,dst", [("with_mask", "mask"), ("mask_weared_incorrect", "mask"),
                                     ("with_incorrect_mask", "mask"), ("without_mask", "face"),
                                     *[(n, n) for n in CLASS_NAMES]])
def test_default_class_map(src, dst):
    assert SOURCE_CLASS_MAP[src] == dst
    assert map_label(src, None) == dst
    assert map_label(f"  {src}\n", None) == dst  # XML text is often padded


def test_default_class_map_in_read_voc(tmp_path):
    objs = [("with_mask", (1, 1, 20, 20)), ("mask_weared_incorrect", (2, 2, 20, 20)),
            ("with_incorrect_mask", (3, 3, 20, 20)), ("without_mask", (4, 4, 20, 20))]
    xml = tmp_path / "a.xml"
    xml.write_text(voc_xml("a.jpg", 50, 50, objs))
    ann = read_voc(xml)
    assert [b.label for b in ann.boxes] == ["mask", "mask", "mask", "face"]


def test_class_map_string():
    assert parse_class_map("a=face,b=mask") == {"a": "face", "b": "mask"}
    assert parse_class_map(" a = face , b=mask ") == {"a": "face", "b": "mask"}
    assert parse_class_map(None) is None and parse_class_map("") is None
    with pytest.raises(ValueError, match="source=target"):
        parse_class_map("a=face,b")


def test_class_map_yaml_file(tmp_path):
    f = tmp_path / "map.yaml"
    f.write_text("a: face\nb: mask\n")
    assert parse_class_map(str(f)) == {"a": "face", "b": "mask"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="bad.yaml"):
        parse_class_map(str(bad))


def test_custom_class_map_in_conversion(tmp_path):
    img = write_synth_image(tmp_path / "images" / "x.jpg", 80, 60)
    (tmp_path / "xml").mkdir()
    objs = [("a", (1, 1, 30, 30)), ("b", (31, 1, 60, 30)), ("with_mask", (1, 31, 30, 59))]
    (tmp_path / "xml" / "x.xml").write_text(voc_xml(img.name, 80, 60, objs))
    rep = convert("voc", "yolo", tmp_path / "images", tmp_path / "xml", tmp_path / "yolo",
                  class_map=parse_class_map("a=face,b=mask"))
    # a custom map replaces the default one: with_mask is now unknown
    assert dict(rep.unknown_class) == {"with_mask": 1}
    ids = [int(line.split()[0]) for line in (tmp_path / "yolo" / "x.txt").read_text().splitlines()]
    assert ids == [CLASS_NAMES.index("face"), CLASS_NAMES.index("mask")]


# --- clipping, degenerate and unknown boxes ---------------------------------------------
def test_boxes_outside_image_are_clipped(tmp_path):
    xml = tmp_path / "a.xml"
    xml.write_text(voc_xml("a.jpg", 100, 80, [("with_mask", (-5, -3, 120, 50)),
                                              ("without_mask", (10, 10, 30, 30)),
                                              ("without_mask", (90, 70, 100.5, 95))]))
    rep = Report()
    ann = read_voc(xml, report=rep)
    assert rep.clipped == 2 and rep.degenerate == 0
    assert [b.xyxy() for b in ann.boxes] == [(0, 0, 100, 50), (10, 10, 30, 30), (90, 70, 100, 80)]


def test_degenerate_boxes_are_dropped(tmp_path):
    xml = tmp_path / "a.xml"
    xml.write_text(voc_xml("a.jpg", 100, 80, [
        ("with_mask", (10, 10, 10, 40)),      # zero width
        ("with_mask", (10, 20, 40, 20.5)),    # thinner than MIN_BOX_SIDE
        ("with_mask", (110, 10, 130, 40)),    # right of the image: zero width after clipping
        ("with_mask", (10, -40, 30, -5)),     # above the image
        ("without_mask", (5, 5, 25, 25)),     # the one good box
    ]))
    rep = Report()
    ann = read_voc(xml, report=rep)
    assert rep.degenerate == 4
    assert rep.clipped == 2  # the two boxes outside the image were clipped first
    assert [(b.label, b.xyxy()) for b in ann.boxes] == [("face", (5, 5, 25, 25))]


def test_inverted_box_is_normalised(tmp_path):
    xml = tmp_path / "a.xml"
    xml.write_text(voc_xml("a.jpg", 100, 80, [("with_mask", (50, 40, 20, 10))]))
    ann = read_voc(xml)
    assert [b.xyxy() for b in ann.boxes] == [(20, 10, 50, 40)]


def test_yolo_boxes_clipped_and_degenerate(tmp_path):
    txt = tmp_path / "a.txt"
    txt.write_text("0 0.05 0.5 0.2 0.2\n1 0.5 0.5 0.0 0.5\n9 0.5 0.5 0.1 0.1\n\n")
    rep = Report()
    ann = read_yolo(txt, 100, 50, report=rep)
    assert rep.clipped == 1 and rep.degenerate == 1
    assert dict(rep.unknown_class) == {"9": 1}
    assert len(ann.boxes) == 1
    assert ann.boxes[0].xyxy() == pytest.approx((0, 20, 15, 30))


def test_unknown_class_names_are_counted(tmp_path):
    xml = tmp_path / "a.xml"
    xml.write_text(voc_xml("a.jpg", 64, 64, [("helmet", (1, 1, 20, 20)), ("helmet", (2, 2, 20, 20)),
                                             ("hat", (3, 3, 20, 20)), ("with_mask", (4, 4, 20, 20))]))
    rep = Report()
    ann = read_voc(xml, report=rep)
    assert dict(rep.unknown_class) == {"helmet": 2, "hat": 1}
    assert [b.label for b in ann.boxes] == ["mask"]


def test_report_merge_and_warn(caplog):
    a, b = Report(clipped=1, degenerate=2, skipped=["x: bad"]), Report(clipped=3)
    a.unknown_class["hat"] += 2
    b.unknown_class["hat"] += 1
    a.merge(b)
    assert (a.clipped, a.degenerate, dict(a.unknown_class), a.skipped) == (4, 2, {"hat": 3}, ["x: bad"])
    with caplog.at_level("WARNING", logger="facewear"):
        a.warn("test")
    text = caplog.text
    assert "clipped 4" in text and "2 degenerate" in text and "'hat'" in text and "x: bad" in text


# --- bad files: each error names the file ---------------------------------------------------
def _folder_with_one_bad(tmp_path, kind: str) -> tuple[Path, Path, Path]:
    """A 3-image VOC folder where one file is broken in the way ``kind`` says; returns (images, labels, bad)."""
    src = make_voc_folder(tmp_path, 3)
    xml = src.labels / "img_001.xml"
    img = src.images / "img_001.jpg"
    if kind == "corrupt_xml":
        xml.write_text("<annotation><size><width>64</wid")
        bad = xml
    elif kind == "missing_bndbox":
        xml.write_text(voc_xml("img_001.jpg", 64, 80, [("with_mask", None)]))
        bad = xml
    elif kind == "missing_annotation":
        xml.unlink()
        bad = xml
    elif kind == "corrupt_image":  # the XML has no <size>, so the image has to be measured
        xml.write_text(voc_xml("img_001.jpg", None, None, [("with_mask", (1, 1, 10, 10))], with_size=False))
        img.write_bytes(b"this is not a jpeg" * 10)
        bad = img
    else:  # pragma: no cover
        raise ValueError(kind)
    return src.images, src.labels, bad


@pytest.mark.parametrize("kind,exc", [("corrupt_xml", AnnotationError), ("missing_bndbox", AnnotationError),
                                      ("missing_annotation", AnnotationError), ("corrupt_image", ImageReadError)])
def test_bad_file_strict_raises_naming_file(tmp_path, kind, exc):
    images, labels, bad = _folder_with_one_bad(tmp_path, kind)
    with pytest.raises(exc) as ei:
        load_folder("voc", images, labels, strict=True)
    assert str(bad) in str(ei.value)


@pytest.mark.parametrize("kind", ["corrupt_xml", "missing_bndbox", "missing_annotation", "corrupt_image"])
def test_bad_file_lenient_skips_and_lists(tmp_path, kind):
    images, labels, bad = _folder_with_one_bad(tmp_path, kind)
    rep = Report()
    anns = load_folder("voc", images, labels, strict=False, report=rep)
    assert sorted(a.file for a in anns) == ["img_000.jpg", "img_002.jpg"]
    assert len(rep.skipped) == 1 and str(bad) in rep.skipped[0]
    # and convert() returns the same report, writing only the good files
    rep2 = convert("voc", "yolo", images, labels, tmp_path / "yolo")
    assert len(rep2.skipped) == 1 and str(bad) in rep2.skipped[0]
    assert sorted(p.name for p in (tmp_path / "yolo").iterdir()) == ["img_000.txt", "img_002.txt"]


def test_corrupt_image_in_yolo_folder(tmp_path):
    images = tmp_path / "images"
    write_synth_image(images / "good.jpg")
    bad = images / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "good.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (labels / "bad.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    with pytest.raises(ImageReadError, match=re.escape(str(bad))):
        load_folder("yolo", images, labels, strict=True)
    rep = Report()
    anns = load_folder("yolo", images, labels, report=rep)
    assert [a.file for a in anns] == ["good.jpg"]
    assert len(rep.skipped) == 1 and str(bad) in rep.skipped[0]


def test_bad_yolo_line_names_file_and_line(tmp_path):
    txt = tmp_path / "a.txt"
    txt.write_text("0 0.5 0.5 0.2 0.2\n1 0.5 0.5\n")
    with pytest.raises(AnnotationError, match=re.escape(f"{txt}:2")):
        read_yolo(txt, 10, 10)
    txt.write_text("0 0.5 x 0.2 0.2\n")
    with pytest.raises(AnnotationError, match=re.escape(f"{txt}:1")):
        read_yolo(txt, 10, 10)


def test_missing_yolo_label_means_no_boxes(tmp_path):
    ann = read_yolo(tmp_path / "none.txt", 10, 10)
    assert ann.boxes == []


@pytest.mark.parametrize("strict", [True, False])
def test_empty_folder_names_folder(tmp_path, strict):
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "labels").mkdir()
    with pytest.raises(AnnotationError, match=re.escape(str(empty))):
        load_folder("voc", empty, tmp_path / "labels", strict=strict)


def test_missing_images_folder_names_folder(tmp_path):
    with pytest.raises(AnnotationError, match=re.escape(str(tmp_path / "nope"))):
        load_folder("yolo", tmp_path / "nope", tmp_path)


@pytest.mark.parametrize("fmt", ["voc", "yolo"])
def test_missing_labels_folder_names_folder(tmp_path, fmt):
    """A mistyped --labels must not silently give every image zero boxes."""
    write_synth_image(tmp_path / "images" / "a.jpg")
    with pytest.raises(AnnotationError, match=re.escape(str(tmp_path / "typo"))):
        load_folder(fmt, tmp_path / "images", tmp_path / "typo")


def test_non_finite_boxes_are_dropped(tmp_path):
    xml = tmp_path / "a.xml"
    xml.write_text(voc_xml("a.jpg", 50, 50, [("with_mask", ("nan", 1, 20, 20)), ("with_mask", (1, 1, "inf", 20)),
                                             ("without_mask", (2, 2, 30, 30))]))
    rep = Report()
    ann = read_voc(xml, report=rep)
    assert rep.degenerate == 2
    assert [(b.label, b.xyxy()) for b in ann.boxes] == [("face", (2, 2, 30, 30))]
    txt = tmp_path / "a.txt"
    txt.write_text("0 nan 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2\n")
    rep = Report()
    assert [b.label for b in read_yolo(txt, 10, 10, report=rep).boxes] == ["mask"]
    assert rep.degenerate == 1


def test_voc_without_size_measures_image(tmp_path):
    img = write_synth_image(tmp_path / "a.jpg", 70, 40)
    xml = tmp_path / "a.xml"
    xml.write_text(voc_xml("a.jpg", None, None, [("with_mask", (1, 1, 90, 10))], with_size=False))
    ann = read_voc(xml, image_path=img)
    assert (ann.width, ann.height) == (70, 40)
    assert ann.boxes[0].xyxy() == (1, 1, 70, 10)
    with pytest.raises(AnnotationError, match=re.escape(str(xml))):
        read_voc(xml)  # no size and no image to measure


def test_write_voc_round_trip(tmp_path):
    ann = ImageAnn("sub/a.jpg", 120, 90, [Box(1.234, 2.5, 30.0, 40.666, "mask"), Box(5, 6, 7, 8, "face")])
    write_voc(ann, tmp_path / "a.xml")
    back = read_voc(tmp_path / "a.xml")
    assert back.file == "a.jpg" and (back.width, back.height) == (120, 90)
    _assert_same_boxes(back.boxes, [(b.label, b.xyxy()) for b in ann.boxes], 120, 90)


def test_yolo_lines_rejects_unknown_label():
    ann = ImageAnn("a.jpg", 10, 10, [Box(1, 1, 5, 5, "hat")])
    with pytest.raises(AnnotationError, match="a.jpg.*'hat'"):
        yolo_lines(ann)


# --- COCO ------------------------------------------------------------------------------
def test_coco_to_and_from():
    anns = [ImageAnn("a.jpg", 100, 50, [Box(10.111, 5, 30.5, 25.25, "mask"), Box(0, 0, 5, 5, "face")]),
            ImageAnn("b/c.png", 40, 60, []),
            ImageAnn("d.jpg", 64, 64, [Box(1, 2, 3, 4, "mask_sunglasses")], meta={"source": "synthetic"})]
    coco = to_coco(anns)
    assert [c["id"] for c in coco["categories"]] == [0, 1, 2, 3]
    assert [im["file_name"] for im in coco["images"]] == ["a.jpg", "b/c.png", "d.jpg"]
    assert coco["images"][2]["meta"] == {"source": "synthetic"}
    assert len({a["id"] for a in coco["annotations"]}) == 3
    first = coco["annotations"][0]
    assert first["category_id"] == 1 and first["bbox"] == [10.11, 5, 20.39, 20.25]

    back = from_coco(json.loads(json.dumps(coco)))
    assert [(a.file, a.width, a.height) for a in back] == [(a.file, a.width, a.height) for a in anns]
    assert back[2].meta == {"source": "synthetic"}
    for a, b in zip(anns, back):
        _assert_same_boxes(b.boxes, [(x.label, x.xyxy()) for x in a.boxes], a.width, a.height, a.file)


def test_coco_source_names_clipping_and_unknown(tmp_path):
    coco = {"images": [{"id": 7, "file_name": "a.jpg", "width": 50, "height": 40}],
            "categories": [{"id": 1, "name": "with_mask"}, {"id": 2, "name": "without_mask"},
                           {"id": 3, "name": "helmet"}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [-5, 0, 20, 20]},
                            {"id": 2, "image_id": 7, "category_id": 2, "bbox": [10, 10, 0, 5]},
                            {"id": 3, "image_id": 7, "category_id": 3, "bbox": [1, 1, 5, 5]},
                            {"id": 4, "image_id": 7, "category_id": 99, "bbox": [1, 1, 5, 5]}]}
    f = tmp_path / "c.json"
    f.write_text(json.dumps(coco))
    rep = Report()
    (ann,) = from_coco(f, report=rep)
    assert [(b.label, b.xyxy()) for b in ann.boxes] == [("mask", (0, 0, 15, 20))]
    assert rep.clipped == 1 and rep.degenerate == 1
    assert dict(rep.unknown_class) == {"helmet": 1, "99": 1}


@pytest.mark.parametrize("content", [
    "{not json",
    json.dumps({"images": []}),                                       # no categories
    json.dumps({"categories": [], "images": [{"id": 0}]}),            # image without file_name
    json.dumps({"categories": [{"id": 0, "name": "face"}],
                "images": [{"id": 0, "file_name": "a.jpg", "width": 9, "height": 9}],
                "annotations": [{"image_id": 5, "category_id": 0, "bbox": [0, 0, 1, 1]}]}),  # dangling image_id
    json.dumps({"categories": [{"id": 0, "name": "face"}],
                "images": [{"id": 0, "file_name": "a.jpg", "width": 9, "height": 9}],
                "annotations": [{"image_id": 0, "category_id": 0, "bbox": [0, 0, "x", 1]}]}),  # bad bbox
    json.dumps([1, 2, 3]),                                            # not an object
])
def test_malformed_coco_names_file(tmp_path, content):
    f = tmp_path / "bad.json"
    f.write_text(content)
    with pytest.raises(AnnotationError, match=re.escape(str(f))):
        from_coco(f)
    with pytest.raises(AnnotationError, match=re.escape(str(f))):
        load_folder("coco", tmp_path, f, strict=False)


def test_missing_coco_file_names_file(tmp_path):
    with pytest.raises(AnnotationError, match=re.escape(str(tmp_path / "none.json"))):
        from_coco(tmp_path / "none.json")


def test_convert_to_coco_folder_gets_default_name(tmp_path, voc_folder):
    convert("voc", "coco", voc_folder.images, voc_folder.labels, tmp_path / "coco_out")
    coco = json.loads((tmp_path / "coco_out" / "annotations.json").read_text())
    assert sorted(im["file_name"] for im in coco["images"]) == sorted(voc_folder.truth)


# --- label problems per file, duplicates, difficult/iscrowd, inputs never overwritten ---------
def _yolo_folder(tmp_path: Path, rows: dict[str, str], size=(100, 80)) -> tuple[Path, Path]:
    images, labels = tmp_path / "images", tmp_path / "labels"
    labels.mkdir(parents=True, exist_ok=True)
    for stem, text in rows.items():
        write_synth_image(images / f"{stem}.jpg", *size)
        (labels / f"{stem}.txt").write_text(text)
    return images, labels


def test_duplicate_yolo_row_removed_and_reported_for_its_file(tmp_path):
    txt = tmp_path / "img0.txt"
    txt.write_text("0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2\n")
    rep = Report()
    ann = read_yolo(txt, 100, 100, report=rep)
    assert [b.label for b in ann.boxes] == ["face", "mask"]  # same box, other class: kept
    assert rep.duplicates == 1 and rep.files == {str(txt): {"duplicate box(es) removed": 1}}


def test_convert_yolo_to_coco_removes_duplicates_with_a_warning_naming_the_file(tmp_path, caplog):
    images, labels = _yolo_folder(tmp_path, {"img0": "0 0.4 0.2 0.18 0.22\n0 0.4 0.2 0.18 0.22\n",
                                             "img1": "1 0.4 0.2 0.18 0.22\n"})
    with caplog.at_level("WARNING", logger="facewear"):
        rep = convert("yolo", "coco", images, labels, tmp_path / "c.json")
    coco = json.loads((tmp_path / "c.json").read_text())
    assert len(coco["annotations"]) == 2 and rep.duplicates == 1
    assert f"{labels / 'img0.txt'}: 1 duplicate box(es) removed" in caplog.text


def test_every_label_problem_is_reported_per_file(tmp_path, caplog):
    images, labels = _yolo_folder(tmp_path, {
        "a_outside": "0 0.95 0.5 0.2 0.2\n",          # x2 = 1.05: outside [0, 1], clipped
        "b_zero": "0 0.5 0.5 0 0.2\n1 0.5 0.5 -0.1 0.2\n0 0.3 0.3 0.2 0.2\n",  # zero and negative width
        "c_unknown": "7 0.5 0.5 0.2 0.2\n0 0.3 0.3 0.2 0.2\n",                  # class id 7 of 4 names
        "d_badrow": "0 0.5 0.5 0.2\n",                                           # unreadable row
        "e_fine": "0 0.5 0.5 0.2 0.2\n",
    })
    with caplog.at_level("WARNING", logger="facewear"):
        rep = convert("yolo", "yolo", images, labels, tmp_path / "out")
    f = {Path(k).name: dict(v) for k, v in rep.files.items()}
    assert f["a_outside.txt"] == {"YOLO row(s) with coordinates outside [0, 1]": 1, "box(es) clipped to the image": 1}
    assert f["b_zero.txt"] == {"degenerate box(es) dropped (zero size, or side < 1 px after clipping)": 2}
    assert f["c_unknown.txt"] == {"box(es) of unknown class 'id 7' dropped": 1}
    assert "e_fine.txt" not in f
    assert len(rep.skipped) == 1 and f"{labels / 'd_badrow.txt'}:1" in rep.skipped[0]
    for name in ("a_outside.txt", "b_zero.txt", "c_unknown.txt", "d_badrow.txt"):
        assert name in caplog.text
    assert (tmp_path / "out" / "b_zero.txt").read_text().count("\n") == 1


def test_duplicate_voc_objects_and_coco_annotations_removed_per_file(tmp_path):
    xml = tmp_path / "a.xml"
    xml.write_text(voc_xml("a.jpg", 50, 50, [("with_mask", (1, 1, 20, 20)), ("with_mask", (1, 1, 20, 20))]))
    rep = Report()
    assert len(read_voc(xml, report=rep).boxes) == 1
    assert rep.files == {str(xml): {"duplicate box(es) removed": 1}}
    coco = {"images": [{"id": 3, "file_name": "x.jpg", "width": 50, "height": 50}],
            "categories": [{"id": 1, "name": "face"}],
            "annotations": [{"id": i, "image_id": 3, "category_id": 1, "bbox": [1, 1, 10, 10]} for i in (1, 2)]}
    f = tmp_path / "c.json"
    f.write_text(json.dumps(coco))
    rep = Report()
    (ann,) = from_coco(f, report=rep)
    assert len(ann.boxes) == 1 and rep.files == {f"{f}: x.jpg": {"duplicate box(es) removed": 1}}


def _difficult_voc(tmp_path: Path) -> tuple[Path, Path]:
    images, ann = tmp_path / "images", tmp_path / "ann"
    ann.mkdir(parents=True)
    write_synth_image(images / "a.jpg", 100, 80)
    xml = voc_xml("a.jpg", 100, 80, [("with_mask", (10, 10, 40, 50)), ("without_mask", (50, 10, 90, 60))])
    (ann / "a.xml").write_text(xml.replace("<difficult>0</difficult>", "<difficult>1</difficult>", 1))
    return images, ann


def test_voc_difficult_survives_voc_and_coco_round_trips(tmp_path):
    images, ann = _difficult_voc(tmp_path)
    box = read_voc(ann / "a.xml").boxes[0]
    assert box.meta == {"difficult": True} and box.ignored
    convert("voc", "voc", images, ann, tmp_path / "voc")
    assert [b.meta.get("difficult", False) for b in read_voc(tmp_path / "voc" / "a.xml").boxes] == [True, False]
    convert("voc", "coco", images, ann, tmp_path / "c.json")
    a0, a1 = json.loads((tmp_path / "c.json").read_text())["annotations"]
    assert (a0["iscrowd"], a0.get("difficult"), a1["iscrowd"]) == (1, 1, 0)
    convert("coco", "voc", images, tmp_path / "c.json", tmp_path / "voc2")
    assert "<difficult>1</difficult>" in (tmp_path / "voc2" / "a.xml").read_text()
    # COCO iscrowd survives COCO -> COCO, and becomes VOC difficult
    (back,) = from_coco(tmp_path / "c.json")
    assert [b.ignored for b in back.boxes] == [True, False]


def test_difficult_box_left_out_of_yolo_with_a_count_per_file(tmp_path):
    images, ann = _difficult_voc(tmp_path)
    rep = convert("voc", "yolo", images, ann, tmp_path / "yolo")
    rows = (tmp_path / "yolo" / "a.txt").read_text().splitlines()
    assert len(rows) == 1 and rows[0].startswith("0 ")  # only the face; the difficult mask is not a normal box
    assert rep.flags_dropped == 1
    assert rep.files == {"a.jpg": {"difficult/iscrowd box(es) left out (the format cannot mark them)": 1}}


@pytest.mark.parametrize("fmt", ["voc", "yolo", "coco"])
def test_convert_refuses_to_overwrite_its_inputs(tmp_path, fmt):
    from facewear.io import OverwriteError

    if fmt == "voc":
        images, labels = _difficult_voc(tmp_path)
        out = labels
    elif fmt == "yolo":
        images, labels = _yolo_folder(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2\n"})
        out = labels
    else:
        images, ann = _difficult_voc(tmp_path)
        labels = tmp_path / "c.json"
        convert("voc", "coco", images, ann, labels)
        out = labels
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(OverwriteError, match="--out would overwrite the input"):
        convert(fmt, fmt, images, labels, out)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_convert_skips_an_image_above_the_bomb_limit_and_names_it(tmp_path, monkeypatch):
    from PIL import Image

    images, labels = _yolo_folder(tmp_path, {"small": "0 0.5 0.5 0.2 0.2\n"}, size=(40, 30))
    write_synth_image(images / "big.jpg", 300, 200)
    (labels / "big.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000)  # 300x200 = 60000: above the limit
    rep = convert("yolo", "coco", images, labels, tmp_path / "c.json")
    assert [im["file_name"] for im in json.loads((tmp_path / "c.json").read_text())["images"]] == ["small.jpg"]
    assert len(rep.skipped) == 1 and str(images / "big.jpg") in rep.skipped[0] and "limit" in rep.skipped[0]
