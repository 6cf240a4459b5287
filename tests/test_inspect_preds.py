"""``facewear inspect preds`` (FiftyOne dataset with predictions, evaluation, worst-first views) and the
real-browser check of the App (``tools/check_app.py``), on a tiny generated squares dataset.

FiftyOne uses the tests' own database (``tests/conftest.py``). The models are
:class:`detection.app_check.SquaresDetector` objects (a colour detector for the
generated squares: exact, or with ``mask_sunglasses`` called ``sunglasses``) and one
real ``haar+<tiny classifier>.pt`` cascade through ``load_detector`` and the CLI.
"""
from __future__ import annotations

import csv
import uuid
from pathlib import Path

import pytest

from detection import fiftyone_preds as preds
from detection.app_check import SquaresDetector, find_browser, make_squares_dataset
from facewear.cli import build_parser, main


@pytest.fixture(scope="module")
def squares(tmp_path_factory) -> Path:
    """The spec of a tiny squares dataset (6 val images)."""
    return make_squares_dataset(tmp_path_factory.mktemp("squares"), n_val=6, n_train=1)


@pytest.fixture()
def fo_name():
    """A unique FiftyOne dataset name, deleted afterwards."""
    name = f"facewear-test-{uuid.uuid4().hex[:10]}"
    yield name
    import fiftyone as fo

    if fo.dataset_exists(name):
        fo.delete_dataset(name)


def two_models() -> list[SquaresDetector]:
    return [SquaresDetector("squares"), SquaresDetector("squares-confused", confuse={3: 2})]


def gt_count(ds, label: str | None = None) -> int:
    labels = [lb for row in ds.values("ground_truth.detections.label") for lb in row or []]
    return len(labels) if label is None else labels.count(label)


