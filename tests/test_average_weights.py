"""tools/average_weights.py: the uniform average of two checkpoints of one architecture."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from facewear.io import OverwriteError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))


def _ckpt(path: Path, value: float, width: int = 3) -> Path:
    m = torch.nn.Sequential(torch.nn.Conv2d(1, width, 1), torch.nn.BatchNorm2d(width))
    for p in m.parameters():
        torch.nn.init.constant_(p, value)
    m[1].num_batches_tracked.fill_(int(value))
    torch.save({"model": m, "train_args": {"name": str(value)}}, path)
    return path


def test_average_is_the_mean_of_the_float_tensors(tmp_path):
    from average_weights import main

    a, b = _ckpt(tmp_path / "a.pt", 1.0), _ckpt(tmp_path / "b.pt", 3.0)
    assert main([str(a), str(b), "--out", str(tmp_path / "s.pt")]) == 0
    s = torch.load(tmp_path / "s.pt", weights_only=False)
    sd = s["model"].state_dict()
    assert torch.allclose(sd["0.weight"], torch.full_like(sd["0.weight"], 2.0))
    assert int(sd["1.num_batches_tracked"]) == 3  # integer tensors: from the last checkpoint
    assert s["train_args"] == {"name": "3.0"} and len(s["averaged_from"]) == 2


def test_average_bad_input(tmp_path):
    from average_weights import average, main

    a = _ckpt(tmp_path / "a.pt", 1.0)
    with pytest.raises(ValueError, match="different architecture"):
        average([a, _ckpt(tmp_path / "w.pt", 1.0, width=4)], tmp_path / "s.pt")
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        average([a, tmp_path / "nope.pt"], tmp_path / "s.pt")
    with pytest.raises(OverwriteError, match="a.pt"):  # --out must not overwrite an input
        main([str(a), str(_ckpt(tmp_path / "b.pt", 2.0)), "--out", str(a)])
    assert not (tmp_path / "s.pt").exists()
