"""YOLO training (tiny, 64 px), resume, COCO start, val metrics, ONNX export agreement, manifest."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import make_det_dataset

from facewear.constants import CLASS_NAMES
from facewear.data.layout import load_spec

_make_dataset = make_det_dataset  # the generator lives in conftest.py (shared with the classifier tests)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny dataset and a YOLOv5n trained 1 epoch at 64 px on it."""
    from detection.yolo.train import train

    root = tmp_path_factory.mktemp("tinyds")
    spec = _make_dataset(root)
    proj = root / "runs"
    train(data=str(spec), init="none", epochs=1, imgsz=64, batch=4, workers=0, project=str(proj), name="t",
          exist_ok=True, plots=False)
    last = proj / "t" / "weights" / "last.pt"
    assert last.is_file()
    return spec, last


@pytest.mark.slow
def test_train_one_epoch_writes_weights(tiny):
    _, last = tiny
    from ultralytics import YOLO

    m = YOLO(str(last))
    assert [m.names[i] for i in range(4)] == list(CLASS_NAMES)


@pytest.mark.slow
def test_resume_after_interrupt(tmp_path):
    """An interrupted run leaves last.pt; --resume finishes the remaining epochs."""
    from detection.yolo.train import train

    spec = _make_dataset(tmp_path / "ds", n_train=4, n_val=2)
    proj = tmp_path / "runs"

    class Stop(Exception):
        pass

    def stop(trainer):
        if trainer.epoch == 0:
            raise Stop

    from ultralytics import YOLO

    import detection.yolo.train as y

    orig = YOLO.train

    def patched(self, **kw):
        self.add_callback("on_fit_epoch_end", stop)
        return orig(self, **kw)

    YOLO.train = patched
    try:
        with pytest.raises(Stop):
            y.train(data=str(spec), init="none", epochs=2, imgsz=64, batch=2, workers=0, project=str(proj),
                    name="r", exist_ok=True, plots=False)
    finally:
        YOLO.train = orig
    last = proj / "r" / "weights" / "last.pt"
    import torch

    assert torch.load(last, weights_only=False)["epoch"] == 0
    train(resume=True, project=str(proj), name="r")
    assert (proj / "r" / "results.csv").read_text().count("\n") >= 3  # header + 2 epochs


def test_resume_without_run_is_clear(tmp_path):
    from detection.yolo.train import train

    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(resume=True, project=str(tmp_path), name="none")


def test_coco_start_maps_backbone_and_neck(tmp_path):
    import torch

    from detection.yolo.train import build_model, load_coco

    m = build_model("yolov5n.yaml")
    sd = {k: torch.randn_like(v) if v.dtype.is_floating_point else v for k, v in m.state_dict().items()
          if k.split(".")[1].isdigit() and int(k.split(".")[1]) < 24}
    sd["model.24.m.0.weight"] = torch.zeros(255, 64, 1, 1)  # the old COCO head must be ignored
    p = tmp_path / "coco.pth"
    torch.save(sd, p)
    n, total = load_coco(m, p)
    assert n == total == len(sd) - 1
    k = "model.0.conv.weight"
    assert torch.equal(m.state_dict()[k], sd[k])


def test_coco_start_missing_falls_back_with_warning(tmp_path, monkeypatch):
    from detection.yolo.train import init_checkpoint

    monkeypatch.setenv("FACEWEAR_SHARED_WEIGHTS", str(tmp_path / "absent"))
    with pytest.warns(UserWarning, match="from scratch"):
        assert init_checkpoint("yolov5n.yaml", "coco", tmp_path / "i.pt") == "yolov5n.yaml"


def test_coco_start_real_file(shared_data):
    from detection.yolo.train import COCO_STATE_DICT, build_model, load_coco
    from facewear.constants import default_shared_weights

    p = default_shared_weights() / COCO_STATE_DICT
    if not p.is_file():
        pytest.skip(f"{p} not found")
    n, total = load_coco(build_model(), p)
    assert n == total == 342


