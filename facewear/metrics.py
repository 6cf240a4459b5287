"""Detection metrics as one typed object: :class:`DetMetrics`.

``facewear val`` (``detection.val.run``) returns its result as a JSON-like dict, and every report, metrics file and
manifest entry stores a part of it. :class:`DetMetrics` reads such a dict (``from_json``), gives the headline
figures as attributes and writes the parts the reports keep (``to_json``, ``head``, ``ap50``, ``without_curves``,
``compact``), so that the key names are written here once. ``to_json`` gives back the keys in the order they came
in: a file written from a round trip is byte for byte the file written from the dict.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAP50 = "mAP50"
MAP50_95 = "mAP50-95"
AP50 = "AP50"
AP50_95 = "AP50-95"
HEAD_KEYS = (MAP50, MAP50_95, "precision", "recall")  # the headline figures, in report order
CURVES = "pr50"  # per class: precision at 101 recall points, IoU 0.5 (plots only)
CONFUSION = "confusion"  # the confusion matrix (plots and true-class outcomes)
_FIELDS = {MAP50: "map50", MAP50_95: "map50_95", "precision": "precision", "recall": "recall", "per_class": "per_class"}


@dataclass
class DetMetrics:
    """mAP50, mAP50-95, precision and recall (means over the classes present), per-class figures
    (``{class: {"AP50", "AP50-95", "instances", "precision", "recall", "pr50"}}``, the keys val gives) and every
    other key of the result (``images``, ``instances``, ``confusion``, ``true_class``, ``conf``, ``small``...)
    in ``extra``."""

    map50: float = 0.0
    map50_95: float = 0.0
    precision: float | None = None
    recall: float | None = None
    per_class: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    keys: tuple[str, ...] | None = None  # the JSON key order (None: head keys, per_class, then extra)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DetMetrics:
        """From a val result or any stored part of one (a missing headline figure is None, mAP 0.0)."""
        kw = {attr: d[k] for k, attr in _FIELDS.items() if k in d}
        return cls(**kw, extra={k: v for k, v in d.items() if k not in _FIELDS}, keys=tuple(d))

    def to_json(self) -> dict[str, Any]:
        """The dict ``from_json`` read (same keys, same order); headline figures that were absent stay absent."""
        own = {k: getattr(self, attr) for k, attr in _FIELDS.items()}
        order = self.keys if self.keys is not None else (*HEAD_KEYS, "per_class", *self.extra)
        out = {k: own[k] if k in own else self.extra[k] for k in order if k in own or k in self.extra}
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out

    def head(self) -> dict[str, Any]:
        """``{"mAP50", "mAP50-95", "precision", "recall"}``: the figures manifest entries record."""
        d = self.to_json()
        return {k: d[k] for k in HEAD_KEYS if k in d}

    def ap50(self) -> dict[str, float]:
        """``{class: AP50}``."""
        return {n: pc[AP50] for n, pc in self.per_class.items()}

    def without_curves(self, confusion: bool = True) -> dict[str, Any]:
        """The result without the per-class PR curves (and, unless ``confusion``, the confusion matrix): what
        ``facewear val --json`` and the release metrics files store."""
        out = {k: v for k, v in self.to_json().items() if confusion or k != CONFUSION}
        if "per_class" in out:
            out["per_class"] = {n: {k: v for k, v in pc.items() if k != CURVES} for n, pc in self.per_class.items()}
        return out

    def compact(self) -> dict[str, Any]:
        """Headline figures, ``images`` and per class AP50, AP50-95 and instances: what a training checkpoint and
        its history keep."""
        d = self.to_json()
        out = {k: d[k] for k in (*HEAD_KEYS, "images") if k in d}
        out["per_class"] = {n: {k: v for k, v in pc.items() if k in (AP50, AP50_95, "instances")}
                            for n, pc in self.per_class.items()}
        return out
