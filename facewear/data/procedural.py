"""Procedurally drawn overlays: masks, sunglasses and cloth textures.

:func:`procedural_overlays` returns an :class:`~facewear.overlays.OverlayLibrary`
in the same form as :func:`facewear.overlays.load_shared_overlays`, drawn with
OpenCV/numpy only, so the demo runs without the public MaskTheFace data.

Everything is rendered at ``_SS`` times the final size and downsampled
(premultiplied, ``INTER_AREA``), which gives anti-aliased edges.

Mask anchors follow MaskTheFace's ``masks.cfg`` (see :mod:`facewear.overlays`):
``a``/``c`` are the top corners of the mask at the cheeks (landmarks 0/16),
``b`` the top middle at the nose bridge, ``d``/``f`` the lower sides
(landmarks 3/13) and ``e`` the bottom middle at the chin (landmark 8).

Pose naming (the same as MaskTheFace's ``*_left.png``/``*_right.png``, where
``surgical_left`` has ``b`` close to the image's left edge):

* ``front``: symmetric.
* ``left``: the face is turned toward the image's left, so the image-left half
  of the mask (``a``, ``d`` side) is the far, foreshortened, narrower one and
  the image-right half (the subject's left cheek) is the one seen more.
* ``right``: the mirror case; the image-right half (``c``, ``f``) is narrower.

Side poses are made by wrapping the front drawing around a vertical elliptic
cylinder (deeper than wide, like a face) and turning it by ``_YAW`` degrees, with
perspective (the far side a little shorter) and normal-based shading, so the
pleats, seams and anchors all move consistently; the far half ends up about half
as wide as the near one.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from facewear.overlays import MaskTemplate, OverlayLibrary, SunglassesTemplate

_SS = 2  # supersampling factor
_PHI = math.radians(50.0)  # half-angle of the mask wrapped on an elliptic cylinder
_DEPTH = 1.3  # depth / half-width of that cylinder (faces are deeper than wide)
_YAW = math.radians(30.0)  # head turn of the side poses

__all__ = ["procedural_overlays"]


# --------------------------------------------------------------------------- geometry
def _p(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _quad(p0, c, p1, n: int = 64) -> np.ndarray:
    p0, c, p1 = _p(p0), _p(c), _p(p1)
    t = np.linspace(0.0, 1.0, n, endpoint=False)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * c + t ** 2 * p1


def _quad_through(p0, mid, p1, n: int = 64) -> np.ndarray:
    """Quadratic Bezier from p0 to p1 passing through ``mid`` at t=0.5."""
    return _quad(p0, 2 * _p(mid) - 0.5 * (_p(p0) + _p(p1)), p1, n)


def _cubic(p0, c1, c2, p1, n: int = 64) -> np.ndarray:
    p0, c1, c2, p1 = _p(p0), _p(c1), _p(c2), _p(p1)
    t = np.linspace(0.0, 1.0, n, endpoint=False)[:, None]
    return ((1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * c1
            + 3 * (1 - t) * t ** 2 * c2 + t ** 3 * p1)


def _catmull_rom(pts, n: int = 24) -> np.ndarray:
    """Closed Catmull-Rom spline through ``pts``."""
    P = _p(pts)
    P = np.vstack([P[-1], P, P[0], P[1]])
    t = np.linspace(0.0, 1.0, n, endpoint=False)[:, None]
    out = []
    for i in range(1, len(P) - 2):
        p0, p1, p2, p3 = P[i - 1], P[i], P[i + 1], P[i + 2]
        out.append(0.5 * (2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * t ** 3))
    return np.vstack(out)


def _ipts(poly) -> np.ndarray:
    """1x coordinates -> fixed-point (shift=4) supersampled int32 points."""
    return np.round(_p(poly) * _SS * 16).astype(np.int32).reshape(-1, 1, 2)


def _fill(poly, shape) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [_ipts(poly)], 255, cv2.LINE_AA, shift=4)
    return m.astype(np.float32) / 255.0


def _stroke(poly, shape, thickness: float, closed: bool = False) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.polylines(m, [_ipts(poly)], closed, 255, max(1, int(round(thickness * _SS))),
                  cv2.LINE_AA, shift=4)
    return m.astype(np.float32) / 255.0


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates, in 1x units, of a supersampled h x w canvas."""
    ys = (np.arange(h * _SS, dtype=np.float32) + 0.5) / _SS
    xs = (np.arange(w * _SS, dtype=np.float32) + 0.5) / _SS
    return np.meshgrid(xs, ys)


def _smooth_noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    n = rng.standard_normal(shape).astype(np.float32)
    if sigma > 0:
        n = cv2.GaussianBlur(n, (0, 0), sigma)
        n /= n.std() + 1e-6
    return n


def _inside_dist(alpha: np.ndarray) -> np.ndarray:
    """Distance (1x px) from each inside pixel to the outline."""
    m = (alpha > 0.5).astype(np.uint8)
    return cv2.distanceTransform(m, cv2.DIST_L2, 5) / _SS