class PerfectDetector:
    """Returns the ground truth of the image it is shown (looked up by content)."""

    names = CLASS_NAMES
    source = "perfect"

    def __init__(self, spec: Path, split: str = "val", drop_class: int | None = None) -> None:
        s = load_spec(spec)
        self.table = {}
        coco = json.loads((Path(s["path"]) / "coco" / f"{split}.json").read_text())
        for im in coco["images"]:
            img = cv2.imread(str(Path(s["path"]) / "images" / split / im["file_name"]))
            d = [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3], 0.9,
                  a["category_id"]] for a in coco["annotations"] if a["image_id"] == im["id"]
                 and a["category_id"] != drop_class]
            self.table[img.tobytes()] = np.array(d, np.float32).reshape(-1, 6)

    def __call__(self, frame):
        return self.table[frame.tobytes()]


def test_val_perfect_detector_scores_one(tmp_path):
    from detection.val import run

    spec = _make_dataset(tmp_path / "ds")
    res = run(PerfectDetector(spec), data=str(spec), split="val", json_out=str(tmp_path / "m.json"),
              plots_dir=str(tmp_path / "plots"))
    assert res["mAP50"] == pytest.approx(1.0)
    assert res["mAP50-95"] == pytest.approx(1.0)
    assert res["precision"] == pytest.approx(1.0) and res["recall"] == pytest.approx(1.0)
    saved = json.loads((tmp_path / "m.json").read_text())
    assert {"mAP50", "mAP50-95", "per_class", "confusion", "precision", "recall"} <= set(saved)
    assert (tmp_path / "plots" / "confusion_matrix.png").is_file() and (tmp_path / "plots" / "pr_curves.png").is_file()


def test_val_missing_class_lowers_map(tmp_path):
    from detection.val import run

    spec = _make_dataset(tmp_path / "ds")
    res = run(PerfectDetector(spec, drop_class=0), data=str(spec), split="val")
    assert res["per_class"]["face"]["instances"] > 0  # the generated val split holds faces
    assert res["per_class"]["face"]["AP50"] == 0.0
    assert res["mAP50"] < 1.0
    cm = np.array(res["confusion"])
    assert cm[4, 0] == res["per_class"]["face"]["instances"]  # every face missed -> background row


@pytest.mark.slow
def test_val_real_model_runs(tiny):
    from detection.val import run

    spec, last = tiny
    res = run(str(last), data=str(spec), split="val", imgsz=64)
    assert 0.0 <= res["mAP50"] <= 1.0 and res["images"] == 4


@pytest.mark.slow
def test_export_agrees_with_torch(tiny, tmp_path):
    import shutil

    from detection.export import run
    from detection.registry import load_detector

    spec, last = tiny
    pt = tmp_path / "m.pt"
    shutil.copy(last, pt)
    rep = run(str(pt), formats=["fp32", "fp16", "int8"], imgsz=64, data=str(spec), calib=4, check=2)
    assert rep["files"]["fp32"]["max_abs_diff"] < 1e-2
    assert rep["files"]["fp16"]["max_abs_diff"] < 1.0
    for prec in ("fp32", "fp16", "int8"):
        f = Path(rep["files"][prec]["file"])
        assert f.is_file()
        det = load_detector(f, conf=0.0)
        out = det(np.full((48, 80, 3), 128, np.uint8))
        assert out.ndim == 2 and out.shape[1] == 6
        assert det.names == CLASS_NAMES
    # --out-dir elsewhere never touches an ONNX file already beside the .pt (it once moved it away)
    sentinel = b"committed onnx"
    (tmp_path / "m.onnx").write_bytes(sentinel)
    rep2 = run(str(pt), formats=["fp32"], imgsz=64, data=str(spec), out_dir=str(tmp_path / "out"), check=1)
    assert Path(rep2["files"]["fp32"]["file"]).parent == tmp_path / "out"
    assert (tmp_path / "m.onnx").read_bytes() == sentinel
    assert not list(tmp_path.rglob("facewear-export-*"))


