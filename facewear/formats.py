"""Box and label formats: Pascal VOC XML, YOLO txt and COCO JSON.

Everything converts through one in-memory form, :class:`ImageAnn` holding
:class:`Box` es in absolute ``xyxy`` pixels with a class *name*. Readers
clip boxes to the image, drop degenerate ones and remove duplicate boxes;
every such label problem is recorded in a :class:`Report` **per file**
(``Report.files``) as well as in totals, and :meth:`Report.warn` names each
file with its problems.

Flags that say "do not score this box" survive conversion: VOC
``<difficult>1</difficult>`` and COCO ``iscrowd: 1`` are kept in
``Box.meta`` (``difficult`` / ``iscrowd``), written back by VOC
(``difficult``) and COCO (``iscrowd: 1``, plus ``difficult: 1`` for a VOC
difficult box), and left out of YOLO files, which cannot hold them, with a
count per file. ``facewear val`` ignores such boxes as pycocotools ignores
``iscrowd``.
"""
from __future__ import annotations

import json
import logging
import math
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .constants import CLASS_NAMES, MIN_BOX_SIDE, SOURCE_CLASS_MAP
from .io import ImageReadError, atomic_path, check_not_inputs, image_size, list_images, write_json, write_text

LOG = logging.getLogger("facewear")


class AnnotationError(ValueError):
    """A bad annotation file; the message names the file and the problem."""


#: ``Box.meta`` keys of the "do not score this box" flags (VOC ``difficult``, COCO ``iscrowd``)
IGNORE_FLAGS: tuple[str, ...] = ("difficult", "iscrowd")


@dataclass
class Box:
    """One box in absolute ``xyxy`` pixels with a class name; ``meta`` holds flags such as ``difficult``."""

    x1: float
    y1: float
    x2: float
    y2: float
    label: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def w(self) -> float:
        return self.x2 - self.x1

    @property
    def h(self) -> float:
        return self.y2 - self.y1

    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)

    @property
    def ignored(self) -> bool:
        """True for a box marked "do not score" (VOC difficult or COCO iscrowd)."""
        return any(bool(self.meta.get(k)) for k in IGNORE_FLAGS)


@dataclass
class ImageAnn:
    """The boxes of one image; ``file`` is relative to the images root (or absolute)."""

    file: str  # path relative to the images root (or absolute)
    width: int
    height: int
    boxes: list[Box] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    """What a reader or the build skipped or changed: totals, and every label problem per file.

    ``files`` maps a label file (or ``coco.json: image``) to a Counter of problems, e.g.
    ``{"a.txt": {"duplicate box(es) removed": 1, "box(es) clipped to the image": 2}}``, logged as
    ``a.txt: 2 box(es) clipped to the image, 1 duplicate box(es) removed``.
    """

    clipped: int = 0
    degenerate: int = 0
    unknown_class: Counter = field(default_factory=Counter)
    skipped: list[str] = field(default_factory=list)  # "file: reason"
    duplicates: int = 0
    out_of_range: int = 0  # YOLO rows with coordinates outside [0, 1]
    flags_dropped: int = 0  # ignore-flagged boxes left out of a format that cannot mark them
    files: dict[str, Counter] = field(default_factory=dict)

    def note(self, file: str, problem: str, n: int = 1) -> None:
        """Record ``n`` times ``problem`` for ``file``."""
        if n:
            self.files.setdefault(str(file), Counter())[problem] += n

    def merge(self, other: Report) -> None:
        """Add ``other``'s totals and per-file problems to this report."""
        self.clipped += other.clipped
        self.degenerate += other.degenerate
        self.unknown_class.update(other.unknown_class)
        self.skipped.extend(other.skipped)
        self.duplicates += other.duplicates
        self.out_of_range += other.out_of_range
        self.flags_dropped += other.flags_dropped
        for f, c in other.files.items():
            self.files.setdefault(f, Counter()).update(c)

    def file_lines(self, limit: int | None = None) -> list[str]:
        """One ``file: problem n, problem n`` line per file with a label problem (sorted by file)."""
        items = sorted(self.files.items())
        lines = [f"{f}: " + ", ".join(f"{v} {k}" for k, v in sorted(c.items())) for f, c in items]
        if limit is not None and len(lines) > limit:
            lines = lines[:limit] + [f"... and {len(lines) - limit} more file(s)"]
        return lines

    def warn(self, what: str = "", per_file_limit: int = 50) -> None:
        """Log the totals, then each file with its label problems (up to ``per_file_limit`` files)."""
        pre = f"{what}: " if what else ""
        if self.clipped:
            LOG.warning("%sclipped %d box(es) to the image bounds", pre, self.clipped)
        if self.degenerate:
            LOG.warning("%sdropped %d degenerate box(es) (side < %.0f px after clipping)", pre, self.degenerate,
                        MIN_BOX_SIDE)
        if self.duplicates:
            LOG.warning("%sremoved %d duplicate box(es)", pre, self.duplicates)
        if self.out_of_range:
            LOG.warning("%s%d YOLO row(s) with coordinates outside [0, 1] (clipped or dropped)", pre, self.out_of_range)
        if self.flags_dropped:
            LOG.warning("%sleft out %d box(es) flagged difficult/iscrowd: the output format cannot mark them "
                        "'do not score'", pre, self.flags_dropped)
        for name, n in self.unknown_class.items():
            LOG.warning("%s%d box(es) with unknown class %r", pre, n, name)
        if self.files:
            LOG.warning("%slabel problems in %d file(s):\n  %s", pre, len(self.files),
                        "\n  ".join(self.file_lines(per_file_limit)))
        if self.skipped:
            LOG.warning("%sskipped %d file(s):\n  %s", pre, len(self.skipped), "\n  ".join(self.skipped[:20]))


