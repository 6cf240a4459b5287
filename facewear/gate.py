"""The release gate: a new model replaces a released one only when it is at least as good on the real checks.

One comparison for every ``tools/release_*.py``:

* detectors (YOLO, Faster R-CNN): held-out (``datasets/ilc-heldout.yaml``) face and mask AP50, and the recall of
  real sunglasses faces at conf 0.25 on the real checks (``datasets/real-checks.yaml``: how each true class was
  predicted, ``facewear val``'s ``true_class``);
* the crop classifier: accuracy on the real held-out crops (``build/crops/heldout-real``) and the recall of its
  face, mask and sunglasses crops.

The old model's figures are read from what its release recorded (its ``weights/manifest.json`` entry, or its
``weights/<name>.metrics.json``), so the gate does not re-measure it; a figure the release did not record is
measured on the released file, and ``--remeasure-old`` re-measures them all (after a dataset rebuild the recorded
figures belong to the old data). ``--force`` releases a model that fails; the manifest entry records the decision
(:func:`decide`'s dict: ``passed``, ``forced``, ``old``, ``new``, the rows).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

#: (key, label) of the figures a detector release is judged on
DETECT_CHECKS: tuple[tuple[str, str], ...] = (
    ("heldout_face_AP50", "held-out face AP50"),
    ("heldout_mask_AP50", "held-out mask AP50"),
    ("real_sunglasses_recall", "real sunglasses recall (conf 0.25)"),
)
#: (key, label) of the figures a classifier release is judged on
CLS_CHECKS: tuple[tuple[str, str], ...] = (
    ("real_accuracy", "real held-out crop accuracy"),
    ("real_face_recall", "real held-out face recall"),
    ("real_mask_recall", "real held-out mask recall"),
    ("real_sunglasses_recall", "real held-out sunglasses recall"),
)


class GateError(SystemExit):
    """The new model is worse than the released one on a real check (and ``--force`` was not given)."""


def _num(v: Any) -> float | None:
    """``v`` as a float, or None when missing or NaN (a figure that cannot be compared)."""
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def detector_figures(held: dict | None = None, real: dict | None = None) -> dict[str, float | None]:
    """The gate's detector figures from ``facewear val`` results on the held-out set and on the real checks."""
    out: dict[str, float | None] = {}
    if held is not None:
        pc = held.get("per_class", {})
        out["heldout_face_AP50"] = _num(pc.get("face", {}).get("AP50"))
        out["heldout_mask_AP50"] = _num(pc.get("mask", {}).get("AP50"))
    if real is not None:
        out["real_sunglasses_recall"] = _num(real.get("true_class", {}).get("sunglasses", {}).get("recall"))
    return out


def detector_figures_recorded(entry: dict | None, metrics_file: dict | None = None) -> dict[str, float | None]:
    """The gate's figures as a released detector recorded them: its manifest entry's ``ilc-heldout-AP50`` and
    ``real-checks-recall``; the real-check recall falls back to ``real-checks`` of its metrics file (releases
    before the gate kept it only there). Missing figures are None."""
    m = (entry or {}).get("metrics") or {}
    ap = m.get("ilc-heldout-AP50") or {}
    real = (m.get("real-checks-recall") or {}).get("sunglasses")
    if real is None and metrics_file:
        real = (metrics_file.get("real-checks") or {}).get("true_class", {}).get("sunglasses", {}).get("recall")
    return {"heldout_face_AP50": _num(ap.get("face")), "heldout_mask_AP50": _num(ap.get("mask")),
            "real_sunglasses_recall": _num(real)}


def cls_figures(accuracy: float | None, recall: dict | None) -> dict[str, float | None]:
    """The gate's classifier figures from real held-out crop accuracy and per-class recall."""
    r = recall or {}
    return {"real_accuracy": _num(accuracy), "real_face_recall": _num(r.get("face")),
            "real_mask_recall": _num(r.get("mask")), "real_sunglasses_recall": _num(r.get("sunglasses"))}


def cls_figures_recorded(entry: dict | None) -> dict[str, float | None]:
    """The gate's figures as a released classifier's manifest entry recorded them (``heldout-real``)."""
    h = ((entry or {}).get("metrics") or {}).get("heldout-real") or {}
    return cls_figures(h.get("accuracy"), h.get("recall"))


