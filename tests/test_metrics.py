"""facewear.metrics.DetMetrics: one reader/writer of val's metrics; every stored file keeps its bytes."""
import json
import math

import pytest

from facewear.constants import CLASS_NAMES, WEIGHTS_DIR
from facewear.io import write_json
from facewear.metrics import DetMetrics


def val_result(with_dets: bool = True) -> dict:
    """A result shaped as detection.val.evaluate + run return it (both key orders)."""
    per = {n: {"AP50": 0.5 + i / 10, "AP50-95": 0.3, "instances": 3 + i, "pr50": [0.1] * 101,
               "precision": 0.4, "recall": 0.6} for i, n in enumerate(CLASS_NAMES)}
    per["mask_sunglasses"]["AP50"] = float("nan")
    head = {"images": 7, "instances": {n: 3 for n in CLASS_NAMES}, "ignored": 0, "skipped": []}
    if with_dets:
        return {**head, "mAP50": 0.61, "mAP50-95": 0.3, "precision": 0.4, "recall": 0.6, "per_class": per,
                "confusion": [[1, 2], [3, 4]], "conf": 0.25, "true_class": {"face": {"n": 3}}, "model": "m.pt",
                "small": {"AP50": 0.1}, "ms_per_image": 3.2}
    return {**head, "mAP50": 0.0, "mAP50-95": 0.0, "precision": 0.0, "recall": 0.0, "conf": 0.25, "per_class": per,
            "confusion": [[0]], "true_class": {}}


def old_release_slim(m):  # tools/release_yolo.slim_metrics before DetMetrics
    return {k: (v if k != "per_class" else {n: {kk: vv for kk, vv in pc.items() if kk != "pr50"}
                                             for n, pc in v.items()})
            for k, v in m.items() if k != "confusion"}


def old_frcnn_slim(res):  # detection.frcnn.train.slim before DetMetrics
    out = {k: res[k] for k in ("mAP50", "mAP50-95", "precision", "recall", "images") if k in res}
    out["per_class"] = {n: {k: v for k, v in pc.items() if k in ("AP50", "AP50-95", "instances")}
                        for n, pc in res.get("per_class", {}).items()}
    return out


def old_val_json(res):  # detection.val.run --json before DetMetrics
    slim = dict(res)
    slim["per_class"] = {n: {k: v for k, v in pc.items() if k != "pr50"} for n, pc in res.get("per_class", {}).items()}
    return slim


def same(a, b) -> bool:
    """Equal as JSON text (key order included; NaN equals NaN)."""
    return json.dumps(a) == json.dumps(b)


@pytest.mark.parametrize("with_dets", [True, False])
def test_parts_match_the_former_hand_written_ones(with_dets):
    r = val_result(with_dets)
    m = DetMetrics.from_json(r)
    assert (m.map50, m.map50_95) == (r["mAP50"], r["mAP50-95"]) and math.isnan(m.ap50()["mask_sunglasses"])
    assert same(m.to_json(), r)
    assert same(m.without_curves(confusion=False), old_release_slim(r))
    assert same(m.without_curves(), old_val_json(r))
    assert same(m.compact(), old_frcnn_slim(r))
    assert same(m.head(), {k: r[k] for k in ("mAP50", "mAP50-95", "precision", "recall")})


def test_partial_dicts_round_trip():
    for d in ({"mAP50": 0.5, "mAP50-95": 0.2}, {"mAP50": 0.5}, {}):
        assert same(DetMetrics.from_json(d).to_json(), d)
        assert same(DetMetrics.from_json(d).head(), d)


@pytest.mark.parametrize("name", sorted(p.name for p in WEIGHTS_DIR.glob("*.metrics.json")))
def test_released_metrics_files_keep_their_bytes(name, tmp_path):
    """Every val result stored in weights/*.metrics.json reads and writes back byte for byte."""
    path = WEIGHTS_DIR / name
    data = json.loads(path.read_text())
    parts = [k for k, v in data.items() if isinstance(v, dict) and "mAP50" in v]
    assert parts, f"{name}: no stored val result"
    out = {k: (DetMetrics.from_json(v).to_json() if k in parts else v) for k, v in data.items()}
    write_json(tmp_path / name, out)
    assert (tmp_path / name).read_bytes() == path.read_bytes()