def map_label(name: str, class_map: dict[str, str] | None) -> str | None:
    """Map a source label through ``class_map`` (default: :data:`SOURCE_CLASS_MAP`)."""
    cmap = SOURCE_CLASS_MAP if class_map is None else class_map
    return cmap.get(name.strip())


PROBLEM_CLIPPED = "box(es) clipped to the image"
PROBLEM_DEGENERATE = "degenerate box(es) dropped (zero size, or side < 1 px after clipping)"
PROBLEM_DUPLICATE = "duplicate box(es) removed"
PROBLEM_OUT_OF_RANGE = "YOLO row(s) with coordinates outside [0, 1]"
PROBLEM_FLAG_DROPPED = "difficult/iscrowd box(es) left out (the format cannot mark them)"


def problem_unknown(name: str) -> str:
    """The per-file problem text for boxes of an unknown class ``name``."""
    return f"box(es) of unknown class {name!r} dropped"


def sanitize(ann: ImageAnn, report: Report, source: str = "") -> ImageAnn:
    """Clip boxes to the image, drop degenerate ones and remove duplicates (same class, same box to 0.01 px),
    counting each in ``report`` in total and for ``source`` (default: the image's file)."""
    key = source or ann.file
    kept, seen = [], set()
    for b in ann.boxes:
        if not all(math.isfinite(v) for v in b.xyxy()):  # NaN would slip through min/max below
            report.degenerate += 1
            report.note(key, PROBLEM_DEGENERATE)
            LOG.debug("%s: non-finite box %s dropped", key, b.xyxy())
            continue
        x1, y1 = min(b.x1, b.x2), min(b.y1, b.y2)
        x2, y2 = max(b.x1, b.x2), max(b.y1, b.y2)
        cx1, cy1 = min(max(x1, 0.0), ann.width), min(max(y1, 0.0), ann.height)
        cx2, cy2 = min(max(x2, 0.0), ann.width), min(max(y2, 0.0), ann.height)
        if (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2):
            report.clipped += 1
            report.note(key, PROBLEM_CLIPPED)
        if cx2 - cx1 < MIN_BOX_SIDE or cy2 - cy1 < MIN_BOX_SIDE:
            report.degenerate += 1
            report.note(key, PROBLEM_DEGENERATE)
            LOG.debug("%s: degenerate box %s dropped", key, b.xyxy())
            continue
        ident = (b.label, round(cx1, 2), round(cy1, 2), round(cx2, 2), round(cy2, 2))
        if ident in seen:  # a label file holding a row twice: kept, it would halve recall in val
            report.duplicates += 1
            report.note(key, PROBLEM_DUPLICATE)
            continue
        seen.add(ident)
        kept.append(Box(cx1, cy1, cx2, cy2, b.label, b.meta))
    ann.boxes = kept
    return ann


def _flag(text: str | None) -> bool:
    """A VOC 0/1 flag such as ``<difficult>``: true for ``1``/``true``."""
    t = (text or "").strip().lower()
    return t in ("1", "true", "yes") or (t.replace(".", "", 1).isdigit() and float(t) >= 1)


