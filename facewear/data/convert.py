"""``facewear data convert``: Pascal VOC <-> YOLO txt <-> COCO JSON, with a class map."""
from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from ..constants import CLASS_NAMES
from ..formats import FORMATS, Report, convert

DEFAULT_NAMES = ",".join(CLASS_NAMES)  # class names in id order, as --names takes them


def parse_class_map(spec: str | None) -> dict[str, str] | None:
    """``"a=face,b=mask"`` or a YAML file mapping source names to target names."""
    if not spec:
        return None
    p = Path(spec)
    if p.suffix in (".yaml", ".yml", ".json") and p.is_file():
        data = yaml.safe_load(p.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{p}: class map must be a mapping of source name -> target name")
        return {str(k): str(v) for k, v in data.items()}
    out = {}
    for item in spec.split(","):
        if "=" not in item:
            raise ValueError(f"class map entry {item!r} must look like source=target")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def add_args(p: argparse.ArgumentParser) -> None:
    """``facewear data convert`` options (the keyword arguments of :func:`run`)."""
    p.add_argument("--from", dest="src_fmt", choices=FORMATS, required=True, help="input format")
    p.add_argument("--to", dest="dst_fmt", choices=FORMATS, required=True, help="output format")
    p.add_argument("--images", required=True, help="folder of images")
    p.add_argument("--labels", required=True, help="input labels: folder (voc, yolo) or JSON file (coco)")
    p.add_argument("--out", required=True, help="output labels: folder (voc, yolo) or JSON file (coco); "
                   "never an input (an --out that would replace an input file is refused)")
    p.add_argument("--class-map", default=None,
                   help="source=target pairs ('with_mask=mask,without_mask=face') or a YAML file; "
                        "default maps the public sets' names onto the four classes")
    p.add_argument("--names", default=DEFAULT_NAMES, help="class names in id order (YOLO ids)")
    p.add_argument("--strict", action="store_true", help="stop at the first bad file instead of skipping it")


def run(src_fmt: str, dst_fmt: str, images: str, labels: str, out: str, class_map: str | dict | None = None,
        names: str | list[str] = DEFAULT_NAMES, strict: bool = False) -> Report:
    """Convert a labelled folder; returns a :class:`~facewear.formats.Report` of what was clipped or skipped."""
    cmap = parse_class_map(class_map) if isinstance(class_map, str) or class_map is None else class_map
    names_l = names.split(",") if isinstance(names, str) else list(names)
    rep = convert(src_fmt, dst_fmt, images, labels, out, cmap, names_l, strict)
    extra = ""
    if rep.duplicates:
        extra += f", removed {rep.duplicates} duplicate(s)"
    if rep.flags_dropped:
        extra += f", left out {rep.flags_dropped} difficult/iscrowd box(es)"
    if rep.files:
        extra += f"; label problems in {len(rep.files)} file(s), listed above"
    print(f"converted {src_fmt} -> {dst_fmt}: {out} (clipped {rep.clipped}, dropped {rep.degenerate} degenerate, "
          f"skipped {len(rep.skipped)} file(s){extra})")
    return rep
