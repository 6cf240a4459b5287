"""The release gate (facewear.gate) on metric dicts: no data, no weights."""
from __future__ import annotations

import pytest

from facewear.gate import (
    CLS_CHECKS,
    DETECT_CHECKS,
    GateError,
    cls_figures,
    cls_figures_recorded,
    decide,
    detector_figures,
    detector_figures_recorded,
    enforce,
    old_figures,
)


def _val(face: float, mask: float, sg: float | None = None) -> tuple[dict, dict | None]:
    held = {"per_class": {"face": {"AP50": face}, "mask": {"AP50": mask}, "sunglasses": {"AP50": 0.1}}}
    real = None if sg is None else {"true_class": {"sunglasses": {"n": 10, "recall": sg, "as": {}}}}
    return held, real


def test_detector_gate_passes_and_fails_on_each_check() -> None:
    old = detector_figures(*_val(0.56, 0.71, 0.32))
    assert decide(old, detector_figures(*_val(0.56, 0.71, 0.32)), DETECT_CHECKS)["passed"]  # equal is enough
    assert decide(old, detector_figures(*_val(0.70, 0.80, 0.75)), DETECT_CHECKS)["passed"]
    for worse in (_val(0.55, 0.80, 0.75), _val(0.70, 0.70, 0.75), _val(0.70, 0.80, 0.31)):
        res = decide(old, detector_figures(*worse), DETECT_CHECKS, against="v1")
        assert not res["passed"] and not res["forced"]
        assert sum(r["ok"] is False for r in res["rows"]) == 1
        with pytest.raises(GateError, match="worse than v1"):
            enforce(res, out=lambda s: None)
    assert decide(old, detector_figures(*_val(0.55, 0.80, 0.75)), DETECT_CHECKS, tol=0.02)["passed"]


def test_force_is_recorded_and_table_shows_both() -> None:
    old = detector_figures(*_val(0.56, 0.71, 0.32))
    res = decide(old, detector_figures(*_val(0.50, 0.71, 0.40)), DETECT_CHECKS, force=True, against="v1")
    printed: list[str] = []
    rec = enforce(res, out=printed.append)
    assert rec["passed"] is False and rec["forced"] is True
    assert rec["old"]["heldout_face_AP50"] == 0.56 and rec["new"]["heldout_face_AP50"] == 0.50
    text = "\n".join(printed)
    assert "0.5600" in text and "0.5000" in text and "-0.0600" in text and "WORSE" in text and "--force" in text
    assert "rows" not in rec


def test_missing_figures() -> None:
    new = detector_figures(*_val(0.6, 0.7, 0.5))
    assert decide(None, new, DETECT_CHECKS)["passed"]  # nothing released
    old = detector_figures_recorded({"metrics": {"ilc-heldout-AP50": {"face": 0.5, "mask": 0.6}}})
    assert old["real_sunglasses_recall"] is None
    res = decide(old, new, DETECT_CHECKS)
    assert res["passed"] and res["rows"][2]["ok"] is None
    # a figure the old release had and the new one lacks fails
    res = decide(detector_figures(*_val(0.5, 0.6, 0.3)), detector_figures(*_val(0.6, 0.7)), DETECT_CHECKS)
    assert not res["passed"]
    # NaN AP (class absent) is not a figure
    assert detector_figures(*_val(float("nan"), 0.7, 0.5))["heldout_face_AP50"] is None


def test_recorded_figures_and_remeasure() -> None:
    entry = {"metrics": {"ilc-heldout-AP50": {"face": 0.56, "mask": 0.71}}}
    mfile = {"real-checks": {"true_class": {"sunglasses": {"recall": 0.322}}}}
    rec = detector_figures_recorded(entry, mfile)
    assert rec == {"heldout_face_AP50": 0.56, "heldout_mask_AP50": 0.71, "real_sunglasses_recall": 0.322}
    asked: list[list[str]] = []

    def measure(keys: list[str]) -> dict:
        asked.append(keys)
        return {k: 0.9 for k in keys}

    figs, src = old_figures(detector_figures_recorded(entry), DETECT_CHECKS, measure)
    assert asked == [["real_sunglasses_recall"]] and figs["real_sunglasses_recall"] == 0.9
    assert src == {"heldout_face_AP50": "recorded", "heldout_mask_AP50": "recorded",
                   "real_sunglasses_recall": "measured now"}
    figs, src = old_figures(rec, DETECT_CHECKS, measure, remeasure=True)
    assert set(src.values()) == {"measured now"} and figs["heldout_face_AP50"] == 0.9
    figs, src = old_figures(detector_figures_recorded(entry), DETECT_CHECKS)  # nothing to measure with
    assert figs["real_sunglasses_recall"] is None and src["real_sunglasses_recall"] == "missing"


def test_classifier_gate() -> None:
    entry = {"metrics": {"heldout-real": {"accuracy": 0.921, "recall": {
        "face": 0.951, "mask": 0.931, "sunglasses": 0.344, "mask_sunglasses": 0.271}}}}
    old = cls_figures_recorded(entry)
    better = cls_figures(0.95, {"face": 0.96, "mask": 0.94, "sunglasses": 0.80, "mask_sunglasses": 0.1})
    assert decide(old, better, CLS_CHECKS)["passed"]  # mask_sunglasses is not a gate check
    worse = cls_figures(0.95, {"face": 0.94, "mask": 0.94, "sunglasses": 0.80})
    res = decide(old, worse, CLS_CHECKS)
    assert not res["passed"] and [r["key"] for r in res["rows"] if r["ok"] is False] == ["real_face_recall"]


def test_release_yolo_gate_wiring() -> None:
    """release_yolo's gate (release_frcnn uses it too) on a made-up released entry: refuses; --force is recorded."""
    import argparse
    import sys

    from facewear.constants import REPO_ROOT

    sys.path.insert(0, str(REPO_ROOT / "tools"))
    import release_yolo

    against = {"name": "made-up", "file": "no-such-file.pt",
               "metrics": {"ilc-heldout-AP50": {"face": 0.5, "mask": 0.6}, "real-checks-recall": {"sunglasses": 0.3}}}
    a = argparse.Namespace(force=False, max_images=None, remeasure_old=False, gate_tolerance=0.0)
    held, real = _val(0.6, 0.7, 0.2)
    with pytest.raises(GateError, match="real sunglasses recall"):
        release_yolo.gate_detector(held, real, against, {}, a)
    a.force = True
    rec = release_yolo.gate_detector(held, real, against, {}, a)
    assert rec["forced"] and rec["against"] == "made-up" and rec["old"]["real_sunglasses_recall"] == 0.3
    assert release_yolo.real_recall(real) == {"real-checks-recall": {"sunglasses": 0.2}}
