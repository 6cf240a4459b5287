"""Synthetic composites: masks and sunglasses placed on faces of whole photos.

Placement follows the 68 landmarks:

* **masks** use MaskTheFace's six anchors (``a..f`` -> landmarks 0, nose
  bridge, 16, 3, chin, 13) and a homography, with the left, right or front
  template picked from head yaw;
* **sunglasses** map the two lens centres onto the eye centres, rotated with
  the eye line; the cross-axis scale grows with yaw so a turned head gets
  foreshortened glasses, not squashed ones.

Realism: the overlay's edges are feathered in proportion to the face size,
its brightness and tint are pulled toward the face's own lighting, cloth
masks may take a texture, colours are jittered, and a faint blur/noise
matches the photo's resolution.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .landmarks import eye_centres
from ..overlays import MaskTemplate, OverlayLibrary, SunglassesTemplate


@dataclass
class Applied:
    kind: str  # "mask" | "sunglasses"
    overlay: str
    pose: str


def head_pose(lm: np.ndarray) -> tuple[str, float]:
    """('front'|'left'|'right', r): r is the nose tip's position between the jaw sides (0.5 = frontal).

    'left' means the nose has moved toward the image's left (the image-left
    half of the face is foreshortened), matching MaskTheFace's ``*_left`` templates.
    """
    x0, x16, xn = lm[0, 0], lm[16, 0], lm[30, 0]
    r = float((xn - x0) / max(x16 - x0, 1e-3))
    return ("left" if r < 0.38 else "right" if r > 0.62 else "front"), r


def _lum(bgr: np.ndarray) -> float:
    return float(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).mean()) if bgr.size else 128.0


def _jitter_colour(rgba: np.ndarray, rng: np.random.Generator, hue: float = 0.0, sat: float = 0.0,
                   val: float = 0.0) -> np.ndarray:
    out = rgba.copy()
    if hue or sat or val:
        hsv = cv2.cvtColor(out[..., :3], cv2.COLOR_BGR2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-hue, hue)) % 180
        hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(1 - sat, 1 + sat), 0, 255)
        hsv[..., 2] = np.clip(hsv[..., 2] * rng.uniform(1 - val, 1 + val), 0, 255)
        out[..., :3] = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)
    return out


def _apply_texture(rgba: np.ndarray, texture: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Replace a mask's colour by a tiled texture, keeping the mask's own shading."""
    h, w = rgba.shape[:2]
    scale = rng.uniform(0.25, 0.6) * w / max(texture.shape[1], 1)
    tex = cv2.resize(texture, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    reps = (h // max(tex.shape[0], 1) + 1, w // max(tex.shape[1], 1) + 1, 1)
    tiled = np.tile(tex, reps)[:h, :w].astype(np.float32)
    shade = cv2.cvtColor(rgba[..., :3], cv2.COLOR_BGR2GRAY).astype(np.float32)
    shade = shade / max(float(np.percentile(shade[rgba[..., 3] > 128], 90)) if (rgba[..., 3] > 128).any() else 255.0, 1.0)
    out = rgba.copy()
    out[..., :3] = np.clip(tiled * np.clip(shade, 0.3, 1.1)[..., None], 0, 255).astype(np.uint8)
    return out


def _blend(img: np.ndarray, over: np.ndarray, alpha: np.ndarray, face_box: tuple[float, float, float, float],
           rng: np.random.Generator, face_w: float, max_gain: float = 1.25) -> None:
    """Alpha-blend ``over`` (BGR float, image-sized ROI) into ``img`` in place, matching the face's light."""
    x1, y1, x2, y2 = (int(round(v)) for v in face_box)
    region = img[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)]
    face_l = _lum(region)
    a = alpha.astype(np.float32)
    # feather edges in proportion to the face size
    sigma = 0.004 * face_w + 0.35
    a = cv2.GaussianBlur(a, (0, 0), sigma)
    sel = a > 0.05
    if not sel.any():
        return
    # lighting: pull the overlay's brightness toward the scene, then tint toward the face colour
    over_l = float(cv2.cvtColor(np.clip(over, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY)[sel].mean())
    gain = np.clip((face_l / max(over_l, 1.0)) ** rng.uniform(0.25, 0.5), 0.55, max_gain)
    over = over * gain
    if region.size:
        tint = region.reshape(-1, 3).mean(0)
        over = over * (1 - (t := rng.uniform(0.03, 0.12))) + tint * t * (over.mean() / max(tint.mean(), 1.0))
    # resolution match: soft blur for small faces, a little sensor noise
    if face_w < 60:
        over = cv2.GaussianBlur(over, (0, 0), rng.uniform(0.3, 0.7))
    over = over + rng.normal(0, rng.uniform(1.0, 3.5), over.shape)
    img[:] = np.clip(img.astype(np.float32) * (1 - a[..., None]) + over * a[..., None], 0, 255).astype(np.uint8)


def _warp(rgba: np.ndarray, M: np.ndarray, shape: tuple[int, int], perspective: bool) -> np.ndarray:
    h, w = shape
    # pre-blur large templates before shrinking a lot (anti-aliasing)
    warp = cv2.warpPerspective if perspective else cv2.warpAffine
    return warp(rgba, M, (w, h), flags=cv2.INTER_AREA if not perspective else cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))


def _shrink_template(rgba: np.ndarray, target_w: float) -> tuple[np.ndarray, float]:
    """Downscale a big template close to its final size first, so warping does not alias."""
    s = min(1.0, 2.0 * target_w / rgba.shape[1])
    if s < 1.0:
        rgba = cv2.resize(rgba, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    return rgba, s


def _roi(box: tuple[float, float, float, float], shape: tuple[int, ...], pad: float) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    return (int(max(x1 - pad * w, 0)), int(max(y1 - pad * h, 0)),
            int(min(x2 + pad * w, shape[1])), int(min(y2 + pad * h, shape[0])))


def apply_mask(img: np.ndarray, lm: np.ndarray, box: tuple[float, float, float, float], lib: OverlayLibrary,
               rng: np.random.Generator, template: MaskTemplate | None = None) -> Applied:
    """Draw a mask on the face in place; returns what was applied."""
    pose, _ = head_pose(lm)
    tpl = template or lib.masks_for_pose(pose)[rng.integers(len(lib.masks_for_pose(pose)))]
    face_w = box[2] - box[0]
    rgba, s = _shrink_template(tpl.rgba, face_w)
    if tpl.texturable and lib.textures and rng.random() < 0.4:
        rgba = _apply_texture(rgba, lib.textures[rng.integers(len(lib.textures))], rng)
    else:
        rgba = _jitter_colour(rgba, rng, hue=12 if tpl.kind in ("surgical", "cloth", "drawn") else 3, sat=0.25, val=0.15)
    src = np.float32([tpl.points[k] for k in "abcdef"]) * s
    bridge = (lm[28] + lm[29]) / 2
    dst = np.float32([lm[0], bridge, lm[16], lm[3], lm[8], lm[13]])
    # the mask sits slightly outside the jaw line
    centre = dst.mean(0)
    dst = centre + (dst - centre) * rng.uniform(1.0, 1.08)
    rx1, ry1, rx2, ry2 = _roi(box, img.shape, 0.35)
    H, _ = cv2.findHomography(src, dst - np.float32([rx1, ry1]), 0)
    if H is None:
        raise ValueError("degenerate landmarks for the mask homography")
    warped = _warp(rgba, H, (ry2 - ry1, rx2 - rx1), perspective=True).astype(np.float32)
    _blend(img[ry1:ry2, rx1:rx2], warped[..., :3], warped[..., 3] / 255.0,
           tuple(np.subtract(box, [rx1, ry1, rx1, ry1])), rng, face_w)
    return Applied("mask", tpl.name, pose)


def apply_sunglasses(img: np.ndarray, lm: np.ndarray, box: tuple[float, float, float, float], lib: OverlayLibrary,
                     rng: np.random.Generator, template: SunglassesTemplate | None = None) -> Applied:
    """Draw sunglasses aligned to the eyes, in place; returns what was applied."""
    pose, r = head_pose(lm)
    tpl = template or lib.sunglasses[rng.integers(len(lib.sunglasses))]
    le, re_ = eye_centres(lm)
    d_face = re_ - le
    iod = float(np.linalg.norm(d_face))
    face_w = box[2] - box[0]
    rgba, s = _shrink_template(tpl.rgba, face_w)
    rgba = _jitter_colour(rgba, rng, hue=4, sat=0.15, val=0.12)
    # sunglasses hide the eyes: lenses stay (nearly) opaque even where the template is see-through
    a = rgba[..., 3].astype(np.float32)
    rgba[..., 3] = np.where(a > 60, np.maximum(a, rng.uniform(235, 255)), a).astype(np.uint8)
    tl, tr = np.float32(tpl.left_eye) * s, np.float32(tpl.right_eye) * s
    d_tpl = tr - tl
    # frames are a little wider than the pupil distance on real faces
    sx = iod / float(np.linalg.norm(d_tpl)) * rng.uniform(1.12, 1.3)
    yaw = min(abs(r - 0.5) * 2.0, 0.8)  # 0 frontal .. ~0.8 strong profile
    sy = sx / np.sqrt(max(1.0 - yaw ** 2, 0.36))  # undo foreshortening across the eye line
    ang = np.arctan2(d_face[1], d_face[0]) - np.arctan2(d_tpl[1], d_tpl[0])
    ca, sa = np.cos(ang), np.sin(ang)
    A = np.float32([[ca * sx, -sa * sy], [sa * sx, ca * sy]])
    mid_t = (tl + tr) / 2
    mid_f = (le + re_) / 2 + np.float32([0, rng.uniform(-0.02, 0.06) * iod])  # glasses sit at or just below the pupils
    rx1, ry1, rx2, ry2 = _roi(box, img.shape, 0.35)
    t = mid_f - np.float32([rx1, ry1]) - A @ mid_t
    M = np.hstack([A, t[:, None]]).astype(np.float32)
    warped = _warp(rgba, M, (ry2 - ry1, rx2 - rx1), perspective=False).astype(np.float32)
    _blend(img[ry1:ry2, rx1:rx2], warped[..., :3], warped[..., 3] / 255.0,
           tuple(np.subtract(box, [rx1, ry1, rx1, ry1])), rng, face_w, max_gain=1.0)
    return Applied("sunglasses", tpl.name, pose)
