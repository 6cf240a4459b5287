"""Blank-frame regression check: a detector must find nothing on frames without faces.

Camera start-up frames, fades and white walls are uniform or nearly so; a model that boxes them fills
the class folders with empty crops. The cure is in training (background images, see
``background_fraction`` in the build recipe); this module only measures it, for ``facewear bench`` and
the release reports.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .detector import Detector

#: Grey levels of the uniform frames (the field reports: 60, 114, 128, 200 and 255 gave whole-frame boxes).
GREYS: tuple[int, ...] = (0, 60, 114, 128, 200, 255)


def blank_frames() -> list[tuple[str, np.ndarray]]:
    """``(name, BGR frame)`` pairs: uniform greys at 640x480 and 1x1, a colour, a gradient and faint noise."""
    frames = [(f"grey{g}_640x480", np.full((480, 640, 3), g, np.uint8)) for g in GREYS]
    frames.append(("grey128_1x1", np.full((1, 1, 3), 128, np.uint8)))
    frames.append(("blue_640x480", np.full((480, 640, 3), (180, 90, 30), np.uint8)))
    ramp = np.linspace(40, 220, 640, dtype=np.float32)[None, :, None].repeat(480, 0).repeat(3, 2)
    frames.append(("gradient_640x480", ramp.astype(np.uint8)))
    noise = np.clip(128 + np.random.default_rng(0).normal(0, 4, (480, 640, 3)), 0, 255).astype(np.uint8)
    frames.append(("noise4_640x480", noise))
    return frames


def blank_frame_check(det: Detector, conf: float = 0.25) -> dict[str, Any]:
    """Detections at ``conf`` on :func:`blank_frames`.

    Returns ``{"frames": n, "frames_with_detections": k, "detections": d, "max_score": s,
    "per_frame": {name: [[class, score], ...]}}``; a well-trained model has ``k == 0``.
    """
    per: dict[str, list] = {}
    top = 0.0
    for name, frame in blank_frames():
        d = np.asarray(det(frame)).reshape(-1, 6)
        d = d[d[:, 4] >= conf]
        per[name] = [[det.names[int(c)], round(float(s), 3)] for s, c in d[:, 4:6]]
        top = max(top, float(d[:, 4].max()) if len(d) else 0.0)
    return {"frames": len(per), "frames_with_detections": sum(1 for v in per.values() if v),
            "detections": sum(len(v) for v in per.values()), "max_score": round(top, 3), "conf": conf,
            "per_frame": per}