# --- inspect preds, no browser -------------------------------------------------------------
@pytest.mark.slow
def test_preds_fields_evaluation_views(squares: Path, fo_name: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    ds = preds.run(two_models(), data=squares, name=fo_name, no_launch=True, views_dir=tmp_path / "views")
    n_gt, n_ms = gt_count(ds), gt_count(ds, "mask_sunglasses")
    assert len(ds) == 6 and ds.persistent and n_gt > 6 and n_ms > 0
    assert {"pred_squares", "pred_squares_confused"} <= set(ds.get_field_schema())
    assert ds.count("pred_squares.detections") == n_gt
    assert sorted(ds.list_evaluations()) == ["eval_squares", "eval_squares_confused"]
    # TP/FP/FN marks on objects and samples
    assert ds.count_values("ground_truth.detections.eval_squares") == {"tp": n_gt}
    assert sum(ds.values("eval_squares_confused_fp")) == n_ms
    assert sum(ds.values("eval_squares_confused_fn")) == n_ms
    assert ds.count_values("pred_squares_confused.detections.eval_squares_confused") == {"tp": n_gt - n_ms,
                                                                                          "fp": n_ms}
    info = ds.info["models"]
    assert info["pred_squares"]["mAP50-95"] == pytest.approx(1.0)
    assert info["pred_squares"]["mAP50"] == pytest.approx(1.0)
    assert info["pred_squares_confused"]["mAP50"] < 1.0
    # worst-first saved views: the exact model has none, the confused one has the mask_sunglasses images
    assert sorted(ds.list_saved_views()) == ["worst-squares", "worst-squares_confused"]
    assert len(ds.load_saved_view("worst-squares")) == 0
    worst = ds.load_saved_view("worst-squares_confused")
    with_ms = {fp for fp, labels in zip(ds.values("filepath"), ds.values("ground_truth.detections.label"))
               if "mask_sunglasses" in (labels or [])}
    assert set(worst.values("filepath")) == with_ms
    errs = [fn + fp for fn, fp in zip(worst.values("eval_squares_confused_fn"),
                                      worst.values("eval_squares_confused_fp"))]
    assert errs == sorted(errs, reverse=True)
    rows = list(csv.DictReader((tmp_path / "views" / "worst-squares_confused.csv").open()))
    assert [r["filepath"] for r in rows] == worst.values("filepath")
    assert sum(int(r["fn"]) for r in rows) == n_ms
    out = capsys.readouterr().out
    assert "| squares | pred_squares | 1.000 | 1.000 |" in out
    assert "| squares-confused | pred_squares_confused |" in out


@pytest.mark.slow
def test_preds_rerun_updates_in_place(squares: Path, fo_name: str, tmp_path: Path) -> None:
    import fiftyone as fo

    ds = preds.run(two_models(), data=squares, name=fo_name, no_launch=True)
    ids = sorted(ds.values("id"))
    # same samples: the same dataset and samples, the model not given again is kept
    ds = preds.run(SquaresDetector("squares"), data=squares, name=fo_name, no_launch=True)
    assert fo.list_datasets().count(fo_name) == 1
    assert sorted(ds.values("id")) == ids
    assert ds.has_sample_field("pred_squares_confused") and ds.has_evaluation("eval_squares_confused")
    assert ds.count("pred_squares.detections") == gt_count(ds)
    # fewer images: samples removed, never duplicated; the other model's evaluation is stale and dropped
    ds = preds.run(SquaresDetector("squares"), data=squares, name=fo_name, max_images=4, no_launch=True)
    assert len(ds) == 4 and len(fo.load_dataset(fo_name)) == 4
    assert set(ds.values("id")) <= set(ids)
    assert not ds.has_sample_field("pred_squares_confused")
    assert ds.list_evaluations() == ["eval_squares"] and ds.list_saved_views() == ["worst-squares"]
    assert list(ds.info["models"]) == ["pred_squares"]
    # all images back, and a changed label file: ground truth replaced for that image only
    label = squares.parent / "labels" / "val" / "val000.txt"
    old = label.read_text()
    try:
        label.write_text("0 0.5 0.5 0.25 0.25\n")
        ds = preds.run(SquaresDetector("squares"), data=squares, name=fo_name, no_launch=True)
    finally:
        label.write_text(old)
    assert len(ds) == 6 and len(set(ds.values("filepath"))) == 6
    s = ds.match({"filepath": {"$regex": "val000.png$"}}).first()
    assert [d.label for d in s.ground_truth.detections] == ["face"]
    assert s["eval_squares_fn"] == 1  # re-evaluated against the new ground truth


def test_field_names_are_sanitized_and_unique() -> None:
    runs = preds.plan_fields(["weights/a/best.pt", "weights/b/best.pt", "haar+weights/My-Cls.v2.onnx",
                              SquaresDetector("odd name!")])
    assert [r.field for r in runs] == ["pred_best_pt", "pred_best_pt_2", "pred_haar_my_cls_v2", "pred_odd_name"]
    assert [r.eval_key for r in runs][:2] == ["eval_best_pt", "eval_best_pt_2"]


@pytest.fixture(scope="module")
def tiny_cls(tmp_path_factory) -> Path:
    """An untrained mobilenet_v2_050 crop classifier at 32 px."""
    from conftest import make_cls_ckpt

    return make_cls_ckpt(tmp_path_factory.mktemp("cls") / "tiny-cls.pt")


@pytest.mark.slow
def test_cli_preds_with_a_cascade_model(squares: Path, fo_name: str, tiny_cls: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    import fiftyone as fo

    rc = main(["inspect", "preds", "--data", str(squares), "--model", f"haar+{tiny_cls}", "--name", fo_name,
               "--max-images", "3", "--no-launch"])
    assert rc == 0
    ds = fo.load_dataset(fo_name)
    assert len(ds) == 3 and ds.has_sample_field("pred_haar_tiny_cls")
    assert ds.has_evaluation("eval_haar_tiny_cls")
    assert ds.info["models"]["pred_haar_tiny_cls"]["model"] == f"haar+{tiny_cls}"
    assert "| haar+tiny-cls | pred_haar_tiny_cls |" in capsys.readouterr().out


@pytest.mark.slow
def test_errors_name_the_file(squares: Path, fo_name: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import fiftyone as fo

    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        preds.run(SquaresDetector(), data=tmp_path / "nope.yaml", name=fo_name, no_launch=True)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        preds.run(str(tmp_path / "missing.pt"), data=squares, name=fo_name, no_launch=True)
    assert not fo.dataset_exists(fo_name)  # nothing built before the models load
    assert main(["inspect", "preds", "--data", str(squares), "--model", str(tmp_path / "missing.onnx"),
                 "--name", fo_name, "--no-launch"]) == 2
    assert "missing.onnx" in capsys.readouterr().err
    with pytest.raises(ValueError, match="at least one"):
        preds.run([], data=squares, no_launch=True)


def test_cli_args() -> None:
    a = build_parser("inspect").parse_args(["inspect", "preds", "--model", "a.pt", "--model", "haar+c.pt"])
    assert a.model == ["a.pt", "haar+c.pt"]
    assert not any(hasattr(a, k) for k in ("split", "conf", "report_conf", "imgsz", "port", "no_launch", "views_dir"))
    c = build_parser("inspect").parse_args(["inspect", "preds", "--model", "a.pt", "--conf", "0.1", "--no-launch"])
    assert (c.conf, c.no_launch) == (0.1, True)  # given options only; run() holds the defaults
    b = build_parser("inspect").parse_args(["inspect", "preds", "--model", "a.pt", "haar+c.pt", "--model", "b.onnx"])
    assert b.model == ["a.pt", "haar+c.pt", "b.onnx"]  # a list, a repeat, or both
    d = build_parser("inspect").parse_args(["inspect", "data", "--no-launch", "--max-images", "2"])
    assert (d.action, d.no_launch, d.max_images) == ("data", True, 2)
    with pytest.raises(SystemExit):
        build_parser("inspect").parse_args(["inspect", "preds"])  # --model is required


@pytest.mark.slow
def test_launch_serves_on_localhost_and_stops(squares: Path, fo_name: str, fake_app: dict) -> None:
    calls = fake_app
    preds.run(SquaresDetector(), data=squares, name=fo_name, max_images=1, port=5998)
    assert calls == {"address": "127.0.0.1", "port": 5998, "auto": False, "dataset": fo_name, "closed": True}


# --- the App in a real browser -------------------------------------------------------------
@pytest.mark.skipif(find_browser() is None,
                    reason="no Chromium: `apt-get install -y chromium` (plus `pip install playwright`) runs this check")
@pytest.mark.slow
def test_app_renders_in_headless_chromium(tmp_path: Path) -> None:
    import fiftyone as fo

    from detection.app_check import CHECK_DATASET, check_app

    res = check_app(out_dir=tmp_path, timeout_s=90)
    print(f"app check via {res.driver} in {res.seconds:.1f} s")
    for pg in res.pages:
        assert pg.found and all(pg.found.values()), (pg.url, pg.found)
        assert pg.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert res.ok and len(res.pages) == 2  # the dataset page and the confused model's worst-first view
    assert {"facewear-app-check", "pred_squares", "pred_squares_confused", "6 sample"} <= set(res.pages[0].found)
    assert not fo.dataset_exists(CHECK_DATASET)  # the generated dataset is cleaned up
