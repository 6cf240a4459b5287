"""Procedurally drawn overlays: shapes, anchors, lens centres, determinism."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from facewear.data.procedural import procedural_overlays
from facewear.overlays import MASK_POINTS, OverlayLibrary


@pytest.fixture(scope="module")
def lib() -> OverlayLibrary:
    return procedural_overlays(seed=0)


def _check_rgba(rgba: np.ndarray) -> None:
    assert rgba.dtype == np.uint8
    assert rgba.ndim == 3 and rgba.shape[2] == 4
    assert (rgba[..., 3] > 0).mean() > 0.2  # a real, non-empty alpha
    assert rgba[..., 3].max() == 255
    assert (rgba[..., 3] == 0).any()  # and a transparent surround


def test_library_contents(lib):
    assert isinstance(lib, OverlayLibrary)
    poses = {m.pose for m in lib.masks}
    assert poses == {"front", "left", "right"}
    assert len(lib.masks) >= 6
    assert {"surgical", "cloth", "N95"} <= {m.kind for m in lib.masks}
    assert any(m.texturable for m in lib.masks if m.kind == "cloth")
    assert len(lib.sunglasses) >= 4
    assert len(lib.textures) >= 3
    for pose in ("front", "left", "right"):
        assert all(m.pose == pose for m in lib.masks_for_pose(pose))
    assert len({m.name for m in lib.masks}) == len(lib.masks)


def test_textures(lib):
    for t in lib.textures:
        assert t.dtype == np.uint8 and t.ndim == 3 and t.shape[2] == 3
        assert 64 <= t.shape[0] <= 256 and 64 <= t.shape[1] <= 256
        assert t.reshape(-1, 3).std(axis=0).max() > 10  # a pattern, not a flat colour


def test_masks_rgba_and_anchors(lib):
    for m in lib.masks:
        _check_rgba(m.rgba)
        h, w = m.rgba.shape[:2]
        assert 300 <= w <= 800 and 250 <= h <= 700, (m.name, w, h)
        assert set(m.points) == set(MASK_POINTS), m.name
        alpha = m.rgba[..., 3]
        r = int(round(0.08 * max(h, w)))
        for k, (x, y) in m.points.items():
            assert -0.02 * w <= x <= 1.02 * w and -0.02 * h <= y <= 1.02 * h, (m.name, k, x, y)
            xi, yi = int(round(x)), int(round(y))
            win = alpha[max(yi - r, 0):yi + r + 1, max(xi - r, 0):xi + r + 1]
            assert win.size and win.max() > 0, (m.name, k)


def test_mask_anchor_layout(lib):
    """a/c top corners, b top middle, d/f lower sides, e bottom middle."""
    for m in lib.masks:
        p = m.points
        assert p["a"][0] < p["b"][0] < p["c"][0], m.name
        assert p["d"][0] < p["e"][0] < p["f"][0], m.name
        assert p["b"][1] < min(p["a"][1], p["c"][1]), m.name
        assert max(p["a"][1], p["c"][1]) < min(p["d"][1], p["f"][1]) < p["e"][1], m.name


def test_side_poses_are_foreshortened(lib):
    """'left': the image-left half (a..b) is the narrower one; 'right' mirrors it."""
    by_pose = {"left": [], "right": [], "front": []}
    for m in lib.masks:
        p = m.points
        left_w = p["b"][0] - p["a"][0]
        right_w = p["c"][0] - p["b"][0]
        by_pose[m.pose].append(left_w / right_w)
    assert all(r < 0.75 for r in by_pose["left"])
    assert all(r > 1 / 0.75 for r in by_pose["right"])
    assert all(0.85 < r < 1.15 for r in by_pose["front"])


def test_sunglasses(lib):
    for s in lib.sunglasses:
        _check_rgba(s.rgba)
        h, w = s.rgba.shape[:2]
        assert w > 2 * h
        gray = cv2.cvtColor(np.ascontiguousarray(s.rgba[..., :3]), cv2.COLOR_BGR2GRAY)
        (lx, ly), (rx, ry) = s.left_eye, s.right_eye
        assert lx < w / 2 < rx, s.name
        assert abs(ly - ry) < 2, s.name
        for x, y in (s.left_eye, s.right_eye):
            xi, yi = int(round(x)), int(round(y))
            assert 0 <= xi < w and 0 <= yi < h
            a = s.rgba[yi - 2:yi + 3, xi - 2:xi + 3, 3]
            assert a.min() >= 200, (s.name, a.min())  # opaque lens
            assert gray[yi - 2:yi + 3, xi - 2:xi + 3].mean() < 110, s.name  # dark lens
        # lenses a little see-through, the frame fully opaque
        assert 0.88 * 255 <= s.rgba[int(ly), int(lx), 3] < 255
        assert (s.rgba[..., 3] == 255).sum() > 0.01 * h * w


def test_deterministic(lib):
    a, b = lib, procedural_overlays(seed=0)
    assert len(a.masks) == len(b.masks) and len(a.sunglasses) == len(b.sunglasses)
    for x, y in zip(a.masks, b.masks):
        assert x.name == y.name and x.points == y.points
        np.testing.assert_array_equal(x.rgba, y.rgba)
    for x, y in zip(a.sunglasses, b.sunglasses):
        assert x.left_eye == y.left_eye and x.right_eye == y.right_eye
        np.testing.assert_array_equal(x.rgba, y.rgba)
    for x, y in zip(a.textures, b.textures):
        np.testing.assert_array_equal(x, y)
    c = procedural_overlays(seed=1)
    assert any(not np.array_equal(x.rgba, y.rgba) for x, y in zip(a.masks, c.masks))
