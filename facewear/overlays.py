"""Overlay templates for synthetic composites: masks, sunglasses, cloth textures.

Two libraries share one form: :func:`load_shared_overlays` reads the public
MaskTheFace masks and sunglasses under ``<data>/overlays``;
:func:`facewear.data.procedural.procedural_overlays` draws its own so the demo
runs with no ``../shared``.

Mask anchor points follow MaskTheFace's ``masks.cfg``: six points ``a..f``
on the template, tied to 68-point landmarks as
``a->0, b->nose bridge middle (27..28), c->16, d->3, e->chin (8), f->13``.
"""
from __future__ import annotations

import configparser
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

MASK_POINTS = ("a", "b", "c", "d", "e", "f")


@dataclass
class MaskTemplate:
    name: str
    rgba: np.ndarray  # HxWx4 uint8, BGRA
    points: dict[str, tuple[float, float]]  # anchor points a..f in template pixels
    pose: str = "front"  # front | left | right (the side of the face that is visible more)
    kind: str = "surgical"  # surgical | cloth | N95 | KN95 | gas | drawn
    texturable: bool = False  # cloth-like: may get a texture pattern


@dataclass
class SunglassesTemplate:
    name: str
    rgba: np.ndarray  # BGRA
    left_eye: tuple[float, float]  # lens centre on the image's left
    right_eye: tuple[float, float]
    view: str = "front"  # front | three-quarter (turned so that the temple shows on the image right)
    tinted: bool = True  # dark or tinted lenses (sunglasses); False: clear lenses (eyeglasses)


@dataclass
class OverlayLibrary:
    masks: list[MaskTemplate] = field(default_factory=list)
    sunglasses: list[SunglassesTemplate] = field(default_factory=list)
    eyeglasses: list[SunglassesTemplate] = field(default_factory=list)  # clear lenses: hard negatives
    textures: list[np.ndarray] = field(default_factory=list)  # BGR
    origin: str = ""

    def masks_for_pose(self, pose: str) -> list[MaskTemplate]:
        m = [t for t in self.masks if t.pose == pose]
        return m or [t for t in self.masks if t.pose == "front"] or self.masks

    def glasses_for_pose(self, pose: str, tinted: bool = True) -> list[SunglassesTemplate]:
        """Templates for a head pose: three-quarter views for turned heads when there are any, else front ones."""
        pool = self.sunglasses if tinted else self.eyeglasses
        want = "front" if pose == "front" else "three-quarter"
        return [t for t in pool if t.view == want] or [t for t in pool if t.view == "front"] or pool


def _read_rgba(path: Path) -> np.ndarray:
    im = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if im is None:
        raise ValueError(f"{path}: cannot read overlay image")
    if im.ndim == 2:
        im = cv2.cvtColor(im, cv2.COLOR_GRAY2BGRA)
    elif im.shape[2] == 3:
        im = cv2.cvtColor(im, cv2.COLOR_BGR2BGRA)
    return im


