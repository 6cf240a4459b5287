"""tools/train_budget.py: a tiny timed run (generated dataset, 64 px, 2 timed batches) and its table."""
from __future__ import annotations

import sys

import pytest
from conftest import make_det_dataset

from facewear.constants import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "tools"))


@pytest.mark.slow
def test_train_budget_tiny_run(tmp_path, capsys) -> None:
    import train_budget

    spec = make_det_dataset(tmp_path / "ds", n_train=16, n_val=2)
    out = tmp_path / "budget.md"
    assert train_budget.main(["--cfg", "yolov5n.yaml", "--imgsz", "64", "--batch", "4", "--iters", "2",
                              "--warmup", "1", "--workers", "0", "--data", str(spec), "--out", str(out)]) == 0
    md = out.read_text()
    assert "| yolov5n | 64 | 4 |" in md and "cores" in md
    row = next(ln for ln in md.splitlines() if ln.startswith("| yolov5n"))
    s_iter, s_img, per_epoch = row.split("|")[4], row.split("|")[6], row.split("|")[7]
    assert float(s_iter) > 0 and float(s_img) == pytest.approx(float(s_iter) / 4, rel=0.05, abs=1e-3)
    assert "(16)" in per_epoch  # the epoch estimate is over the train split's 16 images
    assert not list((tmp_path / "ds").glob("**/budget")), "the run folder is temporary"


@pytest.mark.slow
def test_train_budget_stops_when_the_epoch_is_too_short(tmp_path) -> None:
    import train_budget

    spec = make_det_dataset(tmp_path / "ds", n_train=4, n_val=2)
    with pytest.raises(RuntimeError, match="before 1 warm-up"):
        train_budget.measure("yolov5n.yaml", 64, 4, 3, 1, str(spec), workers=0)
