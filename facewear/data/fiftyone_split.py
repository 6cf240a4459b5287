"""``facewear data inspect``: load one split of a built dataset into FiftyOne and launch the App.

Each sample holds ``ground_truth`` detections (relative ``[x, y, w, h]``
boxes named by the spec), the tag ``real`` or ``synthetic`` and the
provenance fields ``source``, ``origin``, ``group`` and ``overlays`` from
``meta/<split>.jsonl``. The dataset is persistent and re-running replaces it.
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..constants import DATASETS_DIR
from ..formats import yolo_rows
from ..io import list_images
from .layout import load_spec, split_dir, split_paths
from .stats import SPLITS, read_meta_map

if TYPE_CHECKING:  # pragma: no cover
    import fiftyone as fo

LOG = logging.getLogger("facewear")

DEFAULT_SPEC: Path = DATASETS_DIR / "facewear4.yaml"
BATCH = 500


def default_name(spec_path: str | Path, split: str) -> str:
    """FiftyOne dataset name used when none is given: ``facewear-<spec stem>-<split>``."""
    return f"facewear-{Path(spec_path).stem}-{split}"


def _overlay_str(o: Any) -> str:
    """One overlay record as ``kind:overlay`` (or its JSON-ish text)."""
    if isinstance(o, dict):
        return f"{o.get('kind', '?')}:{o.get('overlay', '?')}"
    return str(o)


def build_samples(images: Path, labels: Path, meta: dict[str, dict[str, Any]], names: dict[int, str],
                  files: list[Path]) -> Iterator[Any]:
    """Yield one ``fo.Sample`` per image file (detections, tags and provenance fields)."""
    import fiftyone as fo

    for img in files:
        key = img.relative_to(images).with_suffix("").as_posix()
        rec = meta.get(key, {})
        dets = []
        for c, cx, cy, w, h in yolo_rows(labels / f"{key}.txt"):
            dets.append(fo.Detection(label=names.get(c, str(c)), bounding_box=[cx - w / 2, cy - h / 2, w, h]))
        overlays = rec.get("overlays") or []
        for o in overlays:
            i = o.get("box") if isinstance(o, dict) else None
            if isinstance(i, int) and 0 <= i < len(dets):
                dets[i]["overlay"] = _overlay_str(o)
        yield fo.Sample(
            filepath=str(img.resolve()),
            tags=["synthetic" if rec.get("synthetic") else "real"],
            ground_truth=fo.Detections(detections=dets),
            source=str(rec.get("source") or "unknown"),
            origin=str(rec.get("origin") or ""),
            group=str(rec.get("group") or ""),
            overlays=[_overlay_str(o) for o in overlays],
        )


@dataclass
class SplitSource:
    """Where one split's images, labels and provenance are, resolved from a spec (no FiftyOne involved)."""

    spec_path: Path
    spec: dict[str, Any]
    split: str
    images: Path
    labels: Path
    meta: dict[str, dict[str, Any]]
    files: list[Path]

    @property
    def class_names(self) -> list[str]:
        """The spec's class names in id order."""
        return [self.spec["names"][i] for i in sorted(self.spec["names"])]

    def samples(self) -> Iterator[Any]:
        """One ``fo.Sample`` per image (see :func:`build_samples`)."""
        return build_samples(self.images, self.labels, self.meta, self.spec["names"], self.files)


