"""Crop classifiers: the crop dataset builder, one-epoch training, resume, --test-only, distillation, the CLI."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from conftest import make_crop_root, make_det_dataset

from facewear.constants import CLASS_NAMES
from facewear.data.layout import write_spec


def test_crops_from_detection_specs(tmp_path):
    from classification.crops import run

    spec = make_det_dataset(tmp_path / "ds", n_train=4, n_val=2)
    held = tmp_path / "held.yaml"
    write_spec(held, tmp_path / "ds", {"val": "images/val", "test": "images/val"}, extra={"heldout": True})
    out = tmp_path / "crops"
    summary = run(data=str(spec), heldout=str(held), out=str(out), workers=1, data_root=str(tmp_path / "none"))
    counts = summary["counts"]
    # every box of train/val/held-out becomes one crop in its class folder
    for split, n_img in (("train", 4), ("val", 2), ("heldout-real", 2)):
        assert sum(counts[split].values()) == 2 * n_img
        files = list((out / split).rglob("*.jpg"))
        assert len(files) == 2 * n_img
        assert {f.parent.name for f in files} <= set(CLASS_NAMES)
    rows = list(csv.DictReader(open(out / "index.csv")))
    assert len(rows) == sum(sum(c.values()) for c in counts.values())
    # squares have no face landmarks, so no overlay lands and nothing is invented
    assert sum(counts["heldout-synth"].values()) == 0 and summary["skipped"].get("no overlay applied") == 2
    import cv2

    first = cv2.imread(str(out / rows[0]["file"]))
    assert first.shape == (128, 128, 3)
    assert not list(tmp_path.glob("crops.partial-*"))


@pytest.mark.slow
def test_train_one_epoch_resume_test_only(tmp_path, caplog):
    from classification.runtime import load_classifier
    from classification.train import train

    root = make_crop_root(tmp_path / "crops")
    proj = tmp_path / "runs"
    res = train(arch="mobilenet_v2_050", data=str(root), imgsz=32, epochs=1, batch=8, init="none",
                project=str(proj), name="t", threads=1)
    w = proj / "t" / "weights"
    assert (w / "best.pt").is_file() and (w / "last.pt").is_file()
    assert set(res["metrics"]) == {"val", "heldout-real"}  # heldout-synth absent: skipped, not an error
    for r in res["metrics"].values():
        assert r["n"] == 12 and np.asarray(r["confusion"]).sum() == 12
    assert (proj / "t" / "confusion_heldout-real.png").is_file()
    ck = torch.load(w / "last.pt", weights_only=False)
    assert {"model", "optimizer", "lr_scheduler", "epoch", "args", "arch", "imgsz"} <= set(ck)
    assert ck["epoch"] == 0 and ck["imgsz"] == 32
    # a second run with the same name refuses to overwrite; --resume continues the schedule
    with pytest.raises(ValueError, match="exists"):
        train(arch="mobilenet_v2_050", data=str(root), imgsz=32, epochs=1, init="none", project=str(proj), name="t")
    with caplog.at_level("WARNING", logger="facewear.cls"):
        res2 = train(arch="mobilenet_v2_050", data=str(root), imgsz=32, epochs=2, batch=8, init="none",
                     project=str(proj), name="t", resume=True, threads=1, balance=True)
    assert [h["epoch"] for h in res2["history"]] == [0, 1]
    assert "--resume: balance was False" in caplog.text  # the sampling changed with the command line: said so
    assert torch.load(w / "last.pt", weights_only=False)["epoch"] == 1
    # --test-only evaluates without training and writes its JSON
    r3 = train(arch="mobilenet_v2_050", data=str(root), test_only=True, weights=str(w / "best.pt"),
               project=str(proj), name="t")
    assert r3["val"]["n"] == 12
    assert json.loads((proj / "t" / "best.eval.json").read_text())["val"]["n"] == 12
    clf = load_classifier(w / "best.pt")
    assert clf.imgsz == 32 and clf.arch == "mobilenet_v2_050"
    p = clf(np.zeros((3, 32, 32, 3), np.uint8))
    assert p.shape == (3, 4) and np.allclose(p.sum(1), 1, atol=1e-5)


@pytest.mark.slow
def test_learns_separable_crops(tmp_path):
    """A signal check: on crops whose classes differ by colour, a few epochs beat chance by far."""
    from classification.train import train

    root = make_crop_root(tmp_path / "crops", n=32)
    res = train(arch="mobilenet_v2_050", data=str(root), imgsz=32, epochs=8, batch=16, init="none", lr=3e-3,
                project=str(tmp_path / "runs"), name="s", threads=1, label_smoothing=0.0)
    assert res["metrics"]["heldout-real"]["accuracy"] >= 0.75


@pytest.mark.slow
def test_distill_and_cli(tmp_path):
    from facewear.cli import main

    root = make_crop_root(tmp_path / "crops")
    proj = tmp_path / "runs"
    args = ["train", "cls", "--arch", "mobilenet_v2_050", "--crops", str(root), "--imgsz", "32", "--epochs", "1",
            "--batch", "8", "--init", "none", "--project", str(proj), "--threads", "1"]
    assert main(args + ["--name", "teacher"]) == 0  # --name reaches the trainer (it once collided with dispatch)
    teacher = proj / "teacher" / "weights" / "best.pt"
    assert teacher.is_file()
    assert main(args + ["--name", "student", "--distill", str(teacher)]) == 0
    ck = torch.load(proj / "student" / "weights" / "best.pt", weights_only=False)
    assert "distilled from best.pt" in ck["start"]


def test_yolo_cli_passes_name(monkeypatch):
    """`facewear train yolo --name X` hands name=X to the trainer."""
    import detection.yolo.train
    from facewear.cli import main

    seen = {}
    monkeypatch.setattr(detection.yolo.train, "run", lambda **kw: seen.update(kw) or 0)
    assert main(["train", "yolo", "--name", "abc", "--epochs", "1"]) == 0
    assert seen["name"] == "abc" and seen["epochs"] == 1


def test_bad_input(tmp_path):
    from classification.models import build_model
    from classification.runtime import load_classifier
    from classification.train import train

    with pytest.raises(ValueError, match="unknown --arch"):
        train(arch="vgg", data=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="facewear data crops"):
        train(arch="resnet18", data=str(tmp_path / "nothing"), project=str(tmp_path / "r"))
    with pytest.raises(ValueError, match="unknown classifier architecture"):
        build_model("vgg")
    bad = tmp_path / "bad.pt"
    torch.save({"weights": 1}, bad)
    with pytest.raises(ValueError, match="bad.pt: not a facewear classifier"):
        load_classifier(bad)
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt: cannot be read"):
        load_classifier(bad)
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        load_classifier(tmp_path / "missing.onnx")
