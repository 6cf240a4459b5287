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

    def __getitem__(self, key):
        return key

    def __contains__(self, key) -> bool:
        return True


def parse_source_weights(items: list[str]) -> dict[str, float]:
    """``["LABEL=W", ...]`` -> ``{LABEL: W}``. Raises ValueError on a malformed entry or a weight that is not a
    finite number > 0."""
    out: dict[str, float] = {}
    for it in items:
        label, sep, val = it.rpartition("=")
        try:
            wt = float(val)
        except ValueError:
            wt = float("nan")
        if not sep or not label or not (0 < wt < float("inf")):
            raise ValueError(f"--source-weight {it!r}: expected LABEL=W with a finite weight > 0")
        out[label] = wt
    return out


class SourceIndex:
    """The source VOC labels of the built images of one split: ``labels(image, boxes)`` names each box.

    ``spec`` / ``split``: the build (its provenance file ``meta/<split>.jsonl`` gives each built image's
    ``origin``); the VOC file of an image is ``<data_root>/<origin folder>/../annotations/<stem>.xml``. Boxes are
    matched to the VOC box of highest IoU, scaled from the VOC ``<size>`` to the built image's ``size``.

    Raises FileNotFoundError naming the provenance file or the data root when missing.
    """

    def __init__(self, spec: str | Path, split: str, data_root: str | Path | None = None, min_iou: float = 0.5,
                 missing_ok: bool = False) -> None:
        from facewear.data.layout import load_spec, split_paths

        self.spec_path = Path(spec)
        s = load_spec(self.spec_path)
        self.names = [s["names"][i] for i in sorted(s["names"])]
        self.images, self.labels_dir, self.meta_file = split_paths(s, split)
        if not self.meta_file.is_file():
            raise FileNotFoundError(f"{self.meta_file}: provenance file of {spec} not found "
                                    "(run `facewear data build`)")
        self.origin: dict[str, str] = {}
        for n, line in enumerate(self.meta_file.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                m = json.loads(line)
                self.origin[m["file"]] = m.get("origin", "") or ""
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(f"{self.meta_file}:{n}: not a provenance record with a 'file' ({e})") from None
        root = Path(data_root) if data_root else default_data_root()
        if root is None or not root.is_dir():
            raise FileNotFoundError(f"{root or '../shared/data'}: data root not found (set FACEWEAR_DATA or "
                                    "pass it)")
        self.root, self.min_iou, self.missing_ok = root, min_iou, missing_ok
        self._voc: dict[str, tuple[np.ndarray, list[str]] | None] = {}

    def _source(self, image: str, size: tuple[int, int]) -> tuple[np.ndarray, list[str]] | None:
        if image not in self._voc:
            src = self.origin.get(image)
            if not src and not self.missing_ok:
                raise FileNotFoundError(f"{self.meta_file}: no provenance (origin) for {image}")
            xml = self.root / Path(src or ".").parent.parent / "annotations" / (Path(src or "_").stem + ".xml")
            if not src or not xml.is_file():
                if not self.missing_ok:
                    raise FileNotFoundError(f"{xml}: source annotation of {image} not found")
                self._voc[image] = None
            else:
                voc = read_voc(xml, class_map=_Identity())
                sx, sy = size[0] / max(voc.width, 1), size[1] / max(voc.height, 1)
                xyxy = np.array([[b.x1 * sx, b.y1 * sy, b.x2 * sx, b.y2 * sy] for b in voc.boxes], np.float64)
                self._voc[image] = (xyxy.reshape(-1, 4), [b.label for b in voc.boxes])
        return self._voc[image]

    def image_labels(self, image: str) -> tuple[np.ndarray, list[str]]:
        """The built image's own boxes ((K, 4) ``x1, y1, x2, y2`` pixels, from its YOLO label file, in file order)
        and the source label of each (:meth:`labels`)."""
        w, h = image_size(self.images / image)
        ann = read_yolo(self.labels_dir / (Path(image).stem + ".txt"), w, h, names=self.names, file=image)
        xyxy = np.array([b.xyxy() for b in ann.boxes], np.float64).reshape(-1, 4)
        return xyxy, (self.labels(image, xyxy, (w, h)) if len(xyxy) else [])

    def labels(self, image: str, boxes: np.ndarray, size: tuple[int, int] | None = None) -> list[str]:
        """The source label of each of ``boxes`` ((K, 4) ``x1, y1, x2, y2`` pixels of the built image ``image``,
        a file name in the split; ``size`` (w, h), read from the image when None): the matched VOC box's label,
        :data:`UNMATCHED` below ``min_iou``, :data:`NO_SOURCE` (with ``missing_ok``) when the photo has no VOC
        file. Raises FileNotFoundError (without ``missing_ok``) when it has none."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        src = self._source(image, size or image_size(self.images / image))
        if src is None:
            return [NO_SOURCE] * len(boxes)
        theirs, names = src
        if not len(theirs):
            return [UNMATCHED] * len(boxes)
        iou = iou_matrix(boxes, theirs)
        best = iou.argmax(1)
        return [names[j] if iou[i, j] >= self.min_iou else UNMATCHED for i, j in enumerate(best)]


def source_labels(crops: str | Path, split: str = "heldout-real", spec: str | Path | None = None,
                  data_root: str | Path | None = None, min_iou: float = 0.5, spec_split: str | None = None,
                  missing_ok: bool = False) -> dict[str, str]:
    """``{crop file (relative to crops): source label}`` for every crop of ``split`` in ``<crops>/index.csv``.

    Each crop's box (line ``box`` of its image's YOLO label file in split ``spec_split`` of the build that
    ``spec`` names; defaults: ``datasets/ilc-heldout.yaml``, its ``test`` split, else the crop split's name) is
    named by :class:`SourceIndex`. Composited crops are :data:`SYNTHETIC`; with ``missing_ok``, crops of photos
    without a VOC file (sources annotated otherwise) are :data:`NO_SOURCE` instead of an error.

    Raises FileNotFoundError naming the index, the provenance file, the data root or a missing VOC file;
    ValueError when the index has no row of ``split``.
    """
    from facewear.data.layout import load_spec

    crops = Path(crops)
    index = crops / "index.csv"
    if not index.is_file():
        raise FileNotFoundError(f"{index}: crop index not found (run `facewear data crops` first)")
    with index.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == split]
    if not rows:
        raise ValueError(f"{index}: no crop of split {split!r}")
    spec_path = Path(spec) if spec else DATASETS_DIR / "ilc-heldout.yaml"
    if spec_split is None:
        spec_split = "test" if split.startswith("heldout") and "test" in load_spec(spec_path) else split
    idx = SourceIndex(spec_path, spec_split, data_root, min_iou, missing_ok)

    out: dict[str, str] = {}
    ours: dict[str, tuple[np.ndarray, list[str]]] = {}
    for r in rows:
        img = r["image"]
        if r.get("synthetic") == "1":
            out[r["file"]] = SYNTHETIC
            continue
        if img not in ours:
            ours[img] = idx.image_labels(img)
        xyxy, names = ours[img]
        i = int(r["box"])
        # the index must describe the build it is read against: box i of the label file, of the recorded size
        if i >= len(xyxy) or abs((xyxy[i, 2] - xyxy[i, 0]) - float(r["w"])) > 1.0 \
                or abs((xyxy[i, 3] - xyxy[i, 1]) - float(r["h"])) > 1.0:
            raise ValueError(f"{index}: crop {r['file']} does not match box {i} of {idx.labels_dir / img}; the crops "
                             "are older than the build (rerun `facewear data crops`)")
        out[r["file"]] = names[i]
    return out
