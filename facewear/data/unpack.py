"""``facewear data unpack``: restore a dataset packed by ``facewear data pack`` (:mod:`facewear.data.pack`).

Every shard of ``SHA256SUMS`` is checked first (a missing shard, or one whose checksum differs, is an error naming
it; nothing is written then). The files are then extracted into ``--out`` (a new folder, written under a temporary
name and renamed when complete) and a spec is written, ``<out>/<name>.yaml`` unless ``--spec`` says where, whose
``path`` is relative to it: ``facewear train yolo --data <spec>`` trains on it as it is.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any

from ..io import atomic_dir, sha256_file
from .layout import write_spec
from .pack import FORMAT, MANIFEST, SPLITS, SUMS


def read_sums(path: Path) -> dict[str, str]:
    """``{shard file: sha256}`` from a ``sha256sum`` style list."""
    out: dict[str, str] = {}
    for ln, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise ValueError(f"{path}:{ln}: not a '<sha256>  <file>' line: {line!r}")
        out[parts[1].strip().lstrip("*")] = parts[0].lower()
    return out


def verify(src: str | Path, progress: bool = True) -> dict[str, Any]:
    """The manifest of the pack in ``src`` once every shard of its checksum list is present and intact.

    :class:`FileNotFoundError` names a missing shard (or manifest / checksum list), :class:`ValueError` a shard
    whose checksum differs (a corrupt or incomplete copy) or a manifest that does not match the list."""
    from tqdm import tqdm

    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: no such folder (expected the output of facewear data pack)")
    for f in (MANIFEST, SUMS):
        if not (src / f).is_file():
            raise FileNotFoundError(f"{src / f}: missing; is {src} a folder written by facewear data pack?")
    try:
        manifest = json.loads((src / MANIFEST).read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"{src / MANIFEST}: not valid JSON ({e})") from None
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{src / MANIFEST}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    sums = read_sums(src / SUMS)
    listed = [s["file"] for s in manifest["shards"]]
    if sorted(listed) != sorted(sums):
        raise ValueError(f"{src}: {SUMS} lists {sorted(sums)} but {MANIFEST} lists {sorted(listed)}")
    missing = [f for f in listed if not (src / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{src}: shard(s) missing: {', '.join(missing)} (copy every shard listed in {SUMS})")
    total = sum((src / f).stat().st_size for f in listed)
    with tqdm(desc="verify", unit="B", unit_scale=True, total=total, disable=not progress,
              dynamic_ncols=True) as bar:
        for f in listed:
            got = sha256_file(src / f, bar)
            if got != sums[f]:
                raise ValueError(f"{src / f}: checksum mismatch, the shard is corrupt or incomplete (sha256 {got}, "
                                 f"expected {sums[f]} in {SUMS}); copy it again")
    return manifest


def _safe_name(name: str, shard: Path) -> PurePosixPath:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise ValueError(f"{shard}: member {name!r} is not a relative path inside the dataset; refusing it")
    return p


def unpack(src: str | Path, out: str | Path | None = None, spec: str | Path | None = None,
           progress: bool = True) -> Path:
    """Verify and extract the pack in ``src`` into the new folder ``out``; write its spec (``spec``, default
    ``<out>/<name>.yaml``) and return the spec's path. :class:`ValueError` when ``out`` or the spec exists."""
    from tqdm import tqdm

    if out is None:
        raise ValueError("--out is required: a new folder for the dataset")
    src, out = Path(src), Path(out)
    if out.exists() or out.is_symlink():
        raise ValueError(f"{out}: already exists; unpack never overwrites: remove it or choose another --out")
    if spec is not None and Path(spec).exists():
        raise ValueError(f"{spec}: already exists; unpack never overwrites: remove it or choose another --spec")
    manifest = verify(src, progress)
    spec_path = Path(spec) if spec is not None else out / f"{manifest['name']}.yaml"
    n = 0
    with atomic_dir(out) as tmp, tqdm(desc="unpack", unit="file", total=manifest.get("files"),
                                      disable=not progress, dynamic_ncols=True) as bar:
        for s in manifest["shards"]:
            shard = src / s["file"]
            try:
                with tarfile.open(shard, "r:") as tar:
                    for m in tar:
                        rel = _safe_name(m.name, shard)
                        if not m.isfile():
                            raise ValueError(f"{shard}: member {m.name!r} is not a regular file; refusing it")
                        dst = tmp.joinpath(*rel.parts)
                        dst.parent.mkdir(parents=True, exist_ok=True)
                        with tar.extractfile(m) as f, open(dst, "wb") as g:
                            shutil.copyfileobj(f, g)
                        n += 1
                        bar.update(1)
            except tarfile.TarError as e:
                raise ValueError(f"{shard}: not a readable tar shard ({e})") from None
        if n != manifest.get("files", n):
            raise ValueError(f"{src}: the shards hold {n} files, the manifest says {manifest['files']}")
        if spec is None:  # inside the new folder: written with it, atomically
            _write_spec(tmp / spec_path.name, tmp, manifest)
    if spec is not None:
        _write_spec(spec_path, out, manifest)
    print(f"unpacked {n} files from {len(manifest['shards'])} verified shard(s) into {out}"
          + (f" (images at {manifest['imgsz']} px)" if manifest.get("imgsz") else "")
          + f"\n  spec: {spec_path}  (facewear train yolo --data {spec_path})")
    return spec_path


def _write_spec(path: Path, root: Path, manifest: dict) -> None:
    splits = {k: v for k, v in manifest["splits"].items() if k in SPLITS}
    write_spec(path, root, splits, names=manifest["names"], extra=manifest.get("extra") or None)


run = unpack


def add_args(p: argparse.ArgumentParser) -> None:
    """``facewear data unpack`` options (the keyword arguments of :func:`unpack`)."""
    p.add_argument("src", help="folder written by facewear data pack (shards, SHA256SUMS, manifest.json)")
    p.add_argument("--out", required=True, help="new folder for the dataset (an existing one is refused)")
    p.add_argument("--spec", default=None, help="where to write the dataset spec (default <out>/<name>.yaml; "
                   "an existing file is refused)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


__all__ = ["add_args", "read_sums", "run", "unpack", "verify"]
