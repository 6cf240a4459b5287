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


@pytest.mark.slow
def test_train_budget_times_frcnn_and_merges_rows(tmp_path) -> None:
    """--cfg frcnn times facewear train frcnn's own loop; --merge keeps the other rows and both commands."""
    import json

    import train_budget

    spec = make_det_dataset(tmp_path / "ds", n_train=8, n_val=2)
    out = tmp_path / "budget.md"
    yolo_row = {"model": "yolov5n", "imgsz": 64, "batch": 4, "iters": 2, "warmup": 1, "s_per_iter": 0.5,
                "s_per_iter_p50": 0.5, "s_per_image": 0.125, "train_images": 8, "iters_per_epoch": 2,
                "min_per_epoch": 0.0}
    out.with_suffix(".json").write_text(json.dumps({"command": "python tools/train_budget.py --cfg yolov5n.yaml",
                                                    "rows": [yolo_row]}))
    assert train_budget.main(["--cfg", "frcnn", "--imgsz", "64", "--batch", "2", "--iters", "2", "--warmup", "1",
                              "--data", str(spec), "--out", str(out), "--merge"]) == 0
    md = out.read_text()
    assert "| yolov5n | 64 | 4 | 0.500 |" in md and "| frcnn | 64 | 2 |" in md
    assert md.index("| yolov5n") < md.index("| frcnn") and "`facewear train frcnn`" in md
    assert "--cfg yolov5n.yaml`" in md and "--cfg frcnn" in md  # both commands
    row = next(ln for ln in md.splitlines() if ln.startswith("| frcnn"))
    assert float(row.split("|")[4]) > 0 and "(8)" in row.split("|")[7]
    assert not list(tmp_path.glob("**/budget/weights")), "the run folder is temporary"


def test_frcnn_rejects_unknown_callback_events(tmp_path) -> None:
    from detection.frcnn.train import train

    spec = make_det_dataset(tmp_path / "ds", n_train=2, n_val=1)
    with pytest.raises(ValueError, match="unknown callback event"):
        train(data=str(spec), epochs=1, imgsz=64, batch=2, init="none", project=str(tmp_path / "r"), name="x",
              threads=1, callbacks={"on_fit_end": lambda s: None})