# --- Pascal VOC -----------------------------------------------------------------------
def read_voc(xml_path: str | Path, class_map: dict[str, str] | None = None, report: Report | None = None,
             image_path: Path | None = None) -> ImageAnn:
    """Parse one VOC XML file. Unknown classes are counted and dropped."""
    xml_path = Path(xml_path)
    report = report if report is not None else Report()
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as e:
        raise AnnotationError(f"{xml_path}: not a readable VOC XML file ({e})") from None
    fname = (root.findtext("filename") or "").strip() or xml_path.with_suffix(".jpg").name
    size = root.find("size")
    try:
        w = int(float(size.findtext("width"))) if size is not None else 0
        h = int(float(size.findtext("height"))) if size is not None else 0
    except (TypeError, ValueError):
        w = h = 0
    if (w <= 0 or h <= 0) and image_path is not None:
        w, h = image_size(image_path)
    if w <= 0 or h <= 0:
        raise AnnotationError(f"{xml_path}: missing or zero <size> and no image to measure")
    ann = ImageAnn(fname, w, h)
    for obj in root.iter("object"):
        raw = (obj.findtext("name") or "").strip()
        label = map_label(raw, class_map)
        if label is None:
            report.unknown_class[raw] += 1
            report.note(str(xml_path), problem_unknown(raw))
            continue
        bb = obj.find("bndbox")
        try:
            x1, y1, x2, y2 = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (AttributeError, TypeError, ValueError):
            raise AnnotationError(f"{xml_path}: object {raw!r} has a missing or non-numeric <bndbox>") from None
        ann.boxes.append(Box(x1, y1, x2, y2, label, {"difficult": True} if _flag(obj.findtext("difficult")) else {}))
    return sanitize(ann, report, str(xml_path))


def write_voc(ann: ImageAnn, xml_path: str | Path) -> None:
    """Write one VOC XML file; a box flagged difficult or iscrowd gets ``<difficult>1</difficult>``."""
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = Path(ann.file).name
    size = ET.SubElement(root, "size")
    for k, v in (("width", ann.width), ("height", ann.height), ("depth", 3)):
        ET.SubElement(size, k).text = str(v)
    for b in ann.boxes:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = b.label
        ET.SubElement(obj, "difficult").text = "1" if b.ignored else "0"
        bb = ET.SubElement(obj, "bndbox")
        for k, v in zip(("xmin", "ymin", "xmax", "ymax"), b.xyxy()):
            ET.SubElement(bb, k).text = f"{v:.2f}".rstrip("0").rstrip(".")
    ET.indent(root)
    write_text(xml_path, ET.tostring(root, encoding="unicode") + "\n")