def lens_centres(rgba: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    """Estimate the two lens centres of a front-view sunglasses image from its alpha.

    The glasses are split at the bridge (the narrowest opaque column near the
    middle); each half's opaque, dark pixels give a lens centre.
    """
    alpha = rgba[..., 3].astype(np.float32) / 255.0
    h, w = alpha.shape
    gray = cv2.cvtColor(rgba[..., :3], cv2.COLOR_BGR2GRAY).astype(np.float32)
    mid = w // 2
    centres = []
    for lo, hi in ((0, mid), (mid, w)):
        a = alpha[:, lo:hi]
        # lens pixels: opaque; weight darker pixels more (frames are thin)
        wgt = a * (1.0 + (255.0 - gray[:, lo:hi]) / 255.0)
        # ignore the temples (arms): keep the central 80 % of the half's rows/cols mass
        ys, xs = np.mgrid[0:h, lo:hi]
        s = wgt.sum() + 1e-6
        centres.append((float((wgt * xs).sum() / s), float((wgt * ys).sum() / s)))
    return centres[0], centres[1]


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` (bool) plus every background region not connected to the image border."""
    m = mask.astype(np.uint8)
    pad = cv2.copyMakeBorder(1 - m, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=1)
    ff = np.zeros((pad.shape[0] + 2, pad.shape[1] + 2), np.uint8)
    cv2.floodFill(pad, ff, (0, 0), 2)
    return mask | (pad[1:-1, 1:-1] == 1)


def lens_masks(rgba: np.ndarray) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The lens area of a glasses cut-out and the two lens centres (image-left first).

    The frame's outline is filled (clear lenses are holes in the alpha), then eroded so the bridge
    and the temples break off; the two largest parts are the lenses. Falls back to
    :func:`lens_centres` when fewer than two parts remain. Returns ``(lens HxW bool, centres)``.
    """
    opaque = rgba[..., 3] > 100
    filled = _fill_holes(opaque)
    h, w = opaque.shape
    k = max(3, int(round(w / 28)))
    er = cv2.erode(filled.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    n, lab, stats, cents = cv2.connectedComponentsWithStats(er)
    order = [i for i in np.argsort(-stats[:, cv2.CC_STAT_AREA]) if i != 0][:2]
    if len(order) < 2 or stats[order[1], cv2.CC_STAT_AREA] < 0.15 * stats[order[0], cv2.CC_STAT_AREA]:
        le, re_ = lens_centres(rgba)
        return filled, [le, re_]
    lens = cv2.dilate(np.isin(lab, order).astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    lens = lens.astype(bool) & filled
    c = sorted((tuple(map(float, cents[i])) for i in order), key=lambda p: p[0])
    return lens, c


def tint_lenses(rgba: np.ndarray, rng: np.random.Generator, style: str | None = None) -> np.ndarray:
    """Give a clear-lens frame tinted lenses: ``dark``, ``brown``, ``green``, ``gradient`` or ``mirror``.

    Lens pixels (see :func:`lens_masks`) get a colour at 85-97 % opacity, darker at the top for
    ``gradient``, with a blue/silver/gold sheen and a highlight streak for ``mirror``; the frame is kept.
    """
    lens, _ = lens_masks(rgba)
    style = style or str(rng.choice(["dark", "dark", "brown", "green", "gradient", "mirror"]))
    base = {"dark": (22, 22, 24), "brown": (30, 55, 85), "green": (35, 55, 40), "gradient": (25, 25, 30),
            "mirror": tuple(int(v) for v in rng.choice([(200, 120, 40), (190, 190, 195), (40, 150, 210)]))}[style]
    h, w = lens.shape
    ys, xs = np.nonzero(lens)
    if not len(ys):
        return rgba
    out = rgba.copy()
    col = np.empty((h, w, 3), np.float32)
    col[:] = np.float32(base) * rng.uniform(0.8, 1.2)
    t = np.clip((np.arange(h, dtype=np.float32)[:, None] - ys.min()) / max(ys.max() - ys.min(), 1), 0, 1)
    if style == "gradient":
        col *= (0.6 + 2.2 * t)[..., None]
    elif style == "mirror":
        col *= (0.55 + 0.6 * np.cos(np.pi * (xs.min() + np.arange(w)[None, :]) / w * 2) ** 2 * (1 - t))[..., None]
    else:
        col *= (0.9 + 0.3 * t)[..., None]
    # a soft diagonal highlight in the upper part of each lens
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    streak = np.exp(-(((xx - yy * 0.8) % (w / 2) - w * 0.12) / (w * 0.025)) ** 2) * (t < 0.45)
    col += streak[..., None] * rng.uniform(25, 70 if style == "mirror" else 40)
    a = out[..., 3].astype(np.float32)
    la = rng.uniform(0.85, 0.97) * 255
    sel = lens & (a < la)
    out[..., :3][sel] = np.clip(col[sel], 0, 255).astype(np.uint8)
    out[..., 3][sel] = np.uint8(la)
    return out


def clear_lenses(rgba: np.ndarray) -> np.ndarray:
    """Make the lens interiors of a clear-glasses cut-out see-through (alpha <= 30), keeping the rims.

    Product photos often store clear lenses as opaque grey or white pixels, which would composite as
    tinted lenses on a face labelled ``face``; a negative must show the eyes.
    """
    lens, (le, re_) = lens_masks(rgba)
    span = float(np.hypot(re_[0] - le[0], re_[1] - le[1]))
    k = max(3, int(0.06 * span))
    inner = cv2.erode(lens.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))).astype(bool)
    out = rgba.copy()
    out[..., 3][inner] = np.minimum(out[..., 3][inner], 30)
    return out


def _alpha_from_background(rgba: np.ndarray, tol: int = 18) -> np.ndarray:
    """A cut-out saved on an opaque near-uniform background: flood it from the corners of the opaque box."""
    ys, xs = np.nonzero(rgba[..., 3] > 128)
    if not len(xs):
        return rgba
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())
    corners = [(x, y) for x, y in ((x0, y0), (x1, y0), (x0, y1), (x1, y1)) if rgba[y, x, 3] > 250]
    if not corners:
        return rgba
    bgr = np.ascontiguousarray(rgba[..., :3])
    h, w = bgr.shape[:2]
    ff = np.zeros((h + 2, w + 2), np.uint8)
    ff[1:-1, 1:-1][rgba[..., 3] < 128] = 1  # transparent pixels already are background: floods stop there
    for pt in corners:
        cv2.floodFill(bgr.copy(), ff, pt, (0, 0, 0), (tol,) * 3, (tol,) * 3, cv2.FLOODFILL_MASK_ONLY | 8 | (255 << 8))
    bg = ff[1:-1, 1:-1] == 255
    if bg.mean() < 0.01 or bg.mean() > 0.9:
        return rgba
    out = rgba.copy()
    out[..., 3][bg] = 0
    return out


def mask_template_from_cutout(name: str, rgba: np.ndarray, pose: str = "front", kind: str = "surgical") -> MaskTemplate:
    """A mask cut-out without MaskTheFace anchors: the six anchors from the opaque bounding box.

    ``a``/``c`` sit at the top corners (ear loops, eye level of the jaw points 0/16), ``b`` at the top
    middle (nose bridge), ``d``/``f`` at 60 % height slightly inside, ``e`` at the bottom middle (chin).
    For ``left``/``right`` views the bridge and chin anchors move toward the far side.
    """
    rgba = _alpha_from_background(rgba)
    ys, xs = np.nonzero(rgba[..., 3] > 128)
    if not len(xs):
        raise ValueError(f"{name}: mask cut-out is fully transparent")
    x0, x1, y0, y1 = float(xs.min()), float(xs.max()), float(ys.min()), float(ys.max())
    w, h = x1 - x0, y1 - y0
    mid = x0 + w * {"front": 0.5, "left": 0.38, "right": 0.62}.get(pose, 0.5)
    pts = {"a": (x0, y0 + 0.12 * h), "b": (mid, y0), "c": (x1, y0 + 0.12 * h),
           "d": (x0 + 0.08 * w, y0 + 0.62 * h), "e": (mid, y1), "f": (x1 - 0.08 * w, y0 + 0.62 * h)}
    return MaskTemplate(name, rgba, pts, pose, kind, texturable=False)


def _extra_views(root: Path) -> dict[str, str]:
    """``overlays/SOURCES-extra.csv``: file (relative to overlays/) -> view (``front``, ``left`` or ``right``:
    the side of the image on which the temple arm shows)."""
    import csv  # noqa: PLC0415

    path = root / "SOURCES-extra.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        return {r["file"]: (r.get("view") or "front").strip() for r in csv.DictReader(f)}


def _posed(rgba: np.ndarray, view: str) -> tuple[np.ndarray, str]:
    """Three-quarter cut-outs all turned one way (temple on the image right); returns (rgba, view)."""
    if view == "left":
        return rgba[:, ::-1].copy(), "three-quarter"
    return rgba, ("three-quarter" if view == "right" else "front")


def lenses_opaque(rgba: np.ndarray, centres: list[tuple[float, float]], min_alpha: float = 150.0) -> bool:
    """True when both lenses hide the eyes (mean alpha >= ``min_alpha`` in a disc around each lens centre)
    and the centres are plausibly placed (28-75 % of the frame's width apart)."""
    span = float(np.hypot(centres[1][0] - centres[0][0], centres[1][1] - centres[0][1]))
    xs = np.nonzero((rgba[..., 3] > 128).any(0))[0]
    if not len(xs) or not 0.28 <= span / max(xs[-1] - xs[0], 1) <= 0.75:
        return False
    r = max(2, int(0.12 * span))
    for cx, cy in centres:
        disc = np.zeros(rgba.shape[:2], np.uint8)
        cv2.circle(disc, (int(round(cx)), int(round(cy))), r, 1, -1)
        if not disc.any() or float(rgba[..., 3][disc.astype(bool)].mean()) < min_alpha:
            return False
    return True


def load_extra_overlays(lib: OverlayLibrary, root: Path) -> OverlayLibrary:
    """Add ``sunglasses-extra/``, ``eyeglasses/`` (clear, plus tinted copies) and ``masks-extra/`` when present."""
    views = _extra_views(root)
    for p in sorted((root / "sunglasses-extra").glob("*.png")):
        rgba, view = _posed(_alpha_from_background(_read_rgba(p)), views.get(f"sunglasses-extra/{p.name}", "front"))
        _, (le, re_) = lens_masks(rgba)
        if lenses_opaque(rgba, [le, re_]):  # a see-through lens would label clear glasses `sunglasses`
            lib.sunglasses.append(SunglassesTemplate(p.name, rgba, le, re_, view))
    rng = np.random.default_rng(0)
    for p in sorted((root / "eyeglasses").glob("*.png")):
        rgba, view = _posed(_alpha_from_background(_read_rgba(p)), views.get(f"eyeglasses/{p.name}", "front"))
        _, (le, re_) = lens_masks(rgba)
        if not lenses_opaque(rgba, [le, re_], min_alpha=0.0):
            continue
        lib.eyeglasses.append(SunglassesTemplate(p.name, clear_lenses(rgba), le, re_, view, tinted=False))
        for style in ("dark", str(rng.choice(["brown", "green", "gradient", "mirror"]))):
            tinted = tint_lenses(rgba, rng, style)
            if lenses_opaque(tinted, [le, re_]):
                lib.sunglasses.append(SunglassesTemplate(f"{p.name}+{style}", tinted, le, re_, view))
    for p in sorted((root / "masks-extra").glob("*.png")):
        stem = p.stem
        if "N95_" in stem:  # the side views' straps span the whole cut-out: no anchors can be read off them
            continue
        pose = "left" if stem.endswith("_left") else "right" if stem.endswith("_right") else "front"
        kind = "N95" if "N95" in stem else "cloth" if ("cloth" in stem or "facemask" in stem) else "surgical"
        try:
            lib.masks.append(mask_template_from_cutout(p.name, _read_rgba(p), pose, kind))
        except ValueError:
            continue
    return lib


def load_shared_overlays(overlay_root: str | Path) -> OverlayLibrary:
    """Read ``<root>/masks/masks.cfg`` + templates, ``<root>/masks/textures``, ``<root>/sunglasses``."""
    root = Path(overlay_root)
    cfg_path = root / "masks" / "masks.cfg"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path}: mask config not found (is {root} the overlays folder?)")
    cfg = configparser.ConfigParser()
    cfg.read(cfg_path)
    lib = OverlayLibrary(origin=str(root))
    for name in cfg.sections():
        sec = cfg[name]
        if "template" not in sec:  # MaskTheFace's "empty"/"inpaint" modes carry no template
            continue
        tpath = root / sec["template"]
        pts = {}
        for k in MASK_POINTS:
            x, y = (float(v) for v in sec[f"mask_{k}"].split(","))
            pts[k] = (x, y)
        pose = "left" if name.endswith("_left") else "right" if name.endswith("_right") else "front"
        base = name.replace("_left", "").replace("_right", "")
        kind = base.split("_")[0]
        lib.masks.append(MaskTemplate(name, _read_rgba(tpath), pts, pose, kind,
                                      texturable=kind in ("cloth", "surgical")))
    for p in sorted((root / "masks" / "textures").rglob("*")):
        if p.suffix.lower() in (".png", ".jpg", ".jpeg"):
            im = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if im is not None:
                lib.textures.append(im)
    for p in sorted((root / "sunglasses").glob("*.png")):
        rgba = _read_rgba(p)
        le, re_ = lens_centres(rgba)
        lib.sunglasses.append(SunglassesTemplate(p.name, rgba, le, re_))
    if not lib.masks or not lib.sunglasses:
        raise ValueError(f"{root}: no mask or sunglasses templates found")
    return load_extra_overlays(lib, root)
