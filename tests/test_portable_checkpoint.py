"""A released ultralytics checkpoint names no directory of the machine that trained it."""
from __future__ import annotations

import pytest
import torch

from facewear.constants import REPO_ROOT


def test_portable_checkpoint_makes_train_args_relative(tmp_path):
    from detection.yolo.train import portable_checkpoint

    src = tmp_path / "best.pt"
    w = torch.arange(4.0)
    torch.save({"model": None, "ema": {"w": w}, "epoch": -1,
                "train_args": {"data": f"{REPO_ROOT}/runs/yolo/x.data.yaml", "project": f"{REPO_ROOT}/runs/yolo",
                               "imgsz": 640, "name": "x"}}, src)
    before = src.read_bytes()
    dst = portable_checkpoint(src, tmp_path / "w" / "m.pt")
    ck = torch.load(dst, weights_only=False)
    assert ck["train_args"] == {"data": "runs/yolo/x.data.yaml", "project": "runs/yolo", "imgsz": 640, "name": "x"}
    assert torch.equal(ck["ema"]["w"], w) and ck["epoch"] == -1
    assert src.read_bytes() == before  # the run's own checkpoint is not touched
    assert str(REPO_ROOT) not in dst.read_bytes().decode("latin-1")


def test_portable_checkpoint_bad_input(tmp_path):
    from detection.yolo.train import portable_checkpoint

    with pytest.raises(FileNotFoundError, match="nope.pt"):
        portable_checkpoint(tmp_path / "nope.pt", tmp_path / "m.pt")
    torch.save({"state_dict": {}}, tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="plain.pt: not an ultralytics checkpoint"):
        portable_checkpoint(tmp_path / "plain.pt", tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


def test_portable_checkpoint_git_root_and_other_kinds(tmp_path):
    """The ultralytics ``git.root`` (the repository itself, no trailing slash) and a Faster R-CNN / classifier
    checkpoint's ``args`` are rewritten too; the weights, the source file and unnamed entries are not."""
    from detection.yolo.train import portable_checkpoint as yolo_portable
    from facewear.io import portable_checkpoint

    src = tmp_path / "best.pt"
    torch.save({"train_args": {"data": "d.yaml"}, "git": {"root": str(REPO_ROOT), "branch": "main"}}, src)
    ck = torch.load(yolo_portable(src, tmp_path / "y.pt"), weights_only=False)
    assert ck["git"] == {"root": ".", "branch": "main"}

    w = torch.ones(3)
    note = f"trained in {REPO_ROOT}/runs"
    torch.save({"model": {"w": w}, "args": {"data": f"{REPO_ROOT}/datasets/facewear4.yaml",
                                            "project": f"{REPO_ROOT}/runs/frcnn", "epochs": 1},
                "note": note}, src)
    before = src.read_bytes()
    ck = torch.load(portable_checkpoint(src, tmp_path / "f.pt", ("args",)), weights_only=False)
    assert ck["args"] == {"data": "datasets/facewear4.yaml", "project": "runs/frcnn", "epochs": 1}
    assert torch.equal(ck["model"]["w"], w) and ck["note"] == note  # only the named entries change
    assert src.read_bytes() == before
    with pytest.raises(ValueError, match="best.pt: not a checkpoint dict with train_args"):
        portable_checkpoint(src, tmp_path / "g.pt", ("args",), require="train_args")
    assert not (tmp_path / "g.pt").exists()