def _col_extent(alpha: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """First/last inside index along ``axis`` (0: per column, 1: per row), in 1x units."""
    m = alpha > 0.5
    n = m.shape[axis]
    first = np.argmax(m, axis=axis).astype(np.float32)
    last = (n - 1 - np.argmax(np.flip(m, axis=axis), axis=axis)).astype(np.float32)
    empty = ~m.any(axis=axis)
    first[empty] = np.nan
    last[empty] = np.nan
    return (first + 0.5) / _SS, (last + 0.5) / _SS


def _gauss(d, s):
    return np.exp(-(d / s) ** 2)


def _offset_contour(alpha: np.ndarray, inset: float) -> list[np.ndarray]:
    """Contours (1x coords) of the region ``inset`` px inside the outline."""
    m = (_inside_dist(alpha) > inset).astype(np.uint8)
    cs, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return [(c.reshape(-1, 2).astype(np.float64) + 0.5) / _SS for c in cs if len(c) > 8]


def _dashes(shape, contour: np.ndarray, dash: float, gap: float, thickness: float,
            closed: bool = True) -> np.ndarray:
    """Stitch-like dashed line along a polyline (1x coords)."""
    pts = np.vstack([contour, contour[:1]]) if closed else contour
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    on = (s % (dash + gap)) < dash
    m = np.zeros(shape, np.uint8)
    runs, cur = [], []
    for p, o in zip(pts, on):
        if o:
            cur.append(p)
        elif cur:
            runs.append(cur)
            cur = []
    if cur:
        runs.append(cur)
    polys = [_ipts(r) for r in runs if len(r) >= 2]
    if polys:
        cv2.polylines(m, polys, False, 255, max(1, int(round(thickness * _SS))), cv2.LINE_AA, shift=4)
    return m.astype(np.float32) / 255.0


# --------------------------------------------------------------------------- output
def _finish(color: np.ndarray, alpha: np.ndarray, points: dict, crop: bool,
            margin: int = 3) -> tuple[np.ndarray, dict]:
    """Supersampled straight colour (float BGR 0..1) + alpha -> BGRA uint8 at 1x."""
    alpha = np.clip(np.nan_to_num(alpha), 0.0, 1.0).astype(np.float32)
    pm = np.clip(np.nan_to_num(color), 0.0, 1.0).astype(np.float32) * alpha[..., None]
    h, w = alpha.shape[0] // _SS, alpha.shape[1] // _SS
    pm = cv2.resize(pm, (w, h), interpolation=cv2.INTER_AREA)
    a = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_AREA)
    col = np.where(a[..., None] > 1e-4, pm / np.maximum(a[..., None], 1e-4), 0.0)
    rgba = np.dstack([np.clip(col, 0, 1) * 255.0, np.clip(a, 0, 1) * 255.0])
    rgba = np.round(rgba).astype(np.uint8)
    pts = dict(points)
    if crop:
        ys, xs = np.nonzero(rgba[..., 3] > 0)
        x0, y0 = max(int(xs.min()) - margin, 0), max(int(ys.min()) - margin, 0)
        x1, y1 = min(int(xs.max()) + margin + 1, w), min(int(ys.max()) + margin + 1, h)
        rgba = np.ascontiguousarray(rgba[y0:y1, x0:x1])
        pts = {k: (x - x0, y - y0) for k, (x, y) in pts.items()}
    pts = {k: (round(float(x), 1), round(float(y), 1)) for k, (x, y) in pts.items()}
    return rgba, pts


# --------------------------------------------------------------------------- mask poses
def _turn(u, th: float):
    """Mask column ``u`` in [-1, 1] on an elliptic cylinder turned by ``th``.

    Returns the projected x (cylinder units), depth toward the camera, and the
    z-component of the surface normal (for lighting).
    """
    psi = np.asarray(u, np.float64) * _PHI
    x, z = np.sin(psi), _DEPTH * np.cos(psi)
    nx, nz = _DEPTH * np.sin(psi), np.cos(psi)
    nn = np.hypot(nx, nz)
    xp = x * math.cos(th) + z * math.sin(th)
    zp = -x * math.sin(th) + z * math.cos(th)
    nzp = (-nx * math.sin(th) + nz * math.cos(th)) / nn
    return xp, zp, nzp


