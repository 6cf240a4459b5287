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
