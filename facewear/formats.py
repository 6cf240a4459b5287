"""Box and label formats: Pascal VOC XML, YOLO txt and COCO JSON.

Everything converts through one in-memory form, :class:`ImageAnn` holding
:class:`Box` es in absolute ``xyxy`` pixels with a class *name*. Readers
clip boxes to the image and drop degenerate ones; the counts are reported in
a :class:`Report` so callers can warn once with totals.
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
from .io import ImageReadError, atomic_path, image_size, list_images, write_json, write_text

LOG = logging.getLogger("facewear")


class AnnotationError(ValueError):
    """A bad annotation file; the message names the file and the problem."""


@dataclass
class Box:
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


@dataclass
class ImageAnn:
    file: str  # path relative to the images root (or absolute)
    width: int
    height: int
    boxes: list[Box] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    """What a reader or the build skipped or changed, with the files named."""

    clipped: int = 0
    degenerate: int = 0
    unknown_class: Counter = field(default_factory=Counter)
    skipped: list[str] = field(default_factory=list)  # "file: reason"

    def merge(self, other: Report) -> None:
        self.clipped += other.clipped
        self.degenerate += other.degenerate
        self.unknown_class.update(other.unknown_class)
        self.skipped.extend(other.skipped)

    def warn(self, what: str = "") -> None:
        pre = f"{what}: " if what else ""
        if self.clipped:
            LOG.warning("%sclipped %d box(es) to the image bounds", pre, self.clipped)
        if self.degenerate:
            LOG.warning("%sdropped %d degenerate box(es) (side < %.0f px after clipping)", pre, self.degenerate, MIN_BOX_SIDE)
        for name, n in self.unknown_class.items():
            LOG.warning("%s%d box(es) with unknown class %r", pre, n, name)
        if self.skipped:
            LOG.warning("%sskipped %d file(s):\n  %s", pre, len(self.skipped), "\n  ".join(self.skipped[:20]))


def map_label(name: str, class_map: dict[str, str] | None) -> str | None:
    """Map a source label through ``class_map`` (default: :data:`SOURCE_CLASS_MAP`)."""
    cmap = SOURCE_CLASS_MAP if class_map is None else class_map
    return cmap.get(name.strip())


def sanitize(ann: ImageAnn, report: Report, source: str = "") -> ImageAnn:
    """Clip boxes to the image and drop degenerate ones, counting both."""
    kept = []
    for b in ann.boxes:
        if not all(math.isfinite(v) for v in b.xyxy()):  # NaN would slip through min/max below
            report.degenerate += 1
            LOG.debug("%s: non-finite box %s dropped", source or ann.file, b.xyxy())
            continue
        x1, y1 = min(b.x1, b.x2), min(b.y1, b.y2)
        x2, y2 = max(b.x1, b.x2), max(b.y1, b.y2)
        cx1, cy1 = min(max(x1, 0.0), ann.width), min(max(y1, 0.0), ann.height)
        cx2, cy2 = min(max(x2, 0.0), ann.width), min(max(y2, 0.0), ann.height)
        if (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2):
            report.clipped += 1
        if cx2 - cx1 < MIN_BOX_SIDE or cy2 - cy1 < MIN_BOX_SIDE:
            report.degenerate += 1
            LOG.debug("%s: degenerate box %s dropped", source or ann.file, b.xyxy())
            continue
        kept.append(Box(cx1, cy1, cx2, cy2, b.label, b.meta))
    ann.boxes = kept
    return ann


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
            continue
        bb = obj.find("bndbox")
        try:
            x1, y1, x2, y2 = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (AttributeError, TypeError, ValueError):
            raise AnnotationError(f"{xml_path}: object {raw!r} has a missing or non-numeric <bndbox>") from None
        ann.boxes.append(Box(x1, y1, x2, y2, label))
    return sanitize(ann, report, str(xml_path))


def write_voc(ann: ImageAnn, xml_path: str | Path) -> None:
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = Path(ann.file).name
    size = ET.SubElement(root, "size")
    for k, v in (("width", ann.width), ("height", ann.height), ("depth", 3)):
        ET.SubElement(size, k).text = str(v)
    for b in ann.boxes:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = b.label
        ET.SubElement(obj, "difficult").text = "0"
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
    for c, cx, cy, bw, bh in yolo_rows(txt_path):
        if not 0 <= c < len(names):
            report.unknown_class[str(c)] += 1
            continue
        label = map_label(names[c], class_map)
        if label is None:
            report.unknown_class[names[c]] += 1
            continue
        ann.boxes.append(Box((cx - bw / 2) * width, (cy - bh / 2) * height,
                             (cx + bw / 2) * width, (cy + bh / 2) * height, label))
    return sanitize(ann, report, str(txt_path))


def yolo_lines(ann: ImageAnn, names: list[str] | tuple[str, ...] = CLASS_NAMES) -> str:
    idx = {n: i for i, n in enumerate(names)}
    out = []
    for b in ann.boxes:
        if b.label not in idx:
            raise AnnotationError(f"{ann.file}: class {b.label!r} is not in names {list(names)}")
        cx, cy = (b.x1 + b.x2) / 2 / ann.width, (b.y1 + b.y2) / 2 / ann.height
        out.append(f"{idx[b.label]} {cx:.6f} {cy:.6f} {b.w / ann.width:.6f} {b.h / ann.height:.6f}")
    return "\n".join(out) + ("\n" if out else "")


def write_yolo(ann: ImageAnn, txt_path: str | Path, names: list[str] | tuple[str, ...] = CLASS_NAMES) -> None:
    write_text(txt_path, yolo_lines(ann, names))


# --- COCO JSON -----------------------------------------------------------------------
def to_coco(anns: list[ImageAnn], names: list[str] | tuple[str, ...] = CLASS_NAMES,
            info: dict | None = None) -> dict:
    """COCO detection dict. Category ids are 0-based, matching YOLO class ids."""
    idx = {n: i for i, n in enumerate(names)}
    images, annotations = [], []
    for img_id, ann in enumerate(anns):
        images.append({"id": img_id, "file_name": ann.file, "width": ann.width, "height": ann.height,
                       **({"meta": ann.meta} if ann.meta else {})})
        for b in ann.boxes:
            if b.label not in idx:
                raise AnnotationError(f"{ann.file}: class {b.label!r} is not in names {list(names)}")
            annotations.append({"id": len(annotations) + 1, "image_id": img_id, "category_id": idx[b.label],
                                "bbox": [round(b.x1, 2), round(b.y1, 2), round(b.w, 2), round(b.h, 2)],
                                "area": round(b.w * b.h, 2), "iscrowd": 0})
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
                continue
            x, y, w, h = (float(v) for v in a["bbox"])
            out[a["image_id"]].boxes.append(Box(x, y, x + w, y + h, label))
    except (KeyError, TypeError, ValueError) as e:
        raise AnnotationError(f"{src}: malformed COCO JSON ({type(e).__name__}: {e})") from None
    return [sanitize(a, report, src) for a in out.values()]


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


def save_folder(fmt: str, anns: list[ImageAnn], labels: Path,
                names: list[str] | tuple[str, ...] = CLASS_NAMES) -> None:
    """Write annotations as VOC XML files, YOLO txt files or one COCO JSON file."""
    labels = Path(labels)
    if fmt == "coco":
        write_json(labels, to_coco(anns, names))
        return
    for ann in anns:
        stem = Path(ann.file).with_suffix("")
        if fmt == "voc":
            write_voc(ann, labels / f"{stem}.xml")
        elif fmt == "yolo":
            write_yolo(ann, labels / f"{stem}.txt", names)
        else:
            raise ValueError(f"unknown format {fmt!r}; choose from {FORMATS}")


def convert(src_fmt: str, dst_fmt: str, images: str | Path, labels: str | Path, out: str | Path,
            class_map: dict[str, str] | None = None, names: list[str] | tuple[str, ...] = CLASS_NAMES,
            strict: bool = False) -> Report:
    """Convert an annotated folder between VOC, YOLO and COCO; return what was skipped."""
    report = Report()
    anns = load_folder(src_fmt, Path(images), Path(labels), class_map, names, strict, report)
    out = Path(out)
    if dst_fmt == "coco" and out.suffix != ".json":
        out = out / "annotations.json"
    save_folder(dst_fmt, anns, out, names)
    report.warn(f"convert {src_fmt}->{dst_fmt}")
    return report


__all__ = ["Box", "ImageAnn", "Report", "AnnotationError", "read_voc", "write_voc", "read_yolo", "write_yolo",
           "yolo_lines", "yolo_rows", "to_coco", "from_coco", "load_folder", "save_folder", "convert", "sanitize", "map_label",
           "FORMATS", "asdict", "atomic_path"]