def test_export_rejects_bad_input(tmp_path):
    from detection.export import run

    with pytest.raises(FileNotFoundError):
        run(str(tmp_path / "absent.pt"))


def test_manifest_entry_and_verify(tmp_path, monkeypatch):
    import detection.manifest as man

    monkeypatch.setattr(man, "MANIFEST", tmp_path / "manifest.json")
    monkeypatch.setattr(man, "WEIGHTS_DIR", tmp_path)
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    e = man.add_entry(f, name="w", task="detect", architecture="x", imgsz=64, precision="fp32",
                      train_command="cmd", data="spec")
    assert e["bytes"] == 3 and len(e["sha256"]) == 64
    man.add_entry(f, name="w", task="detect", architecture="x", imgsz=64, precision="fp32",
                  train_command="cmd2", data="spec")
    assert [m["train_command"] for m in man.load()["models"]] == ["cmd2"]
    assert man.verify() == []
    f.write_bytes(b"abd")
    assert man.verify() == ["w"]


def test_val_no_detections_is_zero_not_crash(tmp_path):
    from detection.val import run

    class Blind:
        names, source = CLASS_NAMES, "blind"

        def __call__(self, frame):
            return np.zeros((0, 6), np.float32)

    spec = _make_dataset(tmp_path / "ds")
    res = run(Blind(), data=str(spec), split="val", plots_dir=str(tmp_path / "p"))
    assert res["mAP50"] == 0.0 and res["recall"] == 0.0
    assert all("instances" in pc for pc in res["per_class"].values())


@pytest.mark.slow
def test_bench_tiny_model_writes_report(tiny, tmp_path):
    import shutil

    from detection.bench import run
    from detection.export import run as export

    spec, last = tiny
    pt = tmp_path / "b.pt"
    shutil.copy(last, pt)
    export(str(pt), formats=["fp32"], imgsz=64, data=str(spec), check=1)
    res = run(str(pt), data=str(spec), imgsz=64, iters=2, json_out=str(tmp_path / "b.json"),
              md_out=str(tmp_path / "b.md"), command="test")
    assert [r["variant"] for r in res["rows"]] == ["torch", "onnx-fp32"]
    for r in res["rows"]:
        assert set(r["latency"]) == {"1t", "2t"} and r["latency"]["1t"]["p50_ms"] > 0
    md = (tmp_path / "b.md").read_text()
    assert "| torch |" in md and "onnx-fp32" in md and "Machine:" in md


def test_val_max_images_first_or_spread(tmp_path):
    """--max-images keeps the first N images; spread=True keeps N evenly spaced ones, first and last included."""
    from detection.val import detect_split

    spec = make_det_dataset(tmp_path / "ds", n_train=1, n_val=7)
    det = PerfectDetector(spec)
    first, _, _ = detect_split(det, load_spec(spec), "val", max_images=3)
    spread, _, _ = detect_split(det, load_spec(spec), "val", max_images=3, spread=True)
    every, _, _ = detect_split(det, load_spec(spec), "val", max_images=30, spread=True)
    names = [im["file_name"] for im in json.loads((tmp_path / "ds" / "coco" / "val.json").read_text())["images"]]
    assert [im["file_name"] for im in first["images"]] == names[:3]
    assert [im["file_name"] for im in spread["images"]] == [names[0], names[3], names[6]]
    assert len(every["images"]) == 7
    keep = {im["id"] for im in spread["images"]}
    assert spread["annotations"] and all(a["image_id"] in keep for a in spread["annotations"])


# --- val takes plain ultralytics specs, matches classes by name, ignores iscrowd, skips bad images ---
def _plain_spec(root: Path, name: str, val, names=CLASS_NAMES) -> Path:
    import yaml

    p = root / name
    p.write_text(yaml.safe_dump({"path": ".", "val": val, "names": list(names)}))
    return p


