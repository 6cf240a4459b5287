"""Label corrections: the real sets know only mask / no mask, yet some faces wear sunglasses.

* :func:`flag_candidates` scores every real face for "dark, flat eye region
  against a brighter forehead" (sunglasses) and writes numbered contact
  sheets of the highest-scoring crops for review by eye
  (``facewear data review``);
* the reviewer records each confirmed face in ``datasets/corrections.csv``
  (source, image, box, old class, new class, note);
* :func:`apply_corrections` relabels the matching boxes during the build,
  for the training sets and the held-out set alike.
"""
from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from ..constants import CLASS_NAMES, DATASETS_DIR, default_build_dir, default_data_root

LOG = logging.getLogger("facewear.corrections")
FIELDS = ("source", "image", "x1", "y1", "x2", "y2", "old_class", "new_class", "note")


@dataclass
class Correction:
    source: str
    image: str
    box: tuple[float, float, float, float]
    old_class: str
    new_class: str
    note: str = ""
    line: int = 0

    def key(self) -> str:
        return f"{self.source}/{self.image}@{','.join(f'{v:g}' for v in self.box)}"


def load_corrections(path: str | Path) -> list[Correction]:
    """Read and validate the corrections CSV; errors name the file and line."""
    from ..io import read_commented_csv

    path = Path(path)
    out = []
    columns, rows = read_commented_csv(path)  # the file's own line numbers, comment lines skipped
    missing = set(FIELDS[:-1]) - set(columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
    for ln, r in rows:
        try:
            box = tuple(float(r[k]) for k in ("x1", "y1", "x2", "y2"))
        except (TypeError, ValueError):
            raise ValueError(f"{path}:{ln}: non-numeric box") from None
        for k in ("old_class", "new_class"):
            if r[k] not in CLASS_NAMES:
                raise ValueError(f"{path}:{ln}: unknown class {r[k]!r} in {k} (expected one of {CLASS_NAMES})")
        out.append(Correction(r["source"], r["image"], box, r["old_class"], r["new_class"], r.get("note") or "",
                              ln))
    return out


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / u if u > 0 else 0.0


def apply_corrections(items: list, corrections: list[Correction], min_iou: float = 0.7) -> set[str]:
    """Relabel boxes of ``items`` (RawItem-like: source, ann, corrections) in place.

    Correction boxes are clipped to the image first, as the build clips its
    boxes. Returns the keys of the corrections that matched a box; callers
    report the rest (a stale correction is worth a warning).
    """
    by_img: dict[tuple[str, str], list[Correction]] = {}
    for c in corrections:
        by_img.setdefault((c.source, c.image), []).append(c)
    used: set[str] = set()
    for it in items:
        W, H = it.ann.width, it.ann.height
        for c in by_img.get((it.source, it.ann.file), []):
            cb = (min(max(c.box[0], 0), W), min(max(c.box[1], 0), H),
                  min(max(c.box[2], 0), W), min(max(c.box[3], 0), H))
            best = max(it.ann.boxes, key=lambda b: _iou(b.xyxy(), cb), default=None)
            if best is None or _iou(best.xyxy(), cb) < min_iou:
                continue
            if best.label not in (c.old_class, c.new_class):
                LOG.warning("%s: box %s is %r, correction expects %r", c.key(), c.box, best.label, c.old_class)
            best.label = c.new_class
            it.corrections.append({"box": list(c.box), "from": c.old_class, "to": c.new_class})
            used.add(c.key())
    return used


# --- flagging candidates --------------------------------------------------------------------
def sunglasses_score(bgr: np.ndarray, lm: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """High when the eye region is dark and flat compared with the forehead above it."""
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
    h, w = gray.shape
    le, re_ = lm[36:42].mean(0), lm[42:48].mean(0)
    iod = max(float(np.linalg.norm(re_ - le)), 2.0)
    vals = []
    for e in (le, re_):
        r = max(int(0.28 * iod), 1)
        x, y = int(e[0]), int(e[1])
        patch = gray[max(y - r, 0):min(y + r + 1, h), max(x - r, 0):min(x + r + 1, w)]
        if patch.size:
            vals.append(patch)
    if not vals:
        return 0.0
    eye = np.concatenate([v.ravel() for v in vals])
    brow_y = float(lm[17:27, 1].min())
    fx1, fx2 = int(lm[19, 0]), int(lm[24, 0])
    fy1, fy2 = int(brow_y - 0.35 * iod), int(brow_y - 0.05 * iod)
    fore = gray[max(fy1, 0):max(fy2, 1), max(fx1, 0):max(fx2, 1)]
    cheek_y = int((lm[29, 1] + lm[30, 1]) / 2)
    nose = gray[max(cheek_y - 2, 0):cheek_y + 3, max(int(lm[29, 0]) - 2, 0):int(lm[29, 0]) + 3]
    ref = np.concatenate([fore.ravel(), nose.ravel()]) if fore.size else nose.ravel()
    if ref.size == 0:
        ref = gray[int(box[1]):int(box[3]), int(box[0]):int(box[2])].ravel()
    ref_m = float(np.median(ref)) if ref.size else 128.0
    eye_m = float(np.median(eye))
    dark = float((eye < 0.45 * ref_m).mean())
    return (ref_m - eye_m) / max(ref_m, 20.0) + 0.5 * dark


def _face_boxes(data_root: Path, source: str):
    """Yield (image_path, rel_name, box, label) for every real face of a source."""
    from ..formats import Report, read_voc
    from ..io import list_images

    root = data_root / source
    if (root / "annotations").is_dir():
        for img in list_images(root / "images"):
            xml = root / "annotations" / img.relative_to(root / "images").with_suffix(".xml")
            if not xml.is_file():
                continue
            ann = read_voc(xml, None, Report(), image_path=img)
            for b in ann.boxes:
                yield img, str(img.relative_to(root / "images")), b.xyxy(), b.label
    else:
        cache = default_build_dir() / "cache" / f"{source}-mtcnn.json"
        boxes = json.loads(cache.read_text()) if cache.is_file() else {}
        for img in list_images(root):
            rel = str(img.relative_to(root))
            label = "mask" if rel.startswith("with_mask") else "face"
            h, w = cv2.imread(str(img), cv2.IMREAD_REDUCED_GRAYSCALE_2).shape[:2]
            b = boxes.get(rel) or [0, 0, 2 * w, 2 * h]
            yield img, rel, tuple(b), label


def flag_candidates(data_root: str | Path | None = None, sources: list[str] | None = None, top: int = 256,
                    out: str | Path | None = None, min_face: float = 12) -> list[dict[str, Any]]:
    """Score all real faces and write contact sheets of the ``top`` candidates per source."""
    from ..io import read_image
    from .landmarks import landmarks68

    root = Path(data_root) if data_root else default_data_root()
    if root is None:
        raise FileNotFoundError("data root not found; pass --data-root or set FACEWEAR_DATA")
    out_dir = Path(out) if out else default_build_dir() / "review"
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = sources or ["kaggle-facemask", "chandrika-faces", "ilc2021-heldout"]
    allc = []
    for src in sources:
        cands = []
        cur, img = None, None
        for path, rel, box, label in tqdm(list(_face_boxes(root, src)), desc=f"score {src}", unit="face"):
            if box[2] - box[0] < min_face or label not in ("face", "mask"):
                continue
            if path != cur:
                cur, img = path, read_image(path)
                gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
            try:
                lm = landmarks68(gray, box)
                s = sunglasses_score(img, lm, box)
            except (ValueError, RuntimeError):
                continue
            cands.append({"source": src, "image": rel, "box": [round(v, 1) for v in box], "label": label,
                          "score": round(s, 4), "path": str(path)})
        cands.sort(key=lambda c: -c["score"])
        top_c = cands[:top]
        for i, c in enumerate(top_c):
            c["id"] = f"{src[:3]}{i:04d}"
        _contact_sheets(top_c, out_dir, src)
        (out_dir / f"{src}-candidates.json").write_text(json.dumps(top_c, indent=1))
        LOG.info("%s: %d faces scored, top %d written to %s", src, len(cands), len(top_c), out_dir)
        allc += top_c
    return allc


def _contact_sheets(cands: list[dict], out_dir: Path, src: str, per_sheet: int = 64, tile: int = 112) -> None:
    from ..io import read_image

    cols = 8
    for s in range(0, len(cands), per_sheet):
        chunk = cands[s:s + per_sheet]
        rows = (len(chunk) + cols - 1) // cols
        sheet = np.full((rows * (tile + 16), cols * tile, 3), 255, np.uint8)
        for k, c in enumerate(chunk):
            img = read_image(c["path"])
            x1, y1, x2, y2 = c["box"]
            m = 0.15 * (x2 - x1)
            crop = img[int(max(y1 - m, 0)):int(y2 + m), int(max(x1 - m, 0)):int(x2 + m)]
            if crop.size == 0:
                continue
            r, col = divmod(k, cols)
            cell = (slice(r * (tile + 16) + 16, (r + 1) * (tile + 16)), slice(col * tile, (col + 1) * tile))
            sheet[cell] = cv2.resize(crop, (tile, tile))
            cv2.putText(sheet, f"{c['id']} {c['label'][0]}", (col * tile + 2, r * (tile + 16) + 12),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.imwrite(str(out_dir / f"{src}-sheet{s // per_sheet:02d}.png"), sheet)


def write_corrections(rows: list[dict[str, Any]], path: str | Path = DATASETS_DIR / "corrections.csv",
                      header: str = "") -> None:
    """Write reviewed corrections (sorted, stable) to the versioned CSV."""
    from ..io import write_box_csv

    write_box_csv(path, rows, FIELDS, header)


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", default=None, help="raw public data (default: $FACEWEAR_DATA or ../shared/data)")
    p.add_argument("--sources", nargs="+", default=None, help="real sets to scan")
    p.add_argument("--top", type=int, default=256, help="candidates per source on the contact sheets")
    p.add_argument("--out", default=None, help="folder for sheets and candidate lists (default: build/review)")
    p.add_argument("--composites", metavar="SPEC", default=None,
                   help="instead: write a contact sheet of composites per class from a built spec "
                        "(e.g. datasets/facewear4.yaml) to <out>/composites_per_class.png")


def run(data_root: str | None = None, sources: list[str] | None = None, top: int = 256, out: str | None = None,
        composites: str | None = None):
    """Flag sunglasses candidates and write contact sheets for review (or a composites sheet)."""
    if composites:
        from ..io import write_image
        from .layout import load_spec
        from .sheets import contact_sheet

        dst = Path(out or default_build_dir() / "review") / "composites_per_class.png"
        sheet = contact_sheet(Path(load_spec(composites)["path"]), dst, per_class=10, tile=112, synthetic_only=True,
                              seed=2, label_prefix="composite ", write=False, label_w=230)
        real = Path(composites).with_name("real-checks.yaml")
        if real.is_file():  # real sunglasses faces under the composites, to judge them side by side
            try:
                rs = contact_sheet(Path(load_spec(real)["path"]), dst, per_class=10, tile=112, seed=2, splits=("test",),
                                   classes=("sunglasses", "mask_sunglasses"), label_prefix="REAL ", write=False,
                                   label_w=230)
                sheet = np.vstack([sheet, np.full((8, sheet.shape[1], 3), 0, np.uint8), rs])
            except FileNotFoundError as e:
                LOG.warning("%s: real checks not built, composites shown alone (%s)", real, e)
        write_image(dst, sheet)
        print(f"composites contact sheet: {dst}")
        return dst
    return flag_candidates(data_root, sources, top, out)
