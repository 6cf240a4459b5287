"""``facewear data pack``: a built dataset as tar shards of a chosen size, with a checksum list, to move it in pieces
(to a GPU machine, say) and restore it there with ``facewear data unpack`` (:mod:`facewear.data.unpack`).

What goes in: every split of the spec (``--data``, default ``datasets/facewear4.yaml``) that is one images folder:
its images, their YOLO labels, ``meta/<split>.jsonl`` and ``coco/<split>.json`` when present, under the same paths
relative to the dataset root. A split that shares its folder with another (held-out ``val`` == ``test``) is packed
once. With ``--imgsz N`` each image whose longer side is above N is resized to N on that side (area interpolation,
JPEG quality ``--quality``), the training size: the YOLO labels are normalised, so they stay valid as they are,
and the COCO ground truth is rescaled with its image; smaller images go in byte for byte. With ``--reencode``
every JPEG that is not shrunk is re-encoded at ``--quality`` as well, when that makes it smaller (a smaller pack
for a transfer of limited size; the pixels change, sizes and labels do not). ``meta`` is provenance about the raw
files and is kept as it is.

What comes out, in ``--out`` (a new folder; an existing one is refused)::

    <name>-00000.tar ...   uncompressed tar shards, each at most --shard-size (a file larger than that goes alone
                           in one shard); an image and its label file always share a shard
    SHA256SUMS             the checksum list, one ``<sha256>  <shard>`` line per shard (``sha256sum -c SHA256SUMS``)
    manifest.json          format, source spec, splits and names, --imgsz, --quality (when used), --reencode, per
                           images folder its counts (images, labels, resized, reencoded), and per shard its size,
                           checksum, files

Shards are deterministic (members sorted, mtime 0, owner root): the same dataset and options give the same
checksums. The folder is written under a temporary name and renamed into place when complete.
"""
from __future__ import annotations

import argparse
import io
import json
import re
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..constants import DATASETS_DIR
from ..io import atomic_dir, list_images, read_image, sha256_file, write_json, write_text
from .layout import load_spec, split_paths