@pytest.fixture
def yolo_only(tmp_path):
    """The tiny dataset with its COCO JSON removed (YOLO labels only) and a detector that knows its truth."""
    import shutil

    spec = _make_dataset(tmp_path / "ds")
    det = PerfectDetector(spec)
    shutil.rmtree(tmp_path / "ds" / "coco")
    return tmp_path / "ds", det


@pytest.mark.parametrize("form", ["folder", "txt", "list"])
def test_val_plain_ultralytics_spec_without_coco(yolo_only, form):
    from detection.val import run

    root, det = yolo_only
    if form == "txt":
        listed = sorted((root / "images/val").iterdir())
        (root / "val.txt").write_text("".join(f"./images/val/{p.name}\n" for p in listed))
    val = {"folder": "images/val", "txt": "val.txt", "list": ["images/val"]}[form]
    res = run(det, data=str(_plain_spec(root, f"{form}.yaml", val)))
    assert res["images"] == 4 and res["mAP50"] == pytest.approx(1.0)
    assert not (root / "coco").exists()  # nothing written into the user's dataset


def _rewrite_coco(root: Path, ids: dict[int, int], names=CLASS_NAMES, extra=()) -> None:
    f = root / "coco" / "val.json"
    coco = json.loads(f.read_text())
    coco["categories"] = [{"id": ids[i], "name": n} for i, n in enumerate(names)][::-1]
    for a in coco["annotations"]:
        a["category_id"] = ids[a["category_id"]]
    coco["annotations"] += list(extra)
    f.write_text(json.dumps(coco))


@pytest.mark.parametrize("ids", [{0: 1, 1: 2, 2: 3, 3: 4}, {0: 10, 1: 30, 2: 20, 3: 45}])
def test_val_coco_category_ids_matched_by_name(tmp_path, ids):
    from detection.val import run

    spec = _make_dataset(tmp_path / "ds")
    det = PerfectDetector(spec)
    _rewrite_coco(tmp_path / "ds", ids)
    res = run(det, data=str(spec), split="val")
    assert res["mAP50"] == pytest.approx(1.0) and res["recall"] == pytest.approx(1.0)
    assert sum(pc["instances"] for pc in res["per_class"].values()) > 0


def test_val_class_names_that_do_not_match_fail_listing_both(tmp_path, capsys):
    from detection.val import run

    spec = _make_dataset(tmp_path / "ds")
    det = PerfectDetector(spec)
    _rewrite_coco(tmp_path / "ds", {0: 1, 1: 2, 2: 3, 3: 4}, names=("without_mask", "with_mask", "sunglasses", "x"))
    with pytest.raises(ValueError, match=r"\['x', 'sunglasses', 'with_mask', 'without_mask'\].*"
                                         r"\['face', 'mask', 'sunglasses', 'mask_sunglasses'\]"):
        run(det, data=str(spec), split="val")
    (tmp_path / "ds" / "coco" / "val.json").unlink()  # YOLO labels, named by the spec
    ys = _plain_spec(tmp_path / "ds", "other.yaml", "images/val", names=("a", "b", "c", "d"))
    with pytest.raises(ValueError, match=r"not in the model: \['a', 'b', 'c', 'd'\]"):
        run(det, data=str(ys))


def test_val_duplicate_label_rows_removed_with_a_warning(yolo_only, caplog):
    from detection.val import run

    root, det = yolo_only
    lab = sorted((root / "labels" / "val").iterdir())[0]
    lab.write_text(lab.read_text() + lab.read_text().splitlines()[0] + "\n")  # the first row twice
    with caplog.at_level("WARNING", logger="facewear"):
        res = run(det, data=str(_plain_spec(root, "dup.yaml", "images/val")))
    assert res["mAP50"] == pytest.approx(1.0) and res["recall"] == pytest.approx(1.0)
    assert f"{lab}: 1 duplicate box(es) removed" in caplog.text