# --- YOLO txt ------------------------------------------------------------------------
def yolo_rows(txt_path: str | Path) -> list[tuple[int, float, float, float, float]]:
    """Rows ``(class_id, cx, cy, w, h)`` of a YOLO label file; a missing file has none.

    Raises :class:`AnnotationError` naming the file and line on a bad row.
    """
    txt_path = Path(txt_path)
    if not txt_path.is_file():
        return []
    rows = []
    for ln, line in enumerate(txt_path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 5:
            raise AnnotationError(f"{txt_path}:{ln}: expected 'class cx cy w h', got {line!r}")
        try:
            c = int(float(parts[0]))
            cx, cy, w, h = (float(v) for v in parts[1:5])
        except ValueError:
            raise AnnotationError(f"{txt_path}:{ln}: non-numeric value in {line!r}") from None
        rows.append((c, cx, cy, w, h))
    return rows


def read_yolo(txt_path: str | Path, width: int, height: int, names: list[str] | tuple[str, ...] = CLASS_NAMES,
              class_map: dict[str, str] | None = None, report: Report | None = None, file: str = "") -> ImageAnn:
    """Parse a YOLO label file (``cls cx cy w h`` normalised). A missing file means no boxes."""
    txt_path = Path(txt_path)
    report = report if report is not None else Report()
    ann = ImageAnn(file or txt_path.with_suffix(".jpg").name, width, height)
    key = str(txt_path)
    for c, cx, cy, bw, bh in yolo_rows(txt_path):
        if not 0 <= c < len(names):
            report.unknown_class[str(c)] += 1
            report.note(key, problem_unknown(f"id {c}"))
            continue
        label = map_label(names[c], class_map)
        if label is None:
            report.unknown_class[names[c]] += 1
            report.note(key, problem_unknown(names[c]))
            continue
        if bw <= 0 or bh <= 0:  # a negative size would otherwise be flipped into a real box
            report.degenerate += 1
            report.note(key, PROBLEM_DEGENERATE)
            continue
        if not all(0.0 <= v <= 1.0 for v in (cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2)):
            report.out_of_range += 1
            report.note(key, PROBLEM_OUT_OF_RANGE)
        ann.boxes.append(Box((cx - bw / 2) * width, (cy - bh / 2) * height,
                             (cx + bw / 2) * width, (cy + bh / 2) * height, label))
    return sanitize(ann, report, str(txt_path))


def yolo_lines(ann: ImageAnn, names: list[str] | tuple[str, ...] = CLASS_NAMES, report: Report | None = None) -> str:
    """The YOLO txt rows of ``ann``. Boxes flagged difficult/iscrowd are left out (YOLO cannot mark them
    "do not score"; written as normal boxes they would be trained on and scored), counted in ``report``."""
    idx = {n: i for i, n in enumerate(names)}
    out = []
    for b in ann.boxes:
        if b.label not in idx:
            raise AnnotationError(f"{ann.file}: class {b.label!r} is not in names {list(names)}")
        if b.ignored:
            if report is not None:
                report.flags_dropped += 1
                report.note(ann.file, PROBLEM_FLAG_DROPPED)
            continue
        cx, cy = (b.x1 + b.x2) / 2 / ann.width, (b.y1 + b.y2) / 2 / ann.height
        out.append(f"{idx[b.label]} {cx:.6f} {cy:.6f} {b.w / ann.width:.6f} {b.h / ann.height:.6f}")
    return "\n".join(out) + ("\n" if out else "")


def write_yolo(ann: ImageAnn, txt_path: str | Path, names: list[str] | tuple[str, ...] = CLASS_NAMES,
               report: Report | None = None) -> None:
    """Write one YOLO txt file (see :func:`yolo_lines`)."""
    write_text(txt_path, yolo_lines(ann, names, report))


# --- COCO JSON -----------------------------------------------------------------------
def to_coco(anns: list[ImageAnn], names: list[str] | tuple[str, ...] = CLASS_NAMES,
            info: dict | None = None) -> dict:
    """COCO detection dict. Category ids are 0-based, matching YOLO class ids.

    A box flagged difficult or iscrowd is written with ``iscrowd: 1`` (pycocotools then ignores it in
    evaluation) and ``ignore: 1``, plus ``difficult: 1`` for a VOC difficult box so VOC gets it back."""
    idx = {n: i for i, n in enumerate(names)}
    images, annotations = [], []
    for img_id, ann in enumerate(anns):
        images.append({"id": img_id, "file_name": ann.file, "width": ann.width, "height": ann.height,
                       **({"meta": ann.meta} if ann.meta else {})})
        for b in ann.boxes:
            if b.label not in idx:
                raise AnnotationError(f"{ann.file}: class {b.label!r} is not in names {list(names)}")
            a = {"id": len(annotations) + 1, "image_id": img_id, "category_id": idx[b.label],
                 "bbox": [round(b.x1, 2), round(b.y1, 2), round(b.w, 2), round(b.h, 2)],
                 "area": round(b.w * b.h, 2), "iscrowd": int(b.ignored)}
            if b.ignored:
                a["ignore"] = 1
                if b.meta.get("difficult"):
                    a["difficult"] = 1
            annotations.append(a)
    return {"info": info or {"description": "facewear"}, "images": images, "annotations": annotations,
            "categories": [{"id": i, "name": n, "supercategory": "face"} for i, n in enumerate(names)]}


def from_coco(coco: dict | str | Path, class_map: dict[str, str] | None = None,
              report: Report | None = None) -> list[ImageAnn]:
    """Read a COCO detection dict or JSON file into :class:`ImageAnn` s."""
    report = report if report is not None else Report()
    src = str(coco) if not isinstance(coco, dict) else "<coco>"
    if not isinstance(coco, dict):
        try:
            coco = json.loads(Path(coco).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise AnnotationError(f"{src}: not a readable COCO JSON file ({e})") from None
    try:
        cats = {c["id"]: c["name"] for c in coco["categories"]}
        out = {im["id"]: ImageAnn(im["file_name"], int(im["width"]), int(im["height"]), meta=im.get("meta", {}))
               for im in coco["images"]}
        for a in coco.get("annotations", []):
            raw = cats.get(a["category_id"], str(a["category_id"]))
            label = map_label(raw, class_map)
            if label is None:
                report.unknown_class[raw] += 1
                report.note(f"{src}: {out[a['image_id']].file}", problem_unknown(raw))
                continue
            x, y, w, h = (float(v) for v in a["bbox"])
            meta = {}
            if a.get("difficult"):
                meta["difficult"] = True
            elif a.get("iscrowd") or a.get("ignore"):
                meta["iscrowd"] = True
            out[a["image_id"]].boxes.append(Box(x, y, x + w, y + h, label, meta))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise AnnotationError(f"{src}: malformed COCO JSON ({type(e).__name__}: {e})") from None
    return [sanitize(a, report, f"{src}: {a.file}") for a in out.values()]


# --- folder-level conversion ----------------------------------------------------------
FORMATS = ("voc", "yolo", "coco")


def load_folder(fmt: str, images: Path, labels: Path, class_map: dict[str, str] | None = None,
                names: list[str] | tuple[str, ...] = CLASS_NAMES, strict: bool = False,
                report: Report | None = None) -> list[ImageAnn]:
    """Read a whole annotated folder. ``labels`` is a folder (voc, yolo) or a JSON file (coco).

    Bad files are skipped and listed in ``report`` (or raise with ``strict``).
    """
    report = report if report is not None else Report()
    images, labels = Path(images), Path(labels)
    if fmt == "coco":
        anns = from_coco(labels, class_map, report)
        return anns
    if not images.is_dir():
        raise AnnotationError(f"{images}: images folder not found")
    if not labels.is_dir():  # a typo here would otherwise give every image zero boxes (yolo)
        raise AnnotationError(f"{labels}: labels folder not found")
    files = list_images(images)
    if not files:
        raise AnnotationError(f"{images}: no images found (empty folder?)")
    anns = []
    for img in files:
        rel = img.relative_to(images)
        try:
            if fmt == "voc":
                xml = labels / rel.with_suffix(".xml")
                if not xml.exists():
                    raise AnnotationError(f"{xml}: annotation missing for {img}")
                ann = read_voc(xml, class_map, report, image_path=img)
            elif fmt == "yolo":
                w, h = image_size(img)
                ann = read_yolo(labels / rel.with_suffix(".txt"), w, h, names, class_map, report, str(rel))
            else:
                raise ValueError(f"unknown format {fmt!r}; choose from {FORMATS}")
            ann.file = str(rel)
            anns.append(ann)
        except (AnnotationError, ImageReadError) as e:
            if strict:
                raise
            report.skipped.append(str(e))
    return anns


def output_files(fmt: str, anns: list[ImageAnn], labels: Path) -> list[Path]:
    """The files :func:`save_folder` would write."""
    labels = Path(labels)
    if fmt == "coco":
        return [labels]
    ext = {"voc": ".xml", "yolo": ".txt"}.get(fmt)
    if ext is None:
        raise ValueError(f"unknown format {fmt!r}; choose from {FORMATS}")
    return [labels / f"{Path(a.file).with_suffix('')}{ext}" for a in anns]


def save_folder(fmt: str, anns: list[ImageAnn], labels: Path,
                names: list[str] | tuple[str, ...] = CLASS_NAMES, report: Report | None = None) -> None:
    """Write annotations as VOC XML files, YOLO txt files or one COCO JSON file (each file atomically)."""
    labels = Path(labels)
    if fmt == "coco":
        write_json(labels, to_coco(anns, names))
        return
    for ann, path in zip(anns, output_files(fmt, anns, labels)):
        if fmt == "voc":
            write_voc(ann, path)
        else:
            write_yolo(ann, path, names, report)


def convert(src_fmt: str, dst_fmt: str, images: str | Path, labels: str | Path, out: str | Path,
            class_map: dict[str, str] | None = None, names: list[str] | tuple[str, ...] = CLASS_NAMES,
            strict: bool = False) -> Report:
    """Convert an annotated folder between VOC, YOLO and COCO; return what was skipped or changed.

    Refuses (:class:`~facewear.io.OverwriteError`) before writing anything when an output file would replace
    one of the input label files or images."""
    report = Report()
    images, labels = Path(images), Path(labels)
    if dst_fmt not in FORMATS:
        raise ValueError(f"unknown format {dst_fmt!r}; choose from {FORMATS}")
    anns = load_folder(src_fmt, images, labels, class_map, names, strict, report)
    out = Path(out)
    if dst_fmt == "coco" and out.suffix != ".json":
        out = out / "annotations.json"
    inputs = [labels] if labels.is_file() else [p for p in labels.rglob("*") if p.is_file()] if labels.is_dir() else []
    if images.is_dir():
        inputs += [images / a.file for a in anns]
    check_not_inputs(output_files(dst_fmt, anns, out), inputs, "--out")
    save_folder(dst_fmt, anns, out, names, report)
    report.warn(f"convert {src_fmt}->{dst_fmt}")
    return report


__all__ = ["Box", "ImageAnn", "Report", "AnnotationError", "IGNORE_FLAGS", "output_files", "problem_unknown",
           "read_voc", "write_voc", "read_yolo", "write_yolo", "yolo_lines", "yolo_rows", "to_coco", "from_coco",
           "load_folder", "save_folder", "convert", "sanitize", "map_label", "FORMATS", "asdict", "atomic_path"]
