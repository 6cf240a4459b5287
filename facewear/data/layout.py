"""On-disk layout of a built dataset, and YAML dataset specs.

A built dataset is an ultralytics-style folder::

    <root>/images/<split>/<name>.jpg
    <root>/labels/<split>/<name>.txt      YOLO txt, class ids = CLASS_NAMES order
    <root>/coco/<split>.json              COCO detection JSON (file_name relative to images/<split>)
    <root>/meta/<split>.jsonl             one JSON object per image: provenance (see ImageMeta)

A spec (``datasets/*.yaml``) holds ``path`` (relative paths are relative to
the YAML file itself), ``train``/``val``/``test`` (relative to ``path``) and
``names``. :func:`load_spec` resolves ``path`` the way a user expects;
ultralytics would resolve a relative ``path`` against its own datasets
folder instead, so hand ultralytics the output of :func:`resolved_spec_file`.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..constants import CLASS_NAMES
from ..io import write_text


@dataclass
class ImageMeta:
    """Provenance of one image of a built dataset (one line of ``meta/<split>.jsonl``)."""

    file: str  # relative to <root>/images/<split>
    split: str
    source: str  # kaggle-facemask | ytf-landmarks | chandrika-faces | ilc2021-heldout | demo ...
    origin: str  # the raw file this image comes from, relative to the data root
    group: str  # split unit: source photo, identity, or near-duplicate cluster
    synthetic: bool = False
    # [{"box": i, "action": ..., "from": ..., "to": ..., "overlays": [names], "pose": ...}, ...]
    overlays: list[dict[str, Any]] = field(default_factory=list)
    corrections: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


def read_meta_file(path: str | Path) -> list[ImageMeta]:
    """The records of one provenance file (``meta/<split>.jsonl``; blank lines skipped). FileNotFoundError when it
    is missing, ValueError naming the file and line of a record that is not JSON or not an :class:`ImageMeta`."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: provenance file missing (was the dataset built by `facewear data build`?)")
    out = []
    for ln, line in enumerate(p.read_text().splitlines(), 1):
        if line.strip():
            try:
                out.append(ImageMeta(**json.loads(line)))
            except (json.JSONDecodeError, TypeError) as e:
                raise ValueError(f"{p}:{ln}: not a provenance record ({e})") from None
    return out


def read_meta(root: str | Path, split: str) -> list[ImageMeta]:
    """The provenance records of ``split`` of the built dataset at ``root`` (:func:`read_meta_file`)."""
    return read_meta_file(Path(root) / "meta" / f"{split}.jsonl")


def write_spec(spec_path: str | Path, root: str | Path, splits: dict[str, str], names=CLASS_NAMES,
               extra: dict[str, Any] | None = None) -> dict:
    """Write a spec whose ``path`` is relative to the spec file (portable across clones)."""
    spec_path, root = Path(spec_path).resolve(), Path(root).resolve()
    try:
        rel = os.path.relpath(root, spec_path.parent)
    except ValueError:
        rel = str(root)
    spec = {"path": rel, **splits, "names": {i: n for i, n in enumerate(names)}}
    if extra:
        spec.update(extra)
    header = ("# Written by `facewear data build`. `path` is relative to this file;\n"
              "# load with facewear.data.layout.load_spec (or pass this file to any facewear verb).\n")
    write_text(spec_path, header + yaml.safe_dump(spec, sort_keys=False))
    return spec