def old_figures(recorded: dict[str, float | None], checks: Iterable[tuple[str, str]],
                measure: Callable[[list[str]], dict[str, float | None]] | None = None,
                remeasure: bool = False) -> tuple[dict[str, float | None], dict[str, str]]:
    """The released model's figures and where each came from ("recorded" or "measured now").

    ``measure(keys)`` measures the released file on the named figures; it is called for the figures the release
    did not record (all of them with ``remeasure``). Without ``measure`` a missing figure stays None."""
    keys = [k for k, _ in checks]
    want = keys if remeasure else [k for k in keys if recorded.get(k) is None]
    got = measure(want) if (want and measure is not None) else {}
    figs, source = {}, {}
    for k in keys:
        if k in want and measure is not None:
            figs[k], source[k] = _num(got.get(k)), "measured now"
        else:
            figs[k], source[k] = _num(recorded.get(k)), "recorded" if recorded.get(k) is not None else "missing"
    return figs, source


def decide(old: dict[str, float | None] | None, new: dict[str, float | None], checks: Iterable[tuple[str, str]],
           force: bool = False, tol: float = 0.0, against: str | None = None,
           source: dict[str, str] | None = None) -> dict[str, Any]:
    """Compare ``new`` with ``old`` on ``checks``: a row fails when the new figure is below the old one by more
    than ``tol`` or is missing while the old one exists. A row whose old figure is missing cannot fail (it says
    so). ``old`` None: nothing released to replace, the gate passes. Returns the record for the manifest."""
    rows = []
    for key, label in checks:
        o = None if old is None else _num(old.get(key))
        n = _num(new.get(key))
        if o is None:
            ok, note = None, "no old figure" if old is not None else "nothing released"
        elif n is None:
            ok, note = False, "no new figure"
        else:
            ok, note = n >= o - tol, ""
        rows.append({"key": key, "label": label, "old": o, "new": n,
                     "delta": None if (o is None or n is None) else round(n - o, 4), "ok": ok, "note": note,
                     "old_from": (source or {}).get(key, "")})
    passed = all(r["ok"] is not False for r in rows)
    return {"passed": passed, "forced": bool(force and not passed), "against": against, "tolerance": tol,
            "old": None if old is None else {r["key"]: r["old"] for r in rows},
            "new": {r["key"]: r["new"] for r in rows}, "rows": rows}


def table(result: dict[str, Any]) -> str:
    """Old and new side by side, one row per check, as markdown."""
    f = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    lines = [f"| check | released ({result.get('against') or 'none'}) | new | change | verdict |",
             "|---|---:|---:|---:|---|"]
    for r in result["rows"]:
        verdict = {True: "ok", False: "WORSE", None: "not compared"}[r["ok"]]
        notes = ", ".join(x for x in (r["note"], r["old_from"] and f"old {r['old_from']}") if x)
        d = "" if r["delta"] is None else f"{r['delta']:+.4f}"
        lines.append(f"| {r['label']} | {f(r['old'])} | {f(r['new'])} | {d} | {verdict}"
                     + (f" ({notes})" if notes else "") + " |")
    return "\n".join(lines) + "\n"


def enforce(result: dict[str, Any], out: Callable[[str], Any] = print) -> dict[str, Any]:
    """Print the side-by-side table and the verdict; raise :class:`GateError` when the new model fails and was not
    forced. Returns the manifest record (``result`` without the per-row notes)."""
    out("Release gate (old figures as its release recorded them unless marked 'measured now'):\n" + table(result))
    if result["passed"]:
        out("gate: passed" + ("" if result["old"] is not None else " (no released model to replace)"))
    elif result["forced"]:
        out("gate: FAILED, released anyway (--force); the manifest records it")
    else:
        worse = ", ".join(r["label"] for r in result["rows"] if r["ok"] is False)
        raise GateError(f"gate: the new model is worse than {result['against']} on {worse}; not released "
                        "(--force overrides, and the manifest records it)")
    return {k: v for k, v in result.items() if k != "rows"}