def _pose_render(color: np.ndarray, alpha: np.ndarray, points: dict, cx: float,
                 pose: str, spec: float = 0.0) -> tuple[np.ndarray, np.ndarray, dict]:
    """Wrap a front drawing on a cylinder, turn it for ``pose`` and light it."""
    Hs, Ws = alpha.shape
    cols = np.nonzero((alpha > 0.5).any(axis=0))[0]
    hw = max(cx - cols.min() / _SS, (cols.max() + 1) / _SS - cx) + 2.0
    cy = 0.5 * Hs / _SS
    th = {"front": 0.0, "left": -_YAW, "right": _YAW}[pose]

    def vscale(zp):  # perspective: the far side is a little smaller
        return 1.0 + 0.14 * (zp - _DEPTH) / _DEPTH

    if pose == "front":
        xo = (np.arange(Ws, dtype=np.float64) + 0.5) / _SS
        _, _, nzp = _turn(np.clip((xo - cx) / hw, -1, 1), 0.0)
        out_c, out_a = color.copy(), alpha.copy()
        new_pts = dict(points)
    else:
        k = hw / math.sin(_PHI)
        u_tab = np.linspace(-1.0, 1.0, 4001)
        xp_tab, _, _ = _turn(u_tab, th)
        margin = 6.0
        Wo = int(math.ceil(k * (xp_tab[-1] - xp_tab[0]) + 2 * margin))
        ox = margin - k * xp_tab[0]
        xo = (np.arange(Wo * _SS, dtype=np.float64) + 0.5) / _SS
        X = (xo - ox) / k
        valid = (X >= xp_tab[0]) & (X <= xp_tab[-1])
        u = np.interp(X, xp_tab, u_tab)
        _, zp, nzp = _turn(u, th)
        xsrc = cx + u * hw
        yo = (np.arange(Hs, dtype=np.float64) + 0.5) / _SS
        ysrc = cy + (yo[:, None] - cy) / vscale(zp)[None, :]
        map_x = np.broadcast_to(np.where(valid, xsrc * _SS - 0.5, -10.0)[None, :], ysrc.shape)
        map_x = np.ascontiguousarray(map_x, dtype=np.float32)
        map_y = (ysrc * _SS - 0.5).astype(np.float32)
        out_c = cv2.remap(color.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        out_a = cv2.remap(alpha.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        new_pts = {}
        for key, (px, py) in points.items():
            xp1, zp1, _ = _turn((px - cx) / hw, th)
            new_pts[key] = (ox + k * float(xp1), cy + (py - cy) * float(vscale(zp1)))
    nzp = np.clip(nzp, 0.0, 1.0)
    light = (0.72 + 0.30 * nzp).astype(np.float32)
    sheen = (spec * nzp ** 12).astype(np.float32)
    out_c = out_c * light[None, :, None] + sheen[None, :, None]
    return out_c, out_a, new_pts


# --------------------------------------------------------------------------- masks
def _jitter(rng: np.random.Generator, bgr, amount: float = 0.025) -> np.ndarray:
    return np.clip(_p(bgr) + rng.uniform(-amount, amount, 3), 0.0, 1.0).astype(np.float32)


def _surgical(rng: np.random.Generator, base) -> tuple:
    W, H = 640, 500
    a, b, c = (20, 95), (320, 20), (620, 95)
    d, e, f = (24, 325), (320, 472), (616, 325)
    outline = np.vstack([
        _quad_through(a, b, c),
        _quad(c, (627, 210), f),
        _cubic(f, (606, 415), (490, 472), e),
        _cubic(e, (150, 472), (34, 415), d),
        _quad(d, (13, 210), a),
    ])
    shape = (H * _SS, W * _SS)
    xx, yy = _grid(H, W)
    alpha = _fill(outline, shape)
    top, bot = _col_extent(alpha, 0)
    left, right = _col_extent(alpha, 1)
    top = np.nan_to_num(top, nan=0.0)[None, :]
    bot = np.nan_to_num(bot, nan=1.0)[None, :]
    left = np.nan_to_num(left, nan=0.0)[:, None]
    right = np.nan_to_num(right, nan=1.0)[:, None]
    span = np.maximum(bot - top, 1.0)

    # body: vertical gradient + pleats that bow down toward the chin
    shade = 1.05 - 0.14 * np.clip((yy - top) / span, 0, 1)
    bow = d[1] + 0.45 * (bot - d[1])
    flat_top = 0.5 * top + 0.5 * a[1]  # pleats bow less than the top edge
    for v in (0.28, 0.52, 0.76):
        yk = flat_top + v * (bow - flat_top)
        dy = yy - yk
        shade = shade + np.where(dy < 0, 0.05 * np.exp(dy / 7.0), -0.13 * np.exp(-dy / 13.0))
        shade = shade - 0.16 * _gauss(dy, 1.3)
    # nose wire ridge under the top edge
    dyw = yy - (top + 15.0)
    wire = np.clip(1.0 - np.abs(xx - b[0]) / 130.0, 0, 1) ** 0.5
    shade = shade + wire * (0.07 * _gauss(dyw, 2.0) - 0.06 * _gauss(dyw - 4.0, 2.5))

    # welded binding: wide on the sides, narrow on top/bottom
    band = np.maximum.reduce([
        np.clip((27.0 - (xx - left)) / 1.0, 0, 1), np.clip((27.0 - (right - xx)) / 1.0, 0, 1),
        np.clip((10.0 - (yy - top)) / 1.0, 0, 1), np.clip((10.0 - (bot - yy)) / 1.0, 0, 1)])
    weld = 0.5 + 0.5 * np.sin(xx * 2 * np.pi / 5.0) * np.sin(yy * 2 * np.pi / 5.0)
    band_shade = 1.0 - 0.045 * weld - 0.04 * np.clip((yy - top) / span, 0, 1)
    shade = band * band_shade + (1 - band) * shade
    seam = np.maximum.reduce([_gauss(xx - left - 27.0, 1.0), _gauss(right - xx - 27.0, 1.0),
                              _gauss(yy - top - 10.0, 0.9), _gauss(bot - yy - 10.0, 0.9)])
    shade = shade - 0.10 * seam
    shade = shade + 0.018 * _smooth_noise(rng, shape, 1.0)
    color = _jitter(rng, base)[None, None, :] * shade[..., None]
    pts = dict(a=a, b=b, c=c, d=d, e=e, f=f)
    return color, alpha, pts, float(b[0])


def _cloth(rng: np.random.Generator, base, pattern: str | None) -> tuple:
    W, H = 600, 490
    a, b, c = (60, 112), (300, 14), (540, 112)
    d, e, f = (86, 314), (300, 472), (514, 314)
    outline = np.vstack([
        _quad(a, (185, 42), b),
        _quad(b, (415, 42), c),
        _quad(c, (556, 212), f),
        _cubic(f, (498, 392), (400, 462), e),
        _cubic(e, (200, 462), (102, 392), d),
        _quad(d, (44, 212), a),
    ])
    shape = (H * _SS, W * _SS)
    xx, yy = _grid(H, W)
    alpha = _fill(outline, shape)
    top, bot = _col_extent(alpha, 0)
    top = np.nan_to_num(top, nan=0.0)[None, :]
    bot = np.nan_to_num(bot, nan=1.0)[None, :]
    cx = float(b[0])
    col = np.broadcast_to(_jitter(rng, base)[None, None, :], shape + (3,)).copy()
    if pattern == "dots":
        dot_c = _jitter(rng, (0.92, 0.92, 0.95), 0.03)
        period = 36.0
        row = np.floor(yy / period)
        gx = (xx + 0.5 * period * (row % 2)) % period - period / 2
        gy = yy % period - period / 2
        dm = np.clip((7.5 - np.hypot(gx, gy)) * _SS, 0, 1)[..., None]
        col = col * (1 - dm) + dot_c[None, None, :] * dm
    elif pattern == "plaid":
        c2 = _jitter(rng, (0.15, 0.18, 0.55), 0.04)
        c3 = _jitter(rng, (0.75, 0.80, 0.85), 0.04)
        sx = (np.abs((xx % 64) - 32) < 9).astype(np.float32)
        sy = (np.abs((yy % 64) - 32) < 9).astype(np.float32)
        thin = ((np.abs(xx % 64) < 1.5) | (np.abs(yy % 64) < 1.5)).astype(np.float32)
        m = (0.45 * sx + 0.45 * sy)[..., None]
        col = col * (1 - m) + c2[None, None, :] * m
        col = col * (1 - 0.8 * thin[..., None]) + c3[None, None, :] * 0.8 * thin[..., None]
    # two panels joined by a centre seam, each bulging a little
    halfw = 245.0
    r = np.clip(np.abs(xx - cx) / halfw, 0, 1)
    shade = 0.88 + 0.14 * np.clip(np.sin(np.pi * np.clip(r * 1.05, 0, 1)), 0, 1) ** 0.7
    shade = shade * (1.06 - 0.16 * np.clip((yy - top) / np.maximum(bot - top, 1), 0, 1))
    shade = shade - 0.22 * _gauss(xx - cx, 1.6) + 0.06 * _gauss(np.abs(xx - cx) - 4.5, 2.0)
    # rolled hem near the edge
    dist = _inside_dist(alpha)
    shade = shade - 0.10 * _gauss(dist - 0.0, 3.0) + 0.04 * _gauss(dist - 5.0, 2.0)
    twill = 0.015 * np.sin((xx + yy) * 2 * np.pi / 3.0)
    shade = shade + twill + 0.02 * _smooth_noise(rng, shape, 0.8)
    lift = 0.10 if float(np.mean(base)) < 0.3 else 0.0  # let black cloth show its shading
    color = col * shade[..., None] + lift * (shade[..., None] - 0.95)
    # stitches along the hem and the seam
    stitch_c = np.clip(_jitter(rng, base, 0.0) * 1.5 + 0.08, 0, 1)
    st = np.zeros(shape, np.float32)
    for cont in _offset_contour(alpha, 9.0):
        st = np.maximum(st, _dashes(shape, cont, 7.0, 4.0, 1.6))
    color = color * (1 - 0.8 * st[..., None]) + stitch_c[None, None, :] * 0.8 * st[..., None]
    pts = dict(a=a, b=b, c=c, d=d, e=e, f=f)
    return color, alpha, pts, cx


def _kn95(rng: np.random.Generator, base) -> tuple:
    W, H = 640, 500
    a, b, c = (22, 150), (320, 22), (618, 150)
    d, e, f = (40, 300), (320, 478), (600, 300)
    outline = np.vstack([
        _quad(a, (175, 62), b),
        _quad(b, (465, 62), c),
        _quad(c, (612, 225), f),
        _quad(f, (540, 452), e),
        _quad(e, (100, 452), d),
        _quad(d, (28, 225), a),
    ])
    shape = (H * _SS, W * _SS)
    xx, yy = _grid(H, W)
    alpha = _fill(outline, shape)
    top, bot = _col_extent(alpha, 0)
    top = np.nan_to_num(top, nan=0.0)[None, :]
    bot = np.nan_to_num(bot, nan=1.0)[None, :]
    cx = float(b[0])
    t = np.clip((yy - top) / np.maximum(bot - top, 1), 0, 1)
    # two flat folded halves meeting at the centre weld
    shade = np.where(xx < cx, 1.02, 0.95) - 0.12 * t
    shade = shade + 0.05 * np.clip(1 - np.abs(xx - cx) / 60.0, 0, 1)
    # a faint horizontal fold across the upper third
    yfold = top + 0.33 * (bot - top)
    shade = shade - 0.05 * _gauss(yy - yfold, 2.0) + 0.03 * _gauss(yy - yfold - 5, 3.0)
    dist = _inside_dist(alpha)
    dots = (np.sin(xx * 2 * np.pi / 4.0) * np.sin(yy * 2 * np.pi / 4.0) > 0.3).astype(np.float32)
    edge = np.clip(12.0 - dist, 0, 1)
    seam = np.clip(5.0 - np.abs(xx - cx), 0, 1) * (yy > top + 3)
    weld = np.maximum(edge, seam)
    shade = shade * (1 - weld) + weld * (0.96 - 0.08 * dots - 0.06 * t)
    shade = shade - 0.10 * _gauss(dist - 12.0, 1.0) - 0.10 * _gauss(np.abs(xx - cx) - 5.0, 1.0)
    shade = shade + 0.015 * _smooth_noise(rng, shape, 1.0)
    color = _jitter(rng, base, 0.015)[None, None, :] * shade[..., None]
    return color, alpha, dict(a=a, b=b, c=c, d=d, e=e, f=f), cx


def _n95(rng: np.random.Generator, base) -> tuple:
    W, H = 670, 540
    cx, cy, rx, ry, n = 335.0, 272.0, 316.0, 262.0, 2.4

    def pt(t_deg: float) -> tuple[float, float]:
        t = math.radians(t_deg)
        s, co = math.sin(t), math.cos(t)
        y = cy - ry * math.copysign(abs(s) ** (2 / n), s)
        widen = 1.0 - 0.07 * (y - cy) / ry  # a little wider at the top
        x = cx + rx * math.copysign(abs(co) ** (2 / n), co) * widen
        return (x, y)

    ts = np.linspace(0, 360, 720, endpoint=False)
    outline = np.array([pt(t) for t in ts])
    shape = (H * _SS, W * _SS)
    xx, yy = _grid(H, W)
    alpha = _fill(outline, shape)
    # dome lighting, light from the upper left
    nx = (xx - cx) / (rx * 1.05)
    ny = (yy - cy) / (ry * 1.05)
    r2 = np.clip(nx ** 2 + ny ** 2, 0, 1)
    nz = np.sqrt(1 - 0.8 * r2)
    L = np.array([-0.35, -0.45, 0.82])
    L = L / np.linalg.norm(L)
    ndl = (nx * 0.9 * L[0] + ny * 0.9 * L[1] + nz * L[2]) / np.sqrt(0.81 * r2 + nz ** 2)
    shade = 0.62 + 0.42 * np.clip(ndl, 0, 1)
    dist = _inside_dist(alpha)
    rim = np.clip(15.0 - dist, 0, 1)
    shade = shade * (1 - rim) + rim * (shade * 0.9 + 0.1)
    shade = shade - 0.10 * _gauss(dist - 15.0, 1.2) + 0.05 * _gauss(dist - 18.0, 2.0)
    shade = shade - 0.08 * _gauss(dist, 2.5)
    shade = shade + 0.02 * _smooth_noise(rng, shape, 1.2)
    color = _jitter(rng, base, 0.015)[None, None, :] * shade[..., None]
    # aluminium nose clip
    clip_poly = _quad_through((cx - 85, 46), (cx, 30), (cx + 85, 46))
    clip = _stroke(clip_poly, shape, 16.0)
    metal = (0.72 + 0.22 * _gauss(yy - 34.0, 4.0))[..., None] * np.array([0.80, 0.80, 0.82], np.float32)
    color = color * (1 - clip[..., None]) + metal * clip[..., None]
    # strap staples
    for sx, sy in ((50, 165), (W - 50, 165), (62, 395), (W - 62, 395)):
        st = np.zeros(shape, np.uint8)
        cv2.ellipse(st, (int(sx * _SS * 16), int(sy * _SS * 16)), (int(9 * _SS * 16), int(4 * _SS * 16)),
                    90, 0, 360, 255, -1, cv2.LINE_AA, shift=4)
        s = st.astype(np.float32)[..., None] / 255.0
        color = color * (1 - s) + np.array([0.55, 0.55, 0.58], np.float32) * s
    # faint print, as on the real ones
    ink = np.zeros(shape, np.uint8)
    cv2.putText(ink, "N95", (int(400 * _SS), int(330 * _SS)), cv2.FONT_HERSHEY_DUPLEX, 1.3 * _SS, 255,
                int(2 * _SS), cv2.LINE_AA)
    for i, wl in enumerate((150, 120, 135)):
        cv2.line(ink, (int(230 * _SS), int((370 + 14 * i) * _SS)), (int((230 + wl) * _SS), int((370 + 14 * i) * _SS)),
                 255, int(3 * _SS), cv2.LINE_AA)
    ink_a = ink.astype(np.float32)[..., None] / 255.0 * 0.55
    color = color * (1 - ink_a) + np.array([0.35, 0.33, 0.33], np.float32) * ink_a
    pts = dict(a=pt(148), b=pt(90), c=pt(32), d=pt(192), e=pt(270), f=pt(348))
    return color, alpha, pts, cx


# --------------------------------------------------------------------------- sunglasses
_GW, _GH = 900, 330
_LCX, _LCY = 0.24 * _GW, 0.46 * _GH


def _over(pc: np.ndarray, pa: np.ndarray, col, a: np.ndarray) -> None:
    """Paint ``col`` (HxWx3 or 3) with alpha ``a`` over premultiplied (pc, pa), in place."""
    a3 = a[..., None]
    pc *= 1 - a3
    pc += np.asarray(col, np.float32) * a3
    pa *= 1 - a
    pa += a


def _mirror(poly) -> np.ndarray:
    """Left-lens local points (x toward the nose) -> both lenses in image coords."""
    q = _p(poly)
    left = np.column_stack([_LCX + q[:, 0], _LCY + q[:, 1]])
    right = np.column_stack([_GW - _LCX - q[:, 0], _LCY + q[:, 1]])
    return left, right


def _glasses(rng: np.random.Generator, name: str, lens_local, *, lens_top, lens_bot,
             frame_col, rim: float, style: str, mirror: bool = False) -> SunglassesTemplate:
    shape = (_GH * _SS, _GW * _SS)
    xx, yy = _grid(_GH, _GW)
    pc = np.zeros(shape + (3,), np.float32)
    pa = np.zeros(shape, np.float32)
    outline = _catmull_rom(lens_local, 16)
    lens_l, lens_r = _mirror(outline)
    lens = np.maximum(_fill(lens_l, shape), _fill(lens_r, shape))
    ys_l = outline[:, 1]
    t = np.clip((yy - (_LCY + ys_l.min())) / (ys_l.max() - ys_l.min()), 0, 1)[..., None]
    top_c, bot_c = _jitter(rng, lens_top, 0.02), _jitter(rng, lens_bot, 0.02)
    lcol = top_c * (1 - t) + bot_c * t
    if mirror:  # iridescent mirror coating sweeping across the lens
        ang = (xx - _GW / 2) / (_GW / 2)
        tint = np.stack([0.10 * (1 - t[..., 0]), 0.05 * np.cos(3 * ang) * t[..., 0],
                         0.10 * t[..., 0] * (0.5 + 0.5 * ang)], -1)
        lcol = lcol + tint
    # faint highlight: a diagonal streak in the upper-outer part of each lens
    hl = np.zeros(shape, np.float32)
    for sgn, lx in ((1, _LCX), (-1, _GW - _LCX)):
        u = (xx - (lx - sgn * 70)) * 0.6 + (yy - (_LCY - 55)) * 0.8 * sgn
        v = -(xx - (lx - sgn * 70)) * 0.8 * sgn + (yy - (_LCY - 55)) * 0.6
        hl = np.maximum(hl, _gauss(u, 16.0) * _gauss(v, 60.0))
    hl_k = 0.30 if mirror else 0.12
    lcol = lcol + hl_k * hl[..., None]
    # darker bevel just inside the frame
    ld = _inside_dist(lens)
    lcol = lcol * (1 - 0.35 * _gauss(ld - rim * 0.5, 3.0))[..., None]
    _over(pc, pa, np.clip(lcol, 0, 1), lens * 0.93)

    fcol = np.asarray(frame_col, np.float32)
    # frame (alpha 1) and its pieces
    fmask = np.zeros(shape, np.float32)
    if style in ("metal", "round"):
        fmask = np.maximum(_stroke(lens_l, shape, rim, True), _stroke(lens_r, shape, rim, True))
    elif style == "acetate":
        fmask = np.maximum(_stroke(lens_l, shape, rim, True), _stroke(lens_r, shape, rim, True))
        brow = outline[outline[:, 1] < -40]
        brow = brow[np.argsort(brow[:, 0])]
        bl, br = _mirror(brow - _p([0, 6]))
        fmask = np.maximum.reduce([fmask, _stroke(bl, shape, rim * 1.5), _stroke(br, shape, rim * 1.5)])
    elif style == "sport":
        brow = outline[outline[:, 1] < -30]
        brow = brow[np.argsort(brow[:, 0])]
        bl, br = _mirror(brow)
        bar = np.vstack([bl, br[::-1]])
        fmask = _stroke(bar, shape, rim)
    # inner x (toward the nose) of the lens at the bridge height
    xin = float(outline[:, 0].max())
    xout = float(outline[:, 0].min())
    ytop = float(outline[:, 1].min())
    upper = outline[outline[:, 1] < 0]
    upper = upper[np.argsort(upper[:, 0])]

    def rim_y(x_local: float) -> float:  # the lens' top edge at a local x
        return _LCY + float(np.interp(x_local, upper[:, 0], upper[:, 1]))

    if style == "metal":  # aviator: brow bar + arched bridge + nose pads
        xb = xin - 60
        bar = np.array([(_LCX + xb, rim_y(xb)), (_GW / 2, _LCY + ytop + 4), (_GW - _LCX - xb, rim_y(xb))])
        fmask = np.maximum(fmask, _stroke(_quad_through(*bar), shape, rim * 0.9))
        br = _quad_through((_LCX + xin - 6, _LCY - 42), (_GW / 2, _LCY - 62), (_GW - _LCX - xin + 6, _LCY - 42))
        fmask = np.maximum(fmask, _stroke(br, shape, rim * 0.9))
        for sgn in (1, -1):
            px = _GW / 2 - sgn * 62
            arm = _quad((_GW / 2 - sgn * 38, _LCY - 50), (px + sgn * 10, _LCY - 20), (px, _LCY + 10))
            fmask = np.maximum(fmask, _stroke(arm, shape, 3.0))
            pad = np.zeros(shape, np.uint8)
            cv2.ellipse(pad, (int(px * _SS * 16), int((_LCY + 28) * _SS * 16)),
                        (int(11 * _SS * 16), int(22 * _SS * 16)), sgn * 15, 0, 360, 255, -1, cv2.LINE_AA, shift=4)
            _over(pc, pa, (0.80, 0.80, 0.78), pad.astype(np.float32) / 255.0 * 0.55)
    elif style == "round":
        br = _quad_through((_LCX + xin - 4, _LCY - 35), (_GW / 2, _LCY - 62), (_GW - _LCX - xin + 4, _LCY - 35))
        fmask = np.maximum(fmask, _stroke(br, shape, rim * 1.1))
    elif style == "acetate":  # keyhole bridge
        x0, x1 = _LCX + xin - 12, _GW - _LCX - xin + 12
        poly = np.vstack([
            _p([(x0, _LCY + ytop - 8), (x1, _LCY + ytop - 8)]),
            _quad((x1, _LCY - 30), (_GW / 2, _LCY - 80), (x0, _LCY - 30), 40),
        ])
        fmask = np.maximum(fmask, _fill(poly, shape))
    # temple stubs + hinges at the outer top corners
    yh = _LCY + ytop + {"sport": 12.0, "acetate": 22.0, "metal": 24.0}.get(style, 60.0)
    outer = outline[outline[:, 0] < 0]
    outer = outer[np.argsort(outer[:, 1])]
    xo_h = float(np.interp(yh - _LCY, outer[:, 1], outer[:, 0]))
    for sgn, x_edge in ((1, _LCX + xo_h), (-1, _GW - _LCX - xo_h)):
        xe = 2.0 if sgn == 1 else _GW - 2.0
        stub = np.array([(x_edge + sgn * 6, yh - 9), (xe, yh - 11), (xe, yh + 7), (x_edge + sgn * 6, yh + 9)])
        fmask = np.maximum(fmask, _fill(stub, shape))
        hinge = np.array([(x_edge - sgn * 4, yh - 14), (x_edge - sgn * 4 - sgn * 22, yh - 14),
                          (x_edge - sgn * 4 - sgn * 22, yh + 12), (x_edge - sgn * 4, yh + 12)])
        if style == "acetate":
            fmask = np.maximum(fmask, _fill(hinge, shape))
    # frame shading: top lit, glints for metal, gloss line for acetate
    fy = np.clip((yy - (_LCY + ytop)) / (_GH * 0.7), 0, 1)
    if style in ("metal", "round"):
        fsh = 0.75 + 0.45 * (1 - fy) + 0.35 * _gauss(np.sin(xx / 23.0) + np.cos(yy / 17.0) - 1.2, 0.25)
    else:
        fsh = 0.85 + 0.3 * (1 - fy) + 0.9 * _gauss(yy - (_LCY + ytop - 14), 2.0) * (fcol.mean() < 0.3)
    fc = np.clip(fcol[None, None, :] * fsh[..., None] + (0.05 * (1 - fy))[..., None], 0, 1)
    _over(pc, pa, fc, fmask)
    if style == "acetate":  # silver studs
        for sgn, lx in ((1, _LCX + xout + 28), (-1, _GW - _LCX - xout - 28)):
            st = np.zeros(shape, np.uint8)
            cv2.circle(st, (int(lx * _SS * 16), int((_LCY + ytop + 2) * _SS * 16)), int(4.5 * _SS * 16),
                       255, -1, cv2.LINE_AA, shift=4)
            _over(pc, pa, (0.85, 0.85, 0.88), st.astype(np.float32) / 255.0)
    color = pc / np.maximum(pa[..., None], 1e-6)
    # lens centres: centroids of the drawn lenses
    cents = []
    for poly in (lens_l, lens_r):
        m = cv2.moments(poly.astype(np.float32))
        cents.append((m["m10"] / m["m00"], m["m01"] / m["m00"]))
    rgba, pts = _finish(color, pa, {"l": cents[0], "r": cents[1]}, crop=False)
    return SunglassesTemplate(name, rgba, pts["l"], pts["r"])


def _lens_shapes() -> dict[str, list[tuple[float, float]]]:
    # local coords of the image-left lens, +x toward the nose, +y down
    return {
        "aviator": [(-182, -78), (-150, -120), (-50, -134), (70, -130), (155, -112), (182, -70),
                    (180, -8), (162, 62), (120, 120), (50, 147), (-40, 138), (-120, 100), (-170, 32)],
        "wayfarer": [(-176, -96), (-60, -100), (80, -100), (168, -96), (172, -60), (155, 30),
                     (128, 90), (60, 104), (-60, 102), (-130, 80), (-160, 20), (-180, -60)],
        "round": [(150 * math.cos(t), 138 * math.sin(t)) for t in np.linspace(0, 2 * np.pi, 24, endpoint=False)],
        "sport": [(-200, -78), (-80, -100), (60, -102), (160, -92), (192, -60), (190, -5),
                  (165, 50), (110, 92), (10, 112), (-100, 100), (-175, 55), (-205, -15)],
    }


# --------------------------------------------------------------------------- textures
def _textures(rng: np.random.Generator, size: int = 128) -> list[np.ndarray]:
    s2 = size * _SS
    ys, xs = np.mgrid[0:s2, 0:s2].astype(np.float32) / _SS

    def c(*bgr):
        return _jitter(rng, bgr, 0.06)

    def out(img):
        return np.round(np.clip(cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA), 0, 1)
                        * 255).astype(np.uint8)

    # gingham checks
    bg, fg = c(0.96, 0.96, 0.96), c(0.25, 0.25, 0.80)
    sx = ((xs % 32) < 16).astype(np.float32)
    sy = ((ys % 32) < 16).astype(np.float32)
    k = (0.5 * sx + 0.5 * sy)[..., None]
    checks = bg * (1 - k) + fg * k
    # diagonal stripes
    s1, s2c, s3 = c(0.20, 0.35, 0.15), c(0.85, 0.88, 0.90), c(0.15, 0.55, 0.85)
    p = (xs + ys) % 32
    stripes = np.where((p < 12)[..., None], s1, np.where((p < 16)[..., None] | (p >= 28)[..., None], s3, s2c))
    stripes = cv2.GaussianBlur(stripes.astype(np.float32), (0, 0), 0.6)
    # polka dots (staggered)
    bgd, dot = c(0.35, 0.15, 0.60), c(0.95, 0.95, 0.95)
    gx = (xs % 32) - 16
    gy = (ys % 32) - 16
    gx2, gy2 = ((xs + 16) % 32) - 16, ((ys + 16) % 32) - 16
    r = np.minimum(np.hypot(gx, gy), np.hypot(gx2, gy2))
    km = np.clip((5.5 - r) * _SS, 0, 1)[..., None]
    dots = bgd * (1 - km) + dot * km
    # tartan
    base, c1, c2 = c(0.10, 0.12, 0.45), c(0.30, 0.15, 0.05), c(0.30, 0.75, 0.85)
    bx = (np.abs((xs % 64) - 32) < 10).astype(np.float32)
    by = (np.abs((ys % 64) - 32) < 10).astype(np.float32)
    tx = (np.abs((xs % 64) - 8) < 1.5).astype(np.float32)
    ty = (np.abs((ys % 64) - 8) < 1.5).astype(np.float32)
    tart = base[None, None, :] * np.ones_like(xs)[..., None]
    m = (0.5 * bx + 0.5 * by)[..., None]
    tart = tart * (1 - m) + c1 * m
    m = np.maximum(tx, ty)[..., None] * 0.8
    tart = tart * (1 - m) + c2 * m
    return [out(checks.astype(np.float32)), out(stripes.astype(np.float32)), out(dots.astype(np.float32)),
            out(tart.astype(np.float32))]


# --------------------------------------------------------------------------- library
_SURGICAL = {  # BGR
    "surgical_blue": (0.88, 0.76, 0.55),
    "surgical": (0.93, 0.93, 0.91),
    "surgical_green": (0.72, 0.80, 0.58),
}
_CLOTH = {
    "cloth": ((0.13, 0.13, 0.14), None),
    "cloth_dots": ((0.42, 0.20, 0.10), "dots"),
    "cloth_plaid": ((0.12, 0.12, 0.50), "plaid"),
}


def procedural_overlays(seed: int = 0) -> OverlayLibrary:
    """Draw a small overlay library: masks (front/left/right), sunglasses, textures.

    Deterministic for a given ``seed`` (the seed jitters colours and fabric noise).
    Pose names follow MaskTheFace: ``left`` means the image-left half of the mask is
    the far, narrower one (see the module docstring).
    """
    rng = np.random.default_rng(seed)
    lib = OverlayLibrary(origin=f"procedural(seed={seed})")

    def add(name, kind, texturable, drawn, poses, spec=0.0):
        color, alpha, pts, cx = drawn
        for pose in poses:
            c, a, p = _pose_render(color, alpha, pts, cx, pose, spec)
            rgba, p = _finish(c, a, p, crop=True)
            full = name if pose == "front" else f"{name}_{pose}"
            lib.masks.append(MaskTemplate(full, rgba, p, pose, kind, texturable))

    poses = ("front", "left", "right")
    for name, base in _SURGICAL.items():
        add(name, "surgical", True, _surgical(rng, base), poses)
    for name, (base, pattern) in _CLOTH.items():
        add(name, "cloth", True, _cloth(rng, base, pattern), poses, spec=0.03)
    add("KN95", "KN95", False, _kn95(rng, (0.95, 0.95, 0.94)), poses)
    add("N95", "N95", False, _n95(rng, (0.94, 0.95, 0.95)), ("front",))

    shapes = _lens_shapes()
    lib.sunglasses.append(_glasses(rng, "aviator_gold", shapes["aviator"], lens_top=(0.10, 0.13, 0.10),
                                   lens_bot=(0.26, 0.30, 0.24), frame_col=(0.30, 0.62, 0.78), rim=6.0,
                                   style="metal"))
    lib.sunglasses.append(_glasses(rng, "aviator_silver", shapes["aviator"], lens_top=(0.08, 0.08, 0.09),
                                   lens_bot=(0.22, 0.22, 0.24), frame_col=(0.62, 0.62, 0.64), rim=6.0,
                                   style="metal"))
    lib.sunglasses.append(_glasses(rng, "wayfarer", shapes["wayfarer"], lens_top=(0.05, 0.06, 0.05),
                                   lens_bot=(0.16, 0.18, 0.16), frame_col=(0.07, 0.07, 0.08), rim=22.0,
                                   style="acetate"))
    lib.sunglasses.append(_glasses(rng, "round_brown", shapes["round"], lens_top=(0.06, 0.12, 0.20),
                                   lens_bot=(0.20, 0.30, 0.40), frame_col=(0.12, 0.12, 0.12), rim=9.0,
                                   style="round"))
    lib.sunglasses.append(_glasses(rng, "sport_mirror", shapes["sport"], lens_top=(0.30, 0.10, 0.12),
                                   lens_bot=(0.40, 0.22, 0.05), frame_col=(0.10, 0.10, 0.11), rim=18.0,
                                   style="sport", mirror=True))
    lib.textures = _textures(rng)
    return lib


def random_sunglasses(rng: np.random.Generator, n: int) -> list[SunglassesTemplate]:
    """``n`` procedural sunglasses with variety no cut-out library has.

    Each draws a shape family (aviator, wayfarer, round, sport) with its width and height scaled
    0.8-1.0, a frame style, thickness and colour (black, tortoise, metal, bright plastic) and lenses
    that are dark, brown, green, blue or grey, evenly tinted or with a top-to-bottom gradient,
    sometimes mirrored; specular streaks come with every lens (see ``_glasses``).
    """
    shapes = _lens_shapes()
    frames = [(0.07, 0.07, 0.08), (0.10, 0.16, 0.25), (0.62, 0.62, 0.64), (0.30, 0.62, 0.78), (0.15, 0.12, 0.45),
              (0.45, 0.25, 0.10), (0.85, 0.85, 0.86), (0.20, 0.20, 0.22)]
    lenses = [(0.06, 0.06, 0.07), (0.05, 0.12, 0.20), (0.08, 0.14, 0.08), (0.20, 0.10, 0.05), (0.12, 0.12, 0.14)]
    out = []
    for i in range(n):
        fam = str(rng.choice(list(shapes)))
        sx, sy = rng.uniform(0.8, 1.0), rng.uniform(0.8, 1.0)
        poly = [(x * sx, y * sy) for x, y in shapes[fam]]
        style = {"aviator": "metal", "wayfarer": "acetate", "sport": "sport"}.get(fam) or str(rng.choice(["round", "metal"]))
        top = np.asarray(lenses[rng.integers(len(lenses))]) * rng.uniform(0.6, 1.4)
        bot = top * (rng.uniform(1.8, 3.5) if rng.random() < 0.5 else rng.uniform(1.0, 1.3))
        rim = float(rng.uniform(4, 9) if style in ("metal", "round") else rng.uniform(10, 24))
        out.append(_glasses(rng, f"proc{i:03d}_{fam}_{style}", poly, lens_top=tuple(np.clip(top, 0, 1)),
                            lens_bot=tuple(np.clip(bot, 0, 1)), frame_col=frames[rng.integers(len(frames))],
                            rim=rim, style=style, mirror=bool(rng.random() < 0.2)))
    return out
