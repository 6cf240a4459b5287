"""Image, video and file IO shared by every package.

Images come back as ``uint8`` BGR arrays (OpenCV's convention) whatever the
file holds: 16-bit, paletted, RGBA or grayscale, with EXIF orientation
applied. Every writer is atomic: it writes a temporary file beside the
target and renames it into place.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .constants import IMAGE_SUFFIXES, REPO_ROOT, default_data_root


class ImageReadError(ValueError):
    """An image file that cannot be decoded; the message names the file."""


class OverwriteError(ValueError):
    """An output path that is one of the command's inputs; the message names both."""


def _too_many_pixels(path: Path, w: int, h: int) -> None:
    """Raise :class:`ImageReadError` when ``w x h`` is above Pillow's decompression-bomb limit."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit and w * h > limit:
        raise ImageReadError(f"{path}: {w}x{h} = {w * h} pixels is above the decompression-bomb limit of "
                             f"{limit} pixels (PIL.Image.MAX_IMAGE_PIXELS)")


# ultralytics patches PIL.Image.open: on a file Pillow cannot identify it tries to load the
# optional HEIF plugin (pi-heif) and, offline and without it, raises ImportError instead of
# UnidentifiedImageError. Both mean "not an image we can read" here, hence ImportError below.


def _to_uint8_rgb(im: Image.Image) -> np.ndarray:
    """Convert any PIL mode to an HxWx3 uint8 RGB array."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        if mode == "F":
            hi = max(float(arr.max()), 1.0)
        arr = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(bg, rgba).convert("RGB"))
    return np.asarray(im.convert("RGB"))


