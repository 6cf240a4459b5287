"""Tracking for video crops: ultralytics' ByteTrack (with SciPy standing in for ``lap`` offline), a record per
track (class votes, best crop) and :class:`TrackCrops`, which writes each track's best crop when the track ends.
``facewear predict --track`` (the default on videos) uses it."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from facewear.boxes import crop_box

from .outputs import crop_base


def tracker_args(cfg: str | Path | None = None) -> SimpleNamespace:
    """ByteTrack settings from ultralytics' own ``cfg/trackers/bytetrack.yaml`` (or ``cfg``)."""
    import yaml

    if cfg is None:
        import ultralytics

        cfg = Path(ultralytics.__file__).parent / "cfg" / "trackers" / "bytetrack.yaml"
    with open(cfg) as f:
        return SimpleNamespace(**yaml.safe_load(f))


def _lapjv(cost: np.ndarray, extend_cost: bool = True, cost_limit: float = np.inf,
           return_cost: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """``lap.lapjv`` through SciPy: ``(total cost, row -> col or -1, col -> row or -1)``.

    With a ``cost_limit``, pairs costing more than it stay unmatched: the matrix
    is extended with dummy rows/columns at ``cost_limit / 2`` (as ``lap`` does).
    """
    from scipy.optimize import linear_sum_assignment

    cost = np.asarray(cost, dtype=np.float64)
    n, m = cost.shape
    x, y = np.full(n, -1, np.int64), np.full(m, -1, np.int64)
    if n == 0 or m == 0:
        return 0.0, x, y
    if np.isfinite(cost_limit):
        ext = np.full((n + m, n + m), cost_limit / 2.0)
        ext[n:, m:] = 0.0
        ext[:n, :m] = cost
    else:
        ext = cost
    rows, cols = linear_sum_assignment(ext)
    keep = (rows < n) & (cols < m)
    x[rows[keep]], y[cols[keep]] = cols[keep], rows[keep]
    return float(cost[rows[keep], cols[keep]].sum()), x, y


def _ensure_lap() -> None:
    """ultralytics' trackers import ``lap`` (and would try to pip-install it); offline, stand in with SciPy."""
    import sys
    import types

    try:
        import lap

        if getattr(lap, "__version__", None):
            return
    except ImportError:
        pass
    shim = types.ModuleType("lap")
    shim.__version__ = "0.5.12+facewear-scipy"  # ultralytics asserts a version
    shim.lapjv = _lapjv
    sys.modules["lap"] = shim


def new_tracker(cfg: str | Path | None = None) -> Any:
    """A fresh ByteTrack (track ids start at 1) with ultralytics' default settings."""
    _ensure_lap()
    from ultralytics.trackers.byte_tracker import BYTETracker

    return BYTETracker(tracker_args(cfg))


@dataclass
class TrackRecord:
    """What we keep about one track: its class votes and its best (highest score) crop."""

    track_id: int
    votes: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    best_score: float = -1.0
    best_frame: int = -1
    best_crop: np.ndarray | None = None
    best_record: dict | None = None  # the JSON record of the best frame's detection: gets the crop path
    frames: int = 0

    def add(self, frame_idx: int, det: np.ndarray, frame: np.ndarray, margin: float,
            record: dict | None = None) -> None:
        """Count one detection of this track; keep its crop when it is the best so far."""
        score, cls = float(det[4]), int(det[5])
        self.votes[cls] += score
        self.frames += 1
        if score > self.best_score:
            crop = crop_box(frame, det, margin)
            if crop is not None:
                self.best_score, self.best_frame, self.best_crop = score, frame_idx, crop
                self.best_record = record

    @property
    def cls(self) -> int:
        """Score-weighted majority over the track's frames (ties: the lower class id)."""
        return max(sorted(self.votes), key=lambda c: self.votes[c])


class TrackCrops:
    """Follows one video's tracks; writes each track's best crop when the track ends.

    ``owner`` (``facewear predict``'s predictor) gives ``margin``, ``count_track(record)`` and
    ``write_crop(crop, cls, base) -> Path | None``."""

    def __init__(self, owner: Any, name: str, cfg: str | Path | None = None) -> None:
        self.owner, self.name = owner, name
        self.tracker = new_tracker(cfg)
        self.active: dict[int, TrackRecord] = {}
        self.ended: list[TrackRecord] = []

    def update(self, frame_idx: int, frame: np.ndarray, dets: np.ndarray,
               records: list[dict] | None = None) -> list[int | None]:
        """Feed one frame's detections (and their JSON records, which get ``track_id``); returns the track id of
        each detection (``None``: not tracked)."""
        from ultralytics.engine.results import Boxes

        out = self.tracker.update(Boxes(dets.astype(np.float32), frame.shape[:2]), frame)
        ids: list[int | None] = [None] * len(dets)
        for row in out.reshape(-1, 8) if len(out) else ():
            tid, idx = int(row[4]), int(row[7])
            if not 0 <= idx < len(dets):
                continue
            ids[idx] = tid
            self.active.setdefault(tid, TrackRecord(tid)).add(frame_idx, dets[idx], frame, self.owner.margin,
                                                              records[idx] if records is not None else None)
        alive = {t.track_id for t in (*self.tracker.tracked_stracks, *self.tracker.lost_stracks)}
        for tid in [t for t in self.active if t not in alive]:
            self._finish(self.active.pop(tid))
        return ids

    def close(self) -> None:
        """End of the video (or Ctrl-C): every track still open ends here."""
        for tid in sorted(self.active):
            self._finish(self.active.pop(tid))

    def _finish(self, rec: TrackRecord) -> None:
        self.ended.append(rec)
        self.owner.count_track(rec)
        if rec.best_crop is not None:
            path = self.owner.write_crop(rec.best_crop, rec.cls, f"{crop_base(self.name)}_t{rec.track_id}")
            if path is not None and rec.best_record is not None:
                rec.best_record["crop"] = str(path)
