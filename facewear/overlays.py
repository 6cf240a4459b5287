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


@dataclass
class OverlayLibrary:
    masks: list[MaskTemplate] = field(default_factory=list)
    sunglasses: list[SunglassesTemplate] = field(default_factory=list)
    textures: list[np.ndarray] = field(default_factory=list)  # BGR
    origin: str = ""

    def masks_for_pose(self, pose: str) -> list[MaskTemplate]:
        m = [t for t in self.masks if t.pose == pose]
        return m or [t for t in self.masks if t.pose == "front"] or self.masks


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
    return lib
