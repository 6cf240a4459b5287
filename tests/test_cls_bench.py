"""`facewear bench --suite cls|cascade` on tiny models: the tables, plot and JSON are written and hold real rows."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import make_cls_ckpt, make_crop_root, make_det_dataset

from facewear.constants import CLASS_NAMES
from facewear.data.layout import write_spec


@pytest.mark.slow
def test_bench_classifiers_table_and_plot(tmp_path):
    from facewear.cli import main

    root = make_crop_root(tmp_path / "crops", n=4)
    # a synthetic held-out split too, so both accuracy columns are filled
    import shutil

    shutil.copytree(root / "heldout-real", root / "heldout-synth")
    ckpt = make_cls_ckpt(tmp_path / "m.pt")
    out = tmp_path / "report" / "cls"
    torch.set_num_threads(1)
    # an export made beforehand (as release_cls does for QAT) is picked up and plotted as int8
    from classification.export import run as export_run

    q = export_run(ckpt, formats=["torch-int8"], calib=str(root), check=4)["files"]["torch-int8"]["file"]
    shutil.move(q, tmp_path / "m-int8-qat.pt")
    assert main(["bench", "--suite", "cls", "--model", str(ckpt), "--crops", str(root), "--out", str(out),
                 "--iters", "3"]) == 0
    res = json.loads(out.with_suffix(".json").read_text())
    variants = {r["variant"] for r in res["rows"]}
    assert {"torch fp32", "onnx fp32", "onnx int8", "torch int8", "torch int8 qat"} <= variants
    for r in res["rows"]:
        assert 0.0 <= r["accuracy"]["heldout-real"] <= 1.0 and "heldout-synth" in r["accuracy"]
        assert np.asarray(r["confusion"]["heldout-real"]).sum() == 12
        assert set(r["latency"]) == {"112px 1t", "112px 2t", "64px 1t", "64px 2t"}
        assert r["MB"] > 0
    md = out.with_suffix(".md").read_text()
    assert "| mobilenet_v2_050 | onnx int8 |" in md and "Machine:" in md
    assert out.with_suffix(".png").stat().st_size > 1000


def test_bench_cascades_report(tmp_path):
    from detection.cascade_bench import bench_cascades, found_and_named

    make_det_dataset(tmp_path / "ds", n_train=2, n_val=3)
    held = tmp_path / "held.yaml"
    write_spec(held, tmp_path / "ds", {"val": "images/val", "test": "images/val"})
    ckpt = make_cls_ckpt(tmp_path / "m.pt")
    res = bench_cascades([f"haar+{ckpt}"], data=str(held), imgsz=64, out=str(tmp_path / "casc"), iters=2)
    row = res["rows"][0]
    assert row["model"].startswith("haar+") and row["images"] == 3
    # coloured squares are not faces: Haar finds none, so nothing is found and mAP is 0
    assert all(row["found"][n]["found"] in (0.0, None) for n in CLASS_NAMES) and row["mAP50"] <= 0.0 + 1e-9
    assert "| haar+" in (tmp_path / "casc.md").read_text()
    # the found/named split on a hand-made case: one face found and named right, one found but misnamed, one missed
    gt = {"categories": [{"id": i, "name": n} for i, n in enumerate(CLASS_NAMES)],
          "annotations": [{"image_id": 1, "category_id": 0, "bbox": [0, 0, 10, 10]},
                          {"image_id": 1, "category_id": 1, "bbox": [20, 0, 10, 10]},
                          {"image_id": 1, "category_id": 1, "bbox": [40, 0, 10, 10]}]}
    dets = [{"image_id": 1, "category_id": 0, "bbox": [0, 0, 10, 10], "score": 0.9},
            {"image_id": 1, "category_id": 0, "bbox": [21, 0, 10, 10], "score": 0.9},
            {"image_id": 1, "category_id": 1, "bbox": [40, 0, 10, 10], "score": 0.1}]  # below conf: a miss
    f = found_and_named(gt, dets)
    assert f["face"] == {"n": 1, "found": 1.0, "named_if_found": 1.0}
    assert f["mask"] == {"n": 2, "found": 0.5, "named_if_found": 0.0}