def load_spec(spec_path: str | Path) -> dict:
    """Load a YAML spec and make ``path`` absolute (relative to the YAML file)."""
    spec_path = Path(spec_path)
    if not spec_path.is_file():
        raise FileNotFoundError(f"{spec_path}: dataset spec not found")
    try:
        spec = yaml.safe_load(spec_path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{spec_path}: not valid YAML ({e})") from None
    if not isinstance(spec, dict) or "names" not in spec:
        raise ValueError(f"{spec_path}: a dataset spec needs at least 'names' and 'path'")
    root = Path(spec.get("path") or ".")
    if not root.is_absolute():
        root = (spec_path.parent / root).resolve()
    spec["path"] = str(root)
    names = spec["names"]
    spec["names"] = {int(k): v for k, v in names.items()} if isinstance(names, dict) else dict(enumerate(names))
    spec["yaml_file"] = str(spec_path.resolve())
    return spec


def split_dir(spec: dict, split: str) -> Path:
    """Absolute images folder of ``split`` in a loaded spec.

    Raises :class:`ValueError` naming the spec when the split is missing or is not one folder (an ultralytics
    ``.txt`` list of images or a list of folders: see :func:`split_image_files`, which ``facewear val`` uses)."""
    if split not in spec:
        has = [k for k in ("train", "val", "test") if k in spec]
        raise ValueError(f"{spec.get('yaml_file', 'spec')}: has no split {split!r} (has {has})")
    value = spec[split]
    if not isinstance(value, (str, os.PathLike)) or str(value).endswith(".txt"):
        raise ValueError(f"{spec.get('yaml_file', 'spec')}: split {split!r} is {value!r}, not one images folder; "
                         f"this command needs a folder (facewear val also reads .txt lists and lists of folders)")
    return Path(spec["path"]) / value


def label_file(image: str | os.PathLike) -> Path:
    """The YOLO label file of an image, by ultralytics' rule: the last ``images`` folder of its path becomes
    ``labels`` and the suffix ``.txt`` (``d/images/val/a.jpg`` -> ``d/labels/val/a.txt``)."""
    p = Path(image)
    parts = list(p.parts)
    idx = max((i for i, q in enumerate(parts[:-1]) if q == "images"), default=None)
    if idx is None:
        return p.with_suffix(".txt")
    parts[idx] = "labels"
    return Path(*parts).with_suffix(".txt")


def split_image_files(spec: dict, split: str) -> list[Path]:
    """Every image of ``split`` in a loaded spec, the ultralytics way: the value is an images folder (searched
    recursively), a ``.txt`` file listing images (``./x`` lines relative to the list's folder, other relative
    lines to the dataset root), one image, or a list of any of those. Paths are relative to ``path``.

    Raises :class:`FileNotFoundError` naming what is missing, :class:`ValueError` when the split is absent."""
    from ..io import is_image_file, list_images

    where = spec.get("yaml_file", "spec")
    if split not in spec:
        raise ValueError(f"{where}: has no split {split!r} (has {[k for k in ('train', 'val', 'test') if k in spec]})")
    root = Path(spec["path"])
    value = spec[split]
    entries = value if isinstance(value, (list, tuple)) else [value]
    files: list[Path] = []
    for e in entries:
        p = Path(str(e))
        p = p if p.is_absolute() else root / p
        if p.is_dir():
            files += list_images(p)
        elif p.is_file() and p.suffix.lower() == ".txt":
            for ln, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                q = Path(line)
                if line.startswith("./"):
                    q = p.parent / line[2:]
                elif not q.is_absolute():
                    q = root / q if (root / q).exists() or not (p.parent / q).exists() else p.parent / q
                if not q.is_file():
                    raise FileNotFoundError(f"{p}:{ln}: image {line!r} not found (looked for {q})")
                files.append(q)
        elif p.is_file() and is_image_file(p):
            files.append(p)
        else:
            raise FileNotFoundError(f"{where}: split {split!r}: {p} is not an images folder, a .txt list or an image")
    return files


def resolved_spec_file(spec_path: str | Path, dst: str | Path | None = None) -> Path:
    """A copy of the spec with an absolute ``path``, for ultralytics (at ``dst``, else a temporary file).

    Training passes a ``dst`` inside its run folder, so ``--resume`` still finds it later.
    """
    spec = load_spec(spec_path)
    spec.pop("yaml_file", None)
    if dst is None:
        fd, tmp = tempfile.mkstemp(prefix=Path(spec_path).stem + ".", suffix=".yaml")
        os.close(fd)
        dst = tmp
    write_text(dst, yaml.safe_dump(spec, sort_keys=False))
    return Path(dst)


def split_paths(spec: dict, split: str) -> tuple[Path, Path, Path]:
    """(images, labels, meta file) of ``split`` in a loaded spec.

    Labels sit where the images path says ``images`` (the ultralytics
    convention); the provenance file is named after the images folder, so
    two split names pointing at one folder (held-out ``val`` == ``test``)
    share their labels and meta.
    """
    images = split_dir(spec, split)
    root = Path(spec["path"])
    rel = Path(str(spec[split]))
    if "images" in rel.parts:
        labels = root.joinpath(*("labels" if p == "images" else p for p in rel.parts))
        meta = root / "meta" / f"{rel.name}.jsonl"
    else:
        labels, meta = root / "labels" / split, root / "meta" / f"{split}.jsonl"
    return images, labels, meta