FORMAT = "facewear-pack/1"
MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
SPLITS: tuple[str, ...] = ("train", "val", "test")
DEFAULT_SHARD_SIZE = "64MB"
_BLOCK = 512
_RECORD = 20 * _BLOCK  # tarfile pads an archive to a multiple of this
_UNITS = {"": 1, "B": 1, "K": 10**3, "KB": 10**3, "M": 10**6, "MB": 10**6, "G": 10**9, "GB": 10**9,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_size(text: str | int) -> int:
    """Bytes from ``64MB``, ``1.5GB``, ``500K``, ``256MiB`` or a plain number (K/M/G are powers of 1000, KiB/MiB/GiB
    of 1024); :class:`ValueError` names the text otherwise."""
    if isinstance(text, int):
        n = text
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
        unit = m.group(2).upper() if m else None
        if not m or unit not in _UNITS:
            raise ValueError(f"--shard-size {text!r}: expected a size such as 64MB, 1.5GB, 500KB or 256MiB")
        n = int(float(m.group(1)) * _UNITS[unit])
    if n < 2 * _RECORD:
        raise ValueError(f"--shard-size {text!r}: at least {2 * _RECORD} bytes")
    return n


def _tar_bytes(size: int) -> int:
    """Bytes a member of ``size`` bytes takes in a tar: a header block plus the data padded to whole blocks (a PAX
    header for a long name adds a little: :func:`_pack_items` leaves a record of room for it)."""
    return _BLOCK + -(-size // _BLOCK) * _BLOCK


@dataclass
class _Member:
    arcname: str  # path inside the dataset root (posix)
    src: Path | None = None  # a file copied byte for byte
    data: bytes | None = None  # or new content (a resized image, a rescaled COCO file)

    def size(self) -> int:
        return len(self.data) if self.data is not None else self.src.stat().st_size

    def payload(self) -> bytes:
        return self.data if self.data is not None else self.src.read_bytes()


def _rel(path: Path, root: Path, what: str) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        raise ValueError(f"{path}: {what} lies outside the dataset root {root}; pack needs one folder") from None


def _resized(path: Path, imgsz: int | None, quality: int,
             reencode: bool = False) -> tuple[bytes, float, tuple[int, int], bool] | None:
    """``(encoded bytes, scale, (w, h), shrunk)`` of the image shrunk to ``imgsz`` on its longer side (``scale``:
    ``imgsz`` / the longer side), or ``None`` when it is not larger than that (it is then packed as it is). With
    ``reencode`` a JPEG that is not shrunk is re-encoded at ``quality`` (scale 1.0, ``shrunk`` False), unless that
    would not make it smaller (``None`` then too)."""
    import cv2

    from ..io import image_size

    ext = path.suffix.lower()
    jpeg = ext in (".jpg", ".jpeg")
    w, h = image_size(path)
    shrink = bool(imgsz) and max(w, h) > imgsz
    if not shrink and not (reencode and jpeg):
        return None
    img = read_image(path)
    h, w = img.shape[:2]
    r = imgsz / max(w, h) if shrink else 1.0
    nw, nh = (max(1, round(w * r)), max(1, round(h * r))) if shrink else (w, h)
    small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA) if shrink else img
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if jpeg else []
    ok, buf = cv2.imencode(ext if ext in (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff") else ".jpg",
                           small, params)
    if not ok:
        raise ValueError(f"{path}: could not encode the resized image")
    if not shrink and buf.size >= path.stat().st_size:  # re-encoding would not save anything: keep the original
        return None
    return buf.tobytes(), r, (nw, nh), shrink


def _rescale_coco(coco_path: Path, scales: dict[str, tuple[float, tuple[int, int]]]) -> bytes:
    """The COCO file with each resized image's size, boxes, areas and polygons scaled by its factor."""
    d = json.loads(coco_path.read_text(encoding="utf-8"))
    by_id: dict[Any, float] = {}
    for im in d.get("images", []):
        s = scales.get(im["file_name"])
        if s is not None:
            by_id[im["id"]] = s[0]
            im["width"], im["height"] = s[1]
    for a in d.get("annotations", []):
        f = by_id.get(a["image_id"])
        if f is None:
            continue
        a["bbox"] = [round(v * f, 2) for v in a["bbox"]]
        if "area" in a:
            a["area"] = round(a["area"] * f * f, 2)
        if isinstance(a.get("segmentation"), list):
            a["segmentation"] = [[round(v * f, 2) for v in poly] for poly in a["segmentation"]]
    return (json.dumps(d, indent=1) + "\n").encode()


def _split_folders(spec: dict) -> list[tuple[list[str], str]]:
    """``[(split names, images folder value)]``: each one-folder split once (``val`` == ``test`` share one)."""
    seen: dict[str, list[str]] = {}
    for s in SPLITS:
        v = spec.get(s)
        if isinstance(v, str) and not v.endswith(".txt"):
            seen.setdefault(str(Path(v)), []).append(s)
    if not seen:
        raise ValueError(f"{spec['yaml_file']}: no split is one images folder (train/val/test); pack reads folders")
    return [(names, v) for v, names in seen.items()]


def _plan(spec: dict, imgsz: int | None, quality: int, scratch: Path, bar: Any,
          reencode: bool = False) -> tuple[list[list[_Member]], dict]:
    """Groups of members (an image and its label; a split's meta or COCO file) and the splits' summary. Shrunk
    (or re-encoded) images are written under ``scratch`` (not kept in memory)."""
    root = Path(spec["path"]).resolve()
    groups: list[list[_Member]] = []
    splits: dict[str, Any] = {}
    for names, value in _split_folders(spec):
        images, labels, meta = split_paths(spec, names[0])
        files = list_images(images)
        if not files:
            raise FileNotFoundError(f"{images}: split {names[0]!r} of {spec['yaml_file']} holds no images")
        bar.reset(total=len(files))
        bar.set_description(f"pack {names[0]}")
        scales: dict[str, tuple[float, tuple[int, int]]] = {}
        n_labels = resized = reencoded = 0
        for f in files:
            rel = f.relative_to(images)
            img = _Member(_rel(f, root, "image"), src=f)
            if imgsz or reencode:
                r = _resized(f, imgsz, quality, reencode)
                if r is not None:
                    img.src = scratch / img.arcname
                    img.src.parent.mkdir(parents=True, exist_ok=True)
                    img.src.write_bytes(r[0])
                    if r[3]:
                        scales[rel.as_posix()] = (r[1], r[2])
                        resized += 1
                    else:
                        reencoded += 1
            group = [img]
            lab = (labels / rel).with_suffix(".txt")
            if lab.is_file():
                group.append(_Member(_rel(lab, root, "label file"), src=lab))
                n_labels += 1
            groups.append(group)
            bar.update(1)
        if meta.is_file():
            groups.append([_Member(_rel(meta, root, "meta file"), src=meta)])
        coco = root / "coco" / f"{Path(value).name}.json"
        if coco.is_file():
            groups.append([_Member(_rel(coco, root, "COCO file"),
                                   data=_rescale_coco(coco, scales) if scales else None, src=coco)])
        for s in names:
            splits[s] = value
        splits.setdefault("_counts", {})[Path(value).as_posix()] = {
            "images": len(files), "labels": n_labels, "resized": resized, "reencoded": reencoded,
            "meta": meta.is_file(), "coco": coco.is_file()}
    return groups, splits


def _shards(groups: list[list[_Member]], limit: int) -> list[list[_Member]]:
    """Fill shards in order, a group never split; a shard closes when the next group would pass ``limit``."""
    out: list[list[_Member]] = []
    cur: list[_Member] = []
    used = 2 * _BLOCK + _RECORD  # end-of-archive blocks, record padding and room for PAX headers
    for g in groups:
        need = sum(_tar_bytes(m.size()) for m in g)
        if cur and used + need > limit:
            out.append(cur)
            cur, used = [], 2 * _BLOCK + _RECORD
        cur.extend(g)
        used += need
    if cur:
        out.append(cur)
    return out


def _write_shard(path: Path, members: list[_Member], bar: Any) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            data = m.payload()
            info = tarfile.TarInfo(m.arcname)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
            bar.update(1)


def pack(data: str | Path = DATASETS_DIR / "facewear4.yaml", out: str | Path | None = None,
         shard_size: str | int = DEFAULT_SHARD_SIZE, imgsz: int | None = None, quality: int = 95,
         reencode: bool = False, progress: bool = True) -> dict:
    """Pack the dataset of spec ``data`` into ``out`` (a new folder): tar shards of at most ``shard_size`` bytes,
    ``SHA256SUMS`` and ``manifest.json``; with ``imgsz`` images are shrunk to that longer side first, and with
    ``reencode`` every other JPEG is re-encoded at ``quality`` (a smaller pack for a size-limited transfer). Returns
    the manifest. :class:`ValueError` when ``out`` exists or lies inside the dataset, or an option is wrong."""
    from tqdm import tqdm

    if out is None:
        raise ValueError("--out is required: a new folder for the shards")
    limit = parse_size(shard_size)
    if imgsz is not None and imgsz < 32:
        raise ValueError(f"--imgsz must be at least 32 (got {imgsz})")
    if not 1 <= quality <= 100:
        raise ValueError(f"--quality must be in 1..100 (got {quality})")
    spec = load_spec(data)
    root = Path(spec["path"]).resolve()
    out = Path(out)
    if out.exists() or out.is_symlink():
        raise ValueError(f"{out}: already exists; pack never overwrites: remove it or choose another --out")
    if out.resolve().is_relative_to(root):
        raise ValueError(f"{out}: inside the dataset being packed ({root}); choose an --out outside it")
    name = Path(spec["yaml_file"]).stem
    extra = {k: v for k, v in spec.items() if k not in ("path", "yaml_file", "names", *SPLITS)}
    with atomic_dir(out) as tmp:
        scratch = tmp / ".resized"
        with tqdm(desc="pack", unit="file", disable=not progress, dynamic_ncols=True) as bar:
            groups, splits = _plan(spec, imgsz, quality, scratch, bar, reencode)
        counts = splits.pop("_counts")
        shards = _shards(groups, limit)
        width = max(5, len(str(len(shards) - 1)))
        manifest: dict[str, Any] = {
            "format": FORMAT, "name": name, "source": str(Path(data)), "imgsz": imgsz,
            "quality": quality if imgsz or reencode else None, "reencode": reencode, "shard_size": limit,
            "splits": splits, "folders": counts, "names": [spec["names"][i] for i in sorted(spec["names"])],
            "extra": extra, "files": sum(len(s) for s in shards), "shards": []}
        bar = tqdm(desc="write shards", unit="file", total=manifest["files"], disable=not progress,
                   dynamic_ncols=True)
        for i, members in enumerate(shards):
            fname = f"{name}-{i:0{width}d}.tar"
            _write_shard(tmp / fname, members, bar)
            manifest["shards"].append({"file": fname, "bytes": (tmp / fname).stat().st_size,
                                       "sha256": sha256_file(tmp / fname), "files": len(members)})
        manifest["bytes"] = sum(s["bytes"] for s in manifest["shards"])
        write_text(tmp / SUMS, "".join(f"{s['sha256']}  {s['file']}\n" for s in manifest["shards"]))
        write_json(tmp / MANIFEST, manifest)
        bar.close()
        shutil.rmtree(scratch, ignore_errors=True)
    big = max(s["bytes"] for s in manifest["shards"])
    print(f"packed {manifest['files']} files of {spec['yaml_file']} into {len(shards)} shard(s) in {out} "
          f"({manifest['bytes'] / 1e6:.1f} MB, largest shard {big / 1e6:.1f} MB"
          + (f", images shrunk to {imgsz} px: {sum(c['resized'] for c in counts.values())}" if imgsz else "")
          + (f", JPEGs re-encoded at quality {quality}: {sum(c['reencoded'] for c in counts.values())}"
             if reencode else "")
          + f")\n  check: (cd {out} && sha256sum -c {SUMS}); restore: facewear data unpack {out} --out DIR")
    return manifest


run = pack


def add_args(p: argparse.ArgumentParser) -> None:
    """``facewear data pack`` options (the keyword arguments of :func:`pack`)."""
    p.add_argument("--data", default=str(DATASETS_DIR / "facewear4.yaml"),
                   help="spec of the built dataset (default datasets/facewear4.yaml)")
    p.add_argument("--out", required=True, help="new folder for the shards, SHA256SUMS and manifest.json "
                   "(an existing one is refused)")
    p.add_argument("--shard-size", default=DEFAULT_SHARD_SIZE,
                   help=f"largest shard: 64MB, 1GB, 256MiB ... (default {DEFAULT_SHARD_SIZE}); a single larger "
                        "file goes alone in one shard")
    p.add_argument("--imgsz", type=int, default=None,
                   help="shrink images to this longer side first, the training size (labels stay valid; COCO "
                        "boxes are rescaled); default: images as they are")
    p.add_argument("--quality", type=int, default=95,
                   help="JPEG quality of shrunk (and, with --reencode, re-encoded) images (default 95)")
    p.add_argument("--reencode", action="store_true",
                   help="re-encode every JPEG that is not shrunk at --quality too, when that makes it smaller: a "
                        "smaller pack (e.g. --quality 75 is about 2/3 of the size of this dataset's images) for a "
                        "size-limited transfer")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


__all__ = ["FORMAT", "MANIFEST", "SUMS", "add_args", "pack", "parse_size", "run"]
