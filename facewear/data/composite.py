"""Synthetic composites: masks and sunglasses placed on faces of whole photos.

Placement follows the 68 landmarks:

* **masks** use MaskTheFace's six anchors (``a..f`` -> landmarks 0, nose
  bridge, 16, 3, chin, 13) and a homography, with the left, right or front
  template picked from head yaw;
* **sunglasses** and clear **eyeglasses** (hard negatives) are posed by a
  homography from the landmarks (:func:`apply_glasses`): yaw picks a front or
  three-quarter cut-out and shortens the far lens, pitch scales the height.

Realism (:func:`match_overlay`, :func:`contact_shadow`): edges feathered by
face size; brightness, colour temperature, sharpness and sensor noise matched
to the face; a soft contact shadow; the far temple arm cut at the face's edge;
scene reflections in tinted lenses; masks worn over the nose, below it or on
the chin, some dyed dark; and :func:`jpeg_roundtrip` of the whole image.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .landmarks import eye_centres
from ..overlays import MaskTemplate, OverlayLibrary, SunglassesTemplate


@dataclass
class Applied:
    kind: str  # "mask" | "sunglasses" | "eyeglasses"
    overlay: str
    pose: str
    placement: str = ""  # masks: nose | below_nose | chin


def head_pose(lm: np.ndarray) -> tuple[str, float]:
    """('front'|'left'|'right', r): r is the nose tip's position between the jaw sides (0.5 = frontal).

    'left' means the nose has moved toward the image's left (the image-left
    half of the face is foreshortened), matching MaskTheFace's ``*_left`` templates.
    """
    x0, x16, xn = lm[0, 0], lm[16, 0], lm[30, 0]
    r = float((xn - x0) / max(x16 - x0, 1e-3))
    return ("left" if r < 0.38 else "right" if r > 0.62 else "front"), r


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


def noise_sigma(gray: np.ndarray) -> float:
    """Standard deviation of the image noise, by Immerkaer's fast estimator.

    J. Immerkaer, "Fast Noise Variance Estimation", CVIU 64(2), 1996: the mean absolute response of a
    3x3 Laplacian-difference kernel, scaled by sqrt(pi/2)/6. ``gray``: HxW, any dtype; 0.0 below 3x3.
    """
    h, w = gray.shape[:2]
    if h < 3 or w < 3:
        return 0.0
    k = np.float32([[1, -2, 1], [-2, 4, -2], [1, -2, 1]])
    r = cv2.filter2D(gray.astype(np.float32), -1, k)[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2) * np.abs(r).mean() / 6.0)


def sharpness(gray: np.ndarray, sel: np.ndarray | None = None) -> float:
    """Contrast-normalised sharpness: mean |Laplacian| over the pixels ``sel`` divided by their std + 1."""
    g = gray.astype(np.float32)
    lap = np.abs(cv2.Laplacian(g, cv2.CV_32F, ksize=3))
    if sel is None:
        sel = np.ones(g.shape, bool)
    if not sel.any():
        return 0.0
    return float(lap[sel].mean() / (g[sel].std() + 1.0))


def _gray(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.clip(bgr, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY)


def match_overlay(over: np.ndarray, alpha: np.ndarray, face: np.ndarray, rng: np.random.Generator,
                  max_gain: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """Make a warped overlay look photographed with the face it lands on.

    ``over`` HxWx3 float BGR and ``alpha`` HxW in [0, 1] (the ROI), ``face`` the face pixels (BGR uint8).
    In order: brightness pulled toward the face (a partial gain), colour temperature (the face's
    channel ratios), sharpness (Gaussian blur until the overlay is no sharper than the face, by
    :func:`sharpness`) and sensor noise at the face's own level (:func:`noise_sigma`).
    Returns the new ``(over, alpha)``.
    """
    sel = alpha > 0.5
    if not sel.any() or face.size == 0:
        return over, alpha
    face_g = _gray(face)
    over_l = float(_gray(over)[sel].mean())
    gain = np.clip((float(face_g.mean()) / max(over_l, 1.0)) ** rng.uniform(0.25, 0.5), 0.55, max_gain)
    over = over * gain
    c = face.reshape(-1, 3).astype(np.float32).mean(0)
    ratio = np.clip(c / max(float(c.mean()), 1.0), 0.6, 1.6) ** rng.uniform(0.3, 0.7)
    over = over * ratio[None, None, :]
    target = sharpness(face_g) * rng.uniform(0.9, 1.2)
    for sigma in (0.0, 0.5, 0.8, 1.1, 1.5, 2.0, 2.7, 3.5):
        cand = cv2.GaussianBlur(over, (0, 0), sigma) if sigma else over
        if sharpness(_gray(cand), sel) <= target or sigma == 3.5:
            break
    if sigma:
        over, alpha = cand, cv2.GaussianBlur(alpha, (0, 0), 0.7 * sigma)
    n = noise_sigma(face_g)
    over = over + rng.normal(0, max(n, 0.8), over.shape[:2])[..., None] + rng.normal(0, 0.3 * max(n, 0.8), over.shape)
    return over, alpha


def contact_shadow(img: np.ndarray, alpha: np.ndarray, face_w: float, rng: np.random.Generator) -> None:
    """Darken the skin under an overlay in place: its alpha, shifted down and blurred (a soft contact shadow)."""
    dy = 0.02 * face_w * rng.uniform(0.5, 1.5)
    dx = 0.01 * face_w * rng.uniform(-1, 1)
    sh = cv2.warpAffine(alpha.astype(np.float32), np.float32([[1, 0, dx], [0, 1, dy]]), alpha.shape[::-1])
    sh = cv2.GaussianBlur(sh, (0, 0), max(0.6, 0.025 * face_w)) * rng.uniform(0.2, 0.45)
    img[:] = np.clip(img.astype(np.float32) * (1 - sh[..., None]), 0, 255).astype(np.uint8)


def jpeg_roundtrip(img: np.ndarray, rng: np.random.Generator, lo: int = 55, hi: int = 92) -> np.ndarray:
    """Re-compress the whole image as JPEG at a random quality in [lo, hi] (blocking over overlay and photo alike)."""
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(lo, hi + 1))])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else img


def _blend(img: np.ndarray, over: np.ndarray, alpha: np.ndarray, face_box: tuple[float, float, float, float],
           rng: np.random.Generator, face_w: float, max_gain: float = 1.25, shadow: bool = False) -> None:
    """Alpha-blend ``over`` (BGR float, image-sized ROI) into ``img`` in place, matched to the face (see
    :func:`match_overlay`), with feathered edges and, with ``shadow``, a contact shadow underneath."""
    x1, y1, x2, y2 = (int(round(v)) for v in face_box)
    region = img[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)]
    a = cv2.GaussianBlur(alpha.astype(np.float32), (0, 0), 0.004 * face_w + 0.35)  # feather by face size
    if not (a > 0.05).any():
        return
    over, a = match_overlay(over, a, region, rng, max_gain)
    if shadow:
        contact_shadow(img, a, face_w, rng)
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


MASK_PLACEMENTS = {"nose": 0.75, "below_nose": 0.15, "chin": 0.10}  # how people wear masks; all count as `mask`


def apply_mask(img: np.ndarray, lm: np.ndarray, box: tuple[float, float, float, float], lib: OverlayLibrary,
               rng: np.random.Generator, template: MaskTemplate | None = None, placement: str | None = None) -> Applied:
    """Draw a mask on the face in place; returns what was applied.

    ``placement``: ``nose`` (over the nose), ``below_nose`` (nose out) or ``chin`` (pulled down under the
    mouth); drawn from :data:`MASK_PLACEMENTS` when None. The held-out set labels all three `mask`.
    About one mask in five is dyed dark (black or navy cloth). Raises ValueError on degenerate landmarks.
    """
    pose, _ = head_pose(lm)
    pool = lib.masks_for_pose(pose)
    tpl = template or pool[rng.integers(len(pool))]
    if placement is None:
        placement = str(rng.choice(list(MASK_PLACEMENTS), p=list(MASK_PLACEMENTS.values())))
    face_w = box[2] - box[0]
    rgba, s = _shrink_template(tpl.rgba, face_w)
    if tpl.texturable and lib.textures and rng.random() < 0.4:
        rgba = _apply_texture(rgba, lib.textures[rng.integers(len(lib.textures))], rng)
    else:
        rgba = _jitter_colour(rgba, rng, hue=12 if tpl.kind in ("surgical", "cloth", "drawn") else 3, sat=0.25, val=0.15)
    if tpl.kind != "gas" and rng.random() < 0.2:  # dark cloth: keep the shading, drop the colour
        g = cv2.cvtColor(rgba[..., :3], cv2.COLOR_BGR2GRAY).astype(np.float32)[..., None]
        dye = np.float32(rng.choice([(25, 25, 28), (60, 30, 20), (40, 40, 40)]))
        rgba[..., :3] = np.clip(dye * (0.5 + g / 255.0), 0, 255).astype(np.uint8)
    src = np.float32([tpl.points[k] for k in "abcdef"]) * s
    bridge = (lm[28] + lm[29]) / 2
    dst = np.float32([lm[0], bridge, lm[16], lm[3], lm[8], lm[13]])
    if placement != "nose":
        # shift the mask down: the top edge to under the nose (lm 33) or under the lower lip (lm 57)
        drop = (lm[33] if placement == "below_nose" else lm[57]) - bridge
        dst[[0, 1, 2]] += drop * np.float32([[0.9], [1.0], [0.9]])
        dst[[3, 5]] += drop * 0.5
        dst[4] += drop * (0.25 if placement == "below_nose" else 0.45)
    # the mask sits slightly outside the jaw line
    centre = dst.mean(0)
    dst = centre + (dst - centre) * rng.uniform(1.0, 1.08)
    rx1, ry1, rx2, ry2 = _roi(box, img.shape, 0.35)
    H, _ = cv2.findHomography(src, dst - np.float32([rx1, ry1]), 0)
    if H is None:
        raise ValueError("degenerate landmarks for the mask homography")
    warped = _warp(rgba, H, (ry2 - ry1, rx2 - rx1), perspective=True).astype(np.float32)
    _blend(img[ry1:ry2, rx1:rx2], warped[..., :3], warped[..., 3] / 255.0,
           tuple(np.subtract(box, [rx1, ry1, rx1, ry1])), rng, face_w, shadow=rng.random() < 0.5)
    return Applied("mask", tpl.name, pose, placement)


#: Nose length (lm 27 -> 30) over the eye-centre distance on the mean face: the pitch reference.
_NOSE_PER_IOD = 0.49


def _far_side_occlusion(alpha: np.ndarray, lm: np.ndarray, yaw: float, face_w: float) -> np.ndarray:
    """Cut what lies beyond the face's far edge (temple arm behind the head). ``lm`` in ROI pixels."""
    if abs(yaw) < 0.15:
        return alpha
    up = lm[17:27] - np.float32([0, 0.25 * face_w])  # the forehead above the brows
    hull = cv2.convexHull(np.vstack([lm[:17], up]).astype(np.float32)).astype(np.int32)
    inside = np.zeros(alpha.shape, np.uint8)
    cv2.fillConvexPoly(inside, hull, 1)
    inside = cv2.dilate(inside, np.ones((3, 3), np.uint8), iterations=max(1, int(0.02 * face_w))).astype(bool)
    xs = np.arange(alpha.shape[1])[None, :]
    mid = float(lm[27, 0])
    far = (xs < mid) if yaw < 0 else (xs > mid)
    return np.where(far & ~inside, 0.0, alpha).astype(np.float32)