def resolve_split(data: str | Path | None = None, split: str = "val", max_images: int | None = None) -> SplitSource:
    """Check the spec and split and list its images; errors name the missing file or folder."""
    spec_path = Path(data) if data is not None else DEFAULT_SPEC
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    spec = load_spec(spec_path)  # FileNotFoundError / ValueError naming the spec
    if not spec.get(split):
        raise ValueError(f"{spec_path}: has no split {split!r} "
                         f"(has {[s for s in SPLITS if spec.get(s)]})")
    images = split_dir(spec, split)
    if not images.is_dir():
        raise FileNotFoundError(f"{images}: images folder of split {split!r} not found (spec {spec_path})")
    _, labels, meta_file = split_paths(spec, split)
    if not labels.is_dir():
        LOG.warning("%s: labels folder missing; every image loads without boxes", labels)
    if not meta_file.is_file():
        LOG.warning("%s: provenance file missing; every image is tagged 'real', source 'unknown'", meta_file)
    meta = read_meta_map(meta_file)
    files = list_images(images)
    if max_images is not None:
        if max_images < 0:
            raise ValueError(f"--max-images must be >= 0, got {max_images}")
        files = files[:max_images]
    return SplitSource(spec_path, spec, split, images, labels, meta, files)


def load_split(data: str | Path | None = None, split: str = "val", name: str | None = None,
               max_images: int | None = None) -> fo.Dataset:
    """Build (or replace) the persistent FiftyOne dataset of one split and return it."""
    from tqdm import tqdm

    src = resolve_split(data, split, max_images)
    spec_path, images, files = src.spec_path, src.images, src.files
    name = name or default_name(spec_path, split)

    import fiftyone as fo

    ds = fo.Dataset(name, persistent=True, overwrite=True)
    ds.default_classes = src.class_names
    ds.info = {"spec": str(Path(spec_path).resolve()), "split": split, "root": str(Path(src.spec["path"]))}
    ds.save()
    batch: list[Any] = []
    for sample in tqdm(src.samples(), total=len(files), desc=f"inspect {name}", unit="img"):
        batch.append(sample)
        if len(batch) >= BATCH:
            ds.add_samples(batch, progress=False)
            batch = []
    if batch:
        ds.add_samples(batch, progress=False)
    n_det = ds.count("ground_truth.detections") if len(ds) else 0
    print(f"inspect: dataset {name!r}: {len(ds)} samples, {n_det} boxes ({images})")
    return ds


def serve(ds: fo.Dataset, port: int = 5151, prefix: str = "inspect") -> None:
    """Launch the App on 127.0.0.1:``port`` showing ``ds`` and block until it is closed or Ctrl-C."""
    import fiftyone as fo

    session = fo.launch_app(ds, address="127.0.0.1", port=port, auto=False)
    print(f"{prefix}: FiftyOne App at http://127.0.0.1:{port}/datasets/{quote(ds.name)} (Ctrl-C to stop)")
    try:
        session.wait()
    except KeyboardInterrupt:
        print(f"{prefix}: stopped")
    finally:
        try:
            session.close()
        except Exception:  # noqa: BLE001  # pragma: no cover - closing an already-dead server
            pass


def add_args(p: argparse.ArgumentParser) -> None:
    """The options; their defaults are :func:`run`'s (argparse leaves an option out when it is not given)."""
    d = argparse.SUPPRESS
    p.add_argument("--data", default=d, help="dataset spec YAML (default datasets/facewear4.yaml)")
    p.add_argument("--split", default=d, choices=SPLITS, help="split to load (default val)")
    p.add_argument("--name", default=d, help="FiftyOne dataset name (default facewear-<spec stem>-<split>)")
    p.add_argument("--max-images", type=int, default=d, help="load at most this many images (first by name)")
    p.add_argument("--max-samples", dest="max_images", type=int, default=d,
                   help=argparse.SUPPRESS)  # deprecated spelling of --max-images
    p.add_argument("--no-launch", action="store_true", default=d, help="build the FiftyOne dataset and return")
    p.add_argument("--port", type=int, default=d, help="App port on 127.0.0.1 (default 5151)")


def run(data: str | Path | None = None, split: str = "val", name: str | None = None,
        max_images: int | None = None, no_launch: bool = False, port: int = 5151) -> fo.Dataset:
    """Load the split into FiftyOne; unless ``no_launch``, serve the App until closed or Ctrl-C."""
    ds = load_split(data, split, name, max_images)
    if not no_launch:
        serve(ds, port)
    return ds