def test_val_ignores_iscrowd_boxes_like_pycocotools(tmp_path):
    from detection.val import run

    spec = _make_dataset(tmp_path / "ds")
    det = PerfectDetector(spec)
    original = (tmp_path / "ds" / "coco" / "val.json").read_text()
    crowd = {"id": 999, "image_id": 0, "category_id": 0, "bbox": [40, 40, 20, 20], "area": 400, "iscrowd": 1}
    _rewrite_coco(tmp_path / "ds", {0: 0, 1: 1, 2: 2, 3: 3}, extra=[crowd])
    res = run(det, data=str(spec), split="val")
    assert res["mAP50"] == pytest.approx(1.0) and res["recall"] == pytest.approx(1.0) and res["ignored"] == 1
    (tmp_path / "ds" / "coco" / "val.json").write_text(original)
    _rewrite_coco(tmp_path / "ds", {0: 0, 1: 1, 2: 2, 3: 3}, extra=[{**crowd, "iscrowd": 0}])
    assert run(det, data=str(spec), split="val")["recall"] < 1.0  # the same box, scored: a miss


def test_val_unreadable_image_left_out_and_named(yolo_only, capsys):
    from detection.val import run

    root, det = yolo_only
    bad = root / "images" / "val" / "zz_bad.jpg"
    bad.write_bytes(b"not an image")
    (root / "labels" / "val" / "zz_bad.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    res = run(det, data=str(_plain_spec(root, "bad.yaml", "images/val")))
    assert res["images"] == 4 and res["mAP50"] == pytest.approx(1.0)
    assert len(res["skipped"]) == 1 and str(bad) in res["skipped"][0]
    assert "zz_bad.jpg" in capsys.readouterr().out


def test_val_json_never_overwrites_its_inputs(tmp_path):
    from detection.val import run
    from facewear.io import OverwriteError

    spec = _make_dataset(tmp_path / "ds")
    before = spec.read_bytes()
    with pytest.raises(OverwriteError, match="--json would overwrite"):
        run(PerfectDetector(spec), data=str(spec), split="val", json_out=str(spec))
    assert spec.read_bytes() == before


def test_split_dir_names_the_spec_for_a_list_split(tmp_path):
    from facewear.data.layout import split_dir

    spec = _plain_spec(tmp_path, "l.yaml", ["images/val"])
    with pytest.raises(ValueError, match=r"l\.yaml: split 'val' is \['images/val'\], not one images folder"):
        split_dir(load_spec(spec), "val")


def test_export_and_bench_never_write_a_report_over_an_input(tmp_path):
    from detection import bench, export
    from facewear.io import OverwriteError

    pt = tmp_path / "m.pt"
    pt.write_bytes(b"weights")
    spec = _make_dataset(tmp_path / "ds")
    with pytest.raises(OverwriteError, match="--json would overwrite"):
        export.run(str(pt), json_out=str(pt))
    with pytest.raises(OverwriteError, match="--json would overwrite"):
        export.run(str(pt), data=str(spec), json_out=str(spec))
    with pytest.raises(OverwriteError, match="--md would overwrite"):
        bench.run(str(pt), data=str(spec), md_out=str(spec))
    assert pt.read_bytes() == b"weights"


def test_face_augmentations_arguments():
    """--gray / --lowres: none given keeps ultralytics' own albumentations; a bad probability names the flag."""
    from detection.yolo.train import face_augmentations

    assert face_augmentations() is None
    t = {type(a).__name__: a.p for a in face_augmentations(gray=0.2, lowres=0.1)}
    assert t["ToGray"] == 0.2 and t["Downscale"] == 0.1 and t["Blur"] == 0.01
    with pytest.raises(ValueError, match="--lowres 1.5"):
        face_augmentations(lowres=1.5)


@pytest.mark.slow
def test_gray_reaches_ultralytics_training_images(tmp_path):
    """train(gray=1.0): an image ultralytics' train loader yields is grayscale (the albumentations list is
    passed as its ``augmentations``); without it the same image keeps its colour."""
    from detection.yolo.train import train

    spec = _make_dataset(tmp_path / "ds", n_train=4, n_val=2)
    seen = {}

    class Stop(Exception):
        pass

    def grab(trainer):
        x = trainer.train_loader.dataset[0]["img"].float()  # CHW uint8 after every training augmentation
        seen[trainer.args.name] = float((x[0] - x[1]).abs().max() + (x[1] - x[2]).abs().max())
        raise Stop

    for name, gray in (("gray", 1.0), ("colour", 0.0)):
        with pytest.raises(Stop):
            train(data=str(spec), init="none", epochs=1, imgsz=64, batch=2, workers=0, project=str(tmp_path / "r"),
                  name=name, plots=False, gray=gray, hsv_s=0.0, callbacks={"on_pretrain_routine_end": grab})
    assert seen["gray"] == 0.0 and seen["colour"] > 0.0


@pytest.mark.slow
def test_train_yolo_cli_no_plots_and_time_reach_ultralytics(tmp_path):
    """`facewear train yolo --no-plots --time H --multi-scale F` (as on a bare GPU machine): ultralytics trains with
    plots off, that wall-clock budget and multi-scale range; without the flags plots stay on, no budget is set and
    multi-scale is off."""
    import argparse

    from detection.yolo.train import add_args, train

    spec = _make_dataset(tmp_path / "ds", n_train=4, n_val=2)
    seen = {}

    class Stop(Exception):
        pass

    def grab(trainer):
        seen[trainer.args.name] = (trainer.args.plots, trainer.args.time, trainer.args.multi_scale,
                                   trainer.args.close_mosaic)
        raise Stop

    base = ["--data", str(spec), "--init", "none", "--epochs", "1", "--imgsz", "64", "--batch", "2", "--workers", "0",
            "--project", str(tmp_path / "r")]
    for name, extra in (("gpu", ["--no-plots", "--time", "0.05", "--multi-scale", "0.33", "--close-mosaic", "0"]),
                        ("plain", [])):
        ap = argparse.ArgumentParser()
        add_args(ap)
        with pytest.raises(Stop):
            train(**vars(ap.parse_args([*base, "--name", name, *extra])), callbacks={"on_pretrain_routine_end": grab})
    assert seen == {"gpu": (False, 0.05, 0.33, 0), "plain": (True, None, 0.0, 1)}


def test_pad_canvas_maps_boxes_back_and_shrinks_the_object():
    """PadCanvas: the wrapped detector sees the frame in the middle of a larger grey canvas, and its boxes come
    back in the frame's own pixels (clipped to it)."""
    from detection.detector import PadCanvas

    seen = []

    class Bright:  # one box around the bright pixels, plus one that runs off the canvas's top-left
        names, source = ("face",), "bright"

        def __call__(self, frame):
            seen.append(frame.shape)
            ys, xs = np.nonzero(frame[..., 0] > 200)
            return np.float32([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, 0.9, 0], [0, 0, 5, 5, 0.5, 0]])

    frame = np.zeros((60, 80, 3), np.uint8)
    frame[10:30, 20:50] = 255
    plain = Bright()(frame)
    det = PadCanvas(Bright(), 3)
    got = det(frame)
    assert seen[-1] == (180, 240, 3) and det.names == ("face",) and det.source == "bright"
    np.testing.assert_allclose(got[0], plain[0])
    assert (got[1, :4] == 0).all()  # the canvas corner lies outside the frame: clipped to it
    np.testing.assert_allclose(PadCanvas(Bright(), 1)(frame), plain)
    with pytest.raises(ValueError, match="at least 1"):
        PadCanvas(Bright(), 0.5)