def _reflection(over: np.ndarray, alpha: np.ndarray, roi: np.ndarray, face_w: float, rng: np.random.Generator) -> np.ndarray:
    """Mirror the surrounding photo, blurred, into the dark lens pixels (a reflection of the scene)."""
    env = cv2.GaussianBlur(roi[::-1, ::-1].astype(np.float32), (0, 0), max(1.0, 0.04 * face_w))
    dark = np.clip(1.0 - _gray(over).astype(np.float32) / 160.0, 0, 1) * (alpha > 0.6)
    return over + env * (dark * rng.uniform(0.08, 0.3))[..., None]


def apply_glasses(img: np.ndarray, lm: np.ndarray, box: tuple[float, float, float, float], lib: OverlayLibrary,
                  rng: np.random.Generator, template: SunglassesTemplate | None = None, tinted: bool = True) -> Applied:
    """Draw sunglasses (``tinted``) or clear eyeglasses on the face in place, posed by the landmarks.

    The template is a three-quarter view for a turned head (mirrored for the other side) and a front
    view otherwise. A homography maps the two lens centres onto the eye centres (spread 2-15 % wider)
    and the lens height onto the eye line's normal, with the far lens shorter than the near one (yaw)
    and the vertical extent scaled by the nose's foreshortening (pitch): perspective, not only scale.
    Then: the far temple is cut at the face's edge, tinted lenses reflect the blurred scene, a
    contact shadow falls on the skin, and :func:`match_overlay` matches light, colour temperature,
    sharpness and noise. Raises ValueError on degenerate landmarks.
    """
    pose, r = head_pose(lm)
    pool = lib.glasses_for_pose(pose, tinted)
    if not pool:
        raise ValueError("no glasses templates for this pose")
    tpl = template or pool[rng.integers(len(pool))]
    rgba = tpl.rgba
    tl, tr = np.float32(tpl.left_eye), np.float32(tpl.right_eye)
    if tpl.view == "three-quarter" and pose == "right":  # the cut-outs turn toward the image left
        rgba = rgba[:, ::-1].copy()
        w0 = rgba.shape[1] - 1
        tl, tr = np.float32([w0 - tr[0], tr[1]]), np.float32([w0 - tl[0], tl[1]])
    le, re_ = eye_centres(lm)
    d_face = re_ - le
    iod = float(np.linalg.norm(d_face))
    if iod < 2:
        raise ValueError("eyes too close for glasses")
    face_w = box[2] - box[0]
    rgba, s = _shrink_template(rgba, face_w)
    tl, tr = tl * s, tr * s
    if tinted:
        rgba = _jitter_colour(rgba, rng, hue=4, sat=0.15, val=0.12)
        # sunglasses hide the eyes: lenses stay (nearly) opaque even where the template is see-through
        a = rgba[..., 3].astype(np.float32)
        rgba[..., 3] = np.where(a > 60, np.maximum(a, rng.uniform(225, 255)), a).astype(np.uint8)
    d_tpl = tr - tl
    span_t = float(np.linalg.norm(d_tpl))
    if span_t < 1:
        raise ValueError(f"{tpl.name}: lens centres coincide")
    ex = d_face / iod
    dn = np.float32([-ex[1], ex[0]])  # the eye line's normal, pointing down the face
    ut = np.float32([-d_tpl[1], d_tpl[0]]) / span_t
    yaw = float(np.clip((r - 0.5) * 2.0, -0.8, 0.8))  # < 0: turned toward the image left (its left side far)
    sx = iod * rng.uniform(1.02, 1.15) / span_t
    opaque_x = np.nonzero((rgba[..., 3] > 128).any(0))[0]
    if len(opaque_x) and (opaque_x[-1] - opaque_x[0]) * sx > 1.2 * face_w:
        raise ValueError(f"{tpl.name}: glasses would be wider than the face")
    # the lens height's scale: a front view's lens span is unforeshortened, so the turned face's IOD (shortened
    # by sqrt(1 - yaw^2)) undersizes it and the height takes the true scale; a three-quarter view, picked for a
    # turned head, is foreshortened like the face, so sx is already its true scale (dividing again made its
    # lenses up to 1/0.6 times too tall)
    sv = sx if tpl.view == "three-quarter" else sx / np.sqrt(max(1.0 - yaw ** 2, 0.36))
    pitch = float(np.clip(np.linalg.norm(lm[30] - lm[27]) / iod / _NOSE_PER_IOD, 0.7, 1.3))
    k_far, k_near = 1.0 - 0.18 * abs(yaw), 1.0 + 0.08 * abs(yaw)
    k_l, k_r = (k_far, k_near) if yaw < 0 else (k_near, k_far)
    ht = 0.35 * span_t
    mid = (le + re_) / 2 + dn * rng.uniform(-0.02, 0.06) * iod
    spread = sx * span_t / iod
    pl, pr = mid + (le - mid) * spread, mid + (re_ - mid) * spread
    rx1, ry1, rx2, ry2 = _roi(box, img.shape, 0.35)
    off = np.float32([rx1, ry1])
    src = np.float32([tl - ut * ht, tl + ut * ht, tr - ut * ht, tr + ut * ht])
    hv = ht * sv * pitch
    dst = np.float32([pl - dn * hv * k_l, pl + dn * hv * k_l, pr - dn * hv * k_r, pr + dn * hv * k_r]) - off
    H = cv2.getPerspectiveTransform(src, dst)
    warped = _warp(rgba, H, (ry2 - ry1, rx2 - rx1), perspective=True).astype(np.float32)
    alpha = _far_side_occlusion(warped[..., 3] / 255.0, lm - off, yaw, face_w)
    over = warped[..., :3]
    roi = img[ry1:ry2, rx1:rx2]
    if tinted:
        over = _reflection(over, alpha, roi, face_w, rng)
    _blend(roi, over, alpha, tuple(np.subtract(box, [rx1, ry1, rx1, ry1])), rng, face_w,
           max_gain=1.0 if tinted else 1.2, shadow=True)
    return Applied("sunglasses" if tinted else "eyeglasses", tpl.name, pose)


def apply_sunglasses(img: np.ndarray, lm: np.ndarray, box: tuple[float, float, float, float], lib: OverlayLibrary,
                     rng: np.random.Generator, template: SunglassesTemplate | None = None) -> Applied:
    """Sunglasses (tinted lenses) on the face, in place: :func:`apply_glasses` with ``tinted=True``."""
    return apply_glasses(img, lm, box, lib, rng, template, tinted=True)


def apply_eyeglasses(img: np.ndarray, lm: np.ndarray, box: tuple[float, float, float, float], lib: OverlayLibrary,
                     rng: np.random.Generator, template: SunglassesTemplate | None = None) -> Applied:
    """Clear eyeglasses on the face, in place (a hard negative: the label does not change)."""
    return apply_glasses(img, lm, box, lib, rng, template, tinted=False)
