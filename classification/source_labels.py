"""The source dataset's own label of every held-out crop, so that accuracy can be broken down by it.

The build maps source labels onto our four classes (``facewear.constants.SOURCE_CLASS_MAP``): ILC's
``with_mask`` and ``with_incorrect_mask`` (a mask under the nose or chin, on the forehead, hanging from an ear) both
become ``mask``. The crops keep only the mapped class, so a classifier's error on one kind of mask cannot be told
from another. :func:`source_labels` finds each crop's box again in the source VOC file (through the build's
provenance file: ``meta/<split>.jsonl`` ``origin``), and :func:`classification.evaluate.scores_by_group` scores
each source label on its own.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from facewear.boxes import iou_matrix
from facewear.constants import DATASETS_DIR, default_data_root
from facewear.formats import read_voc, read_yolo
from facewear.io import image_size

UNMATCHED = "unmatched"  # the group of a crop whose box has no source box at IoU >= min_iou
NO_SOURCE = "no VOC source"  # with missing_ok: a crop whose source photo has no VOC annotation file
SYNTHETIC = "synthetic"  # a composited crop: its source label no longer describes it


class _Identity(dict):
    """A class map that keeps every source label as it is (``read_voc`` drops labels its map lacks)."""

    def get(self, key, default=None):
        return key


def source_labels(crops: str | Path, split: str = "heldout-real", spec: str | Path | None = None,
                  data_root: str | Path | None = None, min_iou: float = 0.5, spec_split: str | None = None,
                  missing_ok: bool = False) -> dict[str, str]:
    """``{crop file (relative to crops): source label}`` for every crop of ``split`` in ``<crops>/index.csv``.

    Each crop's box (line ``box`` of its image's YOLO label file in split ``spec_split`` of the build that
    ``spec`` names; defaults: ``datasets/ilc-heldout.yaml``, its ``test`` split, else the crop split's name) is
    matched to the box of highest IoU in the source VOC file ``<data_root>/<origin folder>/../annotations/
    <stem>.xml``, scaled from the VOC ``<size>`` to the built image; below ``min_iou`` it is :data:`UNMATCHED`.
    Composited crops are :data:`SYNTHETIC`; with ``missing_ok``, crops of photos without a VOC file (sources
    annotated otherwise) are :data:`NO_SOURCE` instead of an error.

    Raises FileNotFoundError naming the index, the provenance file, the data root or a missing VOC file;
    ValueError when the index has no row of ``split``.
    """
    from facewear.data.layout import load_spec, split_paths

    crops = Path(crops)
    index = crops / "index.csv"
    if not index.is_file():
        raise FileNotFoundError(f"{index}: crop index not found (run `facewear data crops` first)")
    rows = [r for r in csv.DictReader(index.open()) if r["split"] == split]
    if not rows:
        raise ValueError(f"{index}: no crop of split {split!r}")
    spec_path = Path(spec) if spec else DATASETS_DIR / "ilc-heldout.yaml"
    s = load_spec(spec_path)
    if spec_split is None:
        spec_split = "test" if split.startswith("heldout") and "test" in s else split
    images, labels, meta_file = split_paths(s, spec_split)
    if not meta_file.is_file():
        raise FileNotFoundError(f"{meta_file}: provenance file of {spec_path} not found (run `facewear data build`)")
    origin = {}
    for line in meta_file.read_text().splitlines():
        if line.strip():
            m = json.loads(line)
            origin[m["file"]] = m.get("origin", "")
    root = Path(data_root) if data_root else default_data_root()
    if root is None or not root.is_dir():
        raise FileNotFoundError(f"{root or '../shared/data'}: data root not found (set FACEWEAR_DATA or pass it)")

    out: dict[str, str] = {}
    cache: dict[str, tuple[np.ndarray, np.ndarray, list[str]] | None] = {}
    for r in rows:
        img = r["image"]
        if r.get("synthetic") == "1":
            out[r["file"]] = SYNTHETIC
            continue
        if img not in cache:
            built = images / img
            w, h = image_size(built)
            ours = read_yolo(labels / (Path(img).stem + ".txt"), w, h, file=img)
            src = origin.get(img)
            if not src and not missing_ok:
                raise FileNotFoundError(f"{meta_file}: no provenance (origin) for {img}")
            xml = root / Path(src or ".").parent.parent / "annotations" / (Path(src or "_").stem + ".xml")
            if not src or not xml.is_file():
                if missing_ok:
                    out[r["file"]] = NO_SOURCE
                    cache[img] = None
                    continue
                raise FileNotFoundError(f"{xml}: source annotation of {img} not found")
            voc = read_voc(xml, class_map=_Identity())
            sx, sy = w / max(voc.width, 1), h / max(voc.height, 1)
            theirs = np.array([[b.x1 * sx, b.y1 * sy, b.x2 * sx, b.y2 * sy] for b in voc.boxes], np.float64)
            cache[img] = (np.array([b.xyxy() for b in ours.boxes], np.float64).reshape(-1, 4),
                          theirs.reshape(-1, 4), [b.label for b in voc.boxes])
        if cache[img] is None:
            out[r["file"]] = NO_SOURCE
            continue
        ours_xyxy, theirs_xyxy, names = cache[img]
        i = int(r["box"])
        if i >= len(ours_xyxy) or not len(theirs_xyxy):
            out[r["file"]] = UNMATCHED
            continue
        iou = iou_matrix(ours_xyxy[i:i + 1], theirs_xyxy)[0]
        j = int(iou.argmax())
        out[r["file"]] = names[j] if iou[j] >= min_iou else UNMATCHED
    return out
