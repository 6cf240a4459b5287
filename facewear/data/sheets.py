"""Contact sheets of a built dataset: one row of face crops per class (``facewear demo``'s sheet, and the
composite and real-face sheets of ``facewear data review``)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..constants import CLASS_NAMES
from ..formats import read_yolo
from ..io import image_size, read_image, write_image
from .layout import read_meta


def contact_sheet(root: Path, out: Path, per_class: int = 6, tile: int = 128, synthetic_only: bool = False,
                  seed: int | None = None, splits: tuple[str, ...] = ("train", "val"),
                  classes: tuple[str, ...] = CLASS_NAMES, label_prefix: str = "", write: bool = True,
                  label_w: int = 150) -> np.ndarray:
    """One row per class of face crops from a built dataset (composites only with ``synthetic_only``).

    ``seed`` picks a random sample of images instead of the first ones. Returns the sheet (BGR), written
    to ``out`` when ``write``.
    """
    rows = {n: [] for n in classes}
    for split in splits:
        try:
            metas = read_meta(root, split)
        except FileNotFoundError:
            continue
        if synthetic_only:
            metas = [m for m in metas if m.synthetic]
        if seed is not None:
            metas = [metas[i] for i in np.random.default_rng(seed).permutation(len(metas))]
        for m in metas:
            p = root / "images" / split / m.file
            w, h = image_size(p)
            ann = read_yolo(root / "labels" / split / f"{Path(m.file).stem}.txt", w, h)
            img = None
            for b in ann.boxes:
                if b.label not in rows or len(rows[b.label]) >= per_class:
                    continue
                img = img if img is not None else read_image(p)
                mg = 0.15 * b.w
                crop = img[int(max(b.y1 - mg, 0)):int(b.y2 + mg), int(max(b.x1 - mg, 0)):int(b.x2 + mg)]
                rows[b.label].append(cv2.resize(crop, (tile, tile)))
    lines = []
    for name in classes:
        tiles = rows[name] + [np.full((tile, tile, 3), 255, np.uint8)] * (per_class - len(rows[name]))
        label = np.full((tile, label_w, 3), 255, np.uint8)
        cv2.putText(label, f"{label_prefix}{name}", (5, tile // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
        lines.append(np.hstack([label, *tiles]))
    sheet = np.vstack(lines)
    if write:
        write_image(out, sheet)
    return sheet


__all__ = ["contact_sheet"]