def read_image(path: str | os.PathLike, *, rgb: bool = False) -> np.ndarray:
    """Read an image as uint8 BGR (or RGB), applying EXIF orientation.

    Raises :class:`ImageReadError` naming the file when it cannot be decoded.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                _too_many_pixels(path, *im.size)  # before decoding: never allocate a bomb's pixels
                im.load()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    im = ImageOps.exif_transpose(im)
                arr = _to_uint8_rgb(im)
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found") from None
    except ImageReadError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageReadError(f"{path}: too many pixels ({e})") from None
    except MemoryError:
        raise ImageReadError(f"{path}: not enough memory to decode this image") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, ImportError) as e:
        raise ImageReadError(f"{path}: not a readable image ({e})") from None
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageReadError(f"{path}: empty image")
    return np.ascontiguousarray(arr if rgb else arr[..., ::-1])


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) after EXIF orientation, without decoding pixels.

    Raises :class:`ImageReadError` naming the file when it cannot be opened, or when its pixel count is above
    Pillow's decompression-bomb limit (the same images :func:`read_image` refuses)."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                try:
                    orient = im.getexif().get(0x0112, 1)
                except Exception:  # noqa: BLE001 - a broken EXIF block: read the pixels as stored
                    orient = 1
    except Image.DecompressionBombError as e:
        raise ImageReadError(f"{path}: too many pixels ({e})") from None
    except (UnidentifiedImageError, OSError, ImportError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"{path}: not a readable image ({e})") from None
    _too_many_pixels(path, w, h)
    return (h, w) if orient in (5, 6, 7, 8) else (w, h)


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` name the same file (resolved paths, or the same inode when both exist)."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def is_within(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """True when ``path`` is ``folder`` or lies below it (after resolving links and ``..``)."""
    p, f = Path(path).resolve(), Path(folder).resolve()
    return p == f or f in p.parents


def check_not_inputs(outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike],
                     option: str = "output") -> None:
    """Refuse to write over a file the command reads.

    Raises :class:`OverwriteError` naming the first ``output`` that is the same file as one of ``inputs``
    (``option`` names the command-line option that chose it). Called before anything is written, so a refused
    run leaves every file as it was.
    """
    ins = [Path(p) for p in inputs]
    resolved = {p.resolve(): p for p in ins}
    for out in outputs:
        o = Path(out)
        hit = resolved.get(o.resolve())
        if hit is None and o.exists():
            hit = next((i for i in ins if i.exists() and same_file(o, i)), None)
        if hit is not None:
            raise OverwriteError(f"{o}: {option} would overwrite the input {hit}; facewear never writes over a "
                                 f"file it reads: choose another {option}")


def check_dir_apart(out_dir: str | os.PathLike, inputs: Iterable[str | os.PathLike], option: str = "--out") -> None:
    """Refuse a folder that will be written or replaced as a whole (:func:`atomic_dir`) when it is one of the
    input folders, lies inside one, or holds one: :class:`OverwriteError` names both."""
    for i in inputs:
        if is_within(out_dir, i) or is_within(i, out_dir):
            raise OverwriteError(f"{out_dir}: {option} overlaps the input {i}; facewear never writes over what it "
                                 f"reads: choose a folder apart from the inputs")


def is_image_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Sorted image files directly inside ``folder`` (recursively)."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p))


# --- atomic writers ---------------------------------------------------------------
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(dst: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``dst``; rename it onto ``dst`` on success."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.stem}.", suffix=dst.suffix + ".part", dir=dst.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600; give the final file the usual umask permissions (0644)
    os.chmod(tmp_path, 0o666 & ~_umask())
    try:
        yield tmp_path
        os.replace(tmp_path, dst)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(dst: str | os.PathLike, text: str) -> None:
    """Write ``text`` as UTF-8, atomically."""
    with atomic_path(dst) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_marked_block(path: str | os.PathLike, key: str, body: str, writer: str) -> bool:
    """Replace the text between ``<!-- key:begin -->`` and ``<!-- key:end -->`` in ``path`` (atomically) with a
    do-not-edit line naming ``writer`` and ``body`` (which should end with a newline); False when the file or
    either marker is missing, and then nothing is written."""
    p = Path(path)
    begin, end = f"<!-- {key}:begin -->", f"<!-- {key}:end -->"
    text = p.read_text() if p.is_file() else ""
    if begin not in text or end not in text:
        return False
    block = f"{begin}\n<!-- written by {writer}; do not edit by hand -->\n{body}{end}"
    write_text(p, text[:text.index(begin)] + block + text[text.index(end) + len(end):])
    return True


def portable_path(p: str | os.PathLike) -> str:
    """A path fit for a committed report: relative to the repository when it lies in it, ``$FACEWEAR_DATA/...``
    when it lies in the data root, else unchanged (never this machine's absolute path for those two)."""
    s = os.fspath(p)
    if not os.path.isabs(s):
        return s
    path = Path(s)
    if path.is_relative_to(REPO_ROOT):
        return path.relative_to(REPO_ROOT).as_posix()
    data = default_data_root()
    if data is not None and path.is_relative_to(data):
        return f"$FACEWEAR_DATA/{path.relative_to(data).as_posix()}"
    return s


def portable_paths(obj: Any) -> Any:
    """``obj`` (JSON-like) with every string holding an absolute path under the repository or the data root
    rewritten by :func:`portable_path`, also inside longer strings such as commands."""
    if isinstance(obj, dict):
        return {k: portable_paths(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [portable_paths(v) for v in obj]
    if isinstance(obj, str):
        data = default_data_root()
        for root, new in ((REPO_ROOT, ""), (data, "$FACEWEAR_DATA/")):
            if root is None:
                continue
            if obj in (str(root), f"{root}/"):  # the root itself, e.g. ultralytics' git root
                obj = new.rstrip("/") or "."
            else:
                obj = obj.replace(f"{root}/", new)
        return obj
    return obj


def portable_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, keys: Iterable[str],
                        require: str | None = None) -> Path:
    """Copy the torch checkpoint dict ``src`` to ``dst`` with the entries ``keys`` (training arguments, git
    facts: JSON-like metadata, never tensors) passed through :func:`portable_paths`, so that a released ``.pt``
    names no directory of the machine that trained it. Weights and every other entry are copied unchanged;
    ``src`` is never modified and ``dst`` is written atomically. Keys missing from the checkpoint are skipped.

    Raises FileNotFoundError when ``src`` is missing, ValueError when it is not a dict checkpoint or lacks the
    entry ``require``.
    """
    import torch

    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise FileNotFoundError(f"{src}: checkpoint not found")
    ckpt = torch.load(src, map_location="cpu", weights_only=False)  # our own training output, not user input
    if not isinstance(ckpt, dict) or (require is not None and not isinstance(ckpt.get(require), dict)):
        raise ValueError(f"{src}: not a checkpoint dict with {require or 'entries'}")
    for k in keys:
        if k in ckpt:
            ckpt[k] = portable_paths(ckpt[k])
    with atomic_path(dst) as tmp:
        torch.save(ckpt, tmp)
    return dst


def write_box_csv(path: str | os.PathLike, rows: Iterable[dict[str, Any]], fields: tuple[str, ...] | list[str],
                  header: str = "") -> None:
    """Write a reviewed-box CSV (label corrections, reviewed real labels) atomically: ``header`` as ``# `` comment
    lines, then ``fields`` as columns, rows sorted by source, image and box (stable diffs)."""
    rows = sorted(rows, key=lambda r: (r["source"], r["image"], float(r["x1"]), float(r["y1"])))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        if header:
            f.write("".join(f"# {ln}\n" for ln in header.splitlines()))
        wr = csv.DictWriter(f, fieldnames=list(fields))
        wr.writeheader()
        for r in rows:
            wr.writerow({k: r.get(k, "") for k in fields})


def read_commented_csv(path: str | os.PathLike) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """``(columns, [(line number in the file, row), ...])`` of a CSV whose ``#`` lines are comments, so that
    errors can name the file's own line."""
    with open(path, newline="") as f:
        kept = [(n, text) for n, text in enumerate(f, 1) if not text.startswith("#")]
    rows = csv.DictReader(text for _, text in kept)
    out = [(kept[rows.line_num - 1][0], r) for r in rows]
    return list(rows.fieldnames or []), out


def sha256_file(path: str | os.PathLike, bar: Any = None) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (``bar``: a tqdm bar updated by bytes)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            if bar is not None:
                bar.update(len(chunk))
    return h.hexdigest()


def write_json(dst: str | os.PathLike, obj: Any, indent: int | None = 1) -> None:
    """Write ``obj`` as JSON (non-ASCII escaped, so any reader decodes it), atomically."""
    write_text(dst, json.dumps(obj, indent=indent) + "\n")


def read_report_json(path: str | os.PathLike, writer: str, fields: Iterable[str],
                     same: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON report an earlier run of ``writer`` (a tool, for the messages) wrote, to be merged into a new one.

    ``fields`` must all be present; each ``same`` key must hold that value (the machine, data or input size the
    new rows are measured with), since rows measured under other conditions cannot share one table. Raises
    SystemExit naming ``path`` and the problem (unreadable, not that tool's JSON, or measured differently)."""
    try:
        saved = json.loads(Path(path).read_text())
        if not isinstance(saved, dict):
            raise TypeError(f"a JSON {type(saved).__name__}, not an object")
        missing = [k for k in fields if k not in saved]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError) as e:
        raise SystemExit(f"{path}: not a JSON written by {writer} ({e!r})") from None
    if missing:
        raise SystemExit(f"{path}: not a JSON written by {writer} (no {', '.join(missing)})")
    for key, want in (same or {}).items():
        if saved.get(key) != want:
            raise SystemExit(f"{path}: measured with {key} {saved.get(key)!r}, not {want!r}: rows cannot be joined")
    return saved


def write_image(dst: str | os.PathLike, bgr: np.ndarray, quality: int = 92) -> None:
    """Write a BGR image atomically; format from the suffix."""
    dst = Path(dst)
    ext = dst.suffix.lower() or ".jpg"
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, bgr, params)
    if not ok:
        raise ValueError(f"{dst}: could not encode image")
    with atomic_path(dst) as tmp:
        tmp.write_bytes(buf.tobytes())


@contextlib.contextmanager
def atomic_dir(dst: str | os.PathLike) -> Iterator[Path]:
    """Build a folder under a temporary name and swap it into place on success.

    An interrupted build leaves only ``<dst>.partial-*``, never a folder at
    ``dst`` that looks complete. The previous ``dst`` is replaced only after
    the new one is fully written.
    """
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{dst.name}.partial-", dir=dst.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700; use the usual umask permissions (0755)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if dst.exists():
        old = dst.with_name(f"{dst.name}.old-{os.getpid()}")
        os.replace(dst, old)
    os.replace(tmp, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
