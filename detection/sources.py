"""Frames from a SOURCE: an image, a folder, a glob, a video, a stream URL or a webcam index.

:func:`open_source` resolves the SOURCE string and returns a :class:`Source`;
iterating it yields :class:`Frame` tuples ``(name, index, image)``:

* ``name`` is the file name relative to SOURCE (for a folder or glob: the path
  below it, ``/``-separated; for a single file: its name; for a stream: the
  URL with any password masked, or ``webcam0``);
* ``index`` is the frame number inside that file (0 for images); for streams
  it counts every frame the reader received, so gaps are frames dropped
  because the consumer was slower than the feed;
* ``image`` is the ``HxWx3 uint8`` BGR frame.

:meth:`Source.items` gives the same frames grouped per file or stream
(:class:`Item`, with ``kind``, ``fps`` and ``total``), which is what
``facewear predict`` uses to open and close one video writer per video.

Unreadable images and non-media files in a folder or glob are skipped with a
warning and listed in :attr:`Source.skipped`, as ``(name, reason)``. A single
video file that cannot be opened raises :class:`ValueError` naming it.

Streams are read by :class:`StreamReader`: a background thread that reads
continuously and keeps only the latest frame, and reconnects with exponential
backoff when the feed drops. Its ``capture_factory`` (default:
:func:`default_capture_factory`, i.e. ``cv2.VideoCapture``) can be replaced
by a fake in tests.
"""
from __future__ import annotations

import glob
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from facewear.constants import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from facewear.io import ImageReadError, read_image

LOG = logging.getLogger("facewear.sources")

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt")
_GLOB_MAGIC = re.compile(r"[*?\[]")


class StreamError(ValueError):
    """A stream or webcam that could not be opened (or re-opened); the message names it."""


class Frame(NamedTuple):
    name: str
    index: int
    image: np.ndarray


@dataclass
class Item:
    """One file or stream of a source; iterate it for its frames."""

    name: str
    kind: str  # "image" | "video" | "stream"
    path: Path | None = None
    fps: float | None = None
    total: int | None = None  # frames, where known
    frames: Callable[[], Iterator[Frame]] = field(default=lambda: iter(()), repr=False)
    reader: StreamReader | None = field(default=None, repr=False)

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()


# --- helpers -----------------------------------------------------------------------------
def is_stream(source: str | os.PathLike) -> bool:
    """True for a webcam index (``"0"``) or a stream URL (``rtsp://``, ``http(s)://`` ...)."""
    s = str(source)
    if s.isdigit() and not Path(s).exists():
        return True
    return "://" in s and s.split("://", 1)[0].lower() in STREAM_SCHEMES


def stream_name(source: str | int) -> str:
    """``webcam0`` for an index, else the URL with any password replaced by ``***``."""
    s = str(source)
    if s.isdigit():
        return f"webcam{int(s)}"
    try:
        parts = urlsplit(s)
        if parts.password:
            netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
            return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        pass
    return s


def default_capture_factory(source: str | int) -> Any:
    """``cv2.VideoCapture`` with open/read timeouts for URLs and a one-frame buffer."""
    import cv2

    if isinstance(source, str):
        try:
            cap = cv2.VideoCapture(source, cv2.CAP_ANY, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 10000,
                                                         cv2.CAP_PROP_READ_TIMEOUT_MSEC, 10000])
        except (cv2.error, TypeError, AttributeError):
            cap = cv2.VideoCapture(source)
    else:
        cap = cv2.VideoCapture(source)
    try:
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
    except Exception:  # noqa: BLE001 - not every backend supports it
        pass
    return cap


def _capture_fps(cap: Any) -> float | None:
    import cv2

    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS))
    except Exception:  # noqa: BLE001 - fakes and odd backends
        return None
    return fps if 0 < fps < 1000 else None


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def _glob_root(pattern: str) -> Path:
    """The leading part of a glob pattern that has no wildcards (names are relative to it)."""
    parts = Path(pattern).parts
    keep = []
    for p in parts:
        if _GLOB_MAGIC.search(p):
            break
        keep.append(p)
    return Path(*keep) if keep else Path(".")


# --- the stream reader ------------------------------------------------------------------
class StreamReader:
    """Read a stream in a background thread, keeping only the newest frame.

    ``read()`` returns the newest frame not yet returned (waiting for one),
    so a slow consumer never falls behind the feed: older frames are dropped
    and counted in :attr:`dropped`. When the feed drops (``read`` fails or
    ``isOpened()`` is false) the thread reconnects after ``backoff`` seconds,
    doubling up to ``max_backoff``; it gives up after ``retries`` consecutive
    failed attempts (an attempt succeeds once it delivers a frame), or when no
    frame arrived for ``timeout`` seconds (``None``: no time limit).
    """

    def __init__(self, source: str | int, capture_factory: Callable[[Any], Any] | None = None, *,
                 backoff: float = 0.5, max_backoff: float = 8.0, retries: int = 10,
                 timeout: float | None = None, name: str | None = None) -> None:
        if backoff <= 0 or max_backoff < backoff:
            raise ValueError(f"backoff must be > 0 and <= max_backoff (got {backoff}, {max_backoff})")
        if retries < 1:
            raise ValueError(f"retries must be >= 1 (got {retries})")
        self.source = source
        self.name = name or stream_name(source)
        self.capture_factory = capture_factory or default_capture_factory
        self.backoff, self.max_backoff, self.retries, self.timeout = backoff, max_backoff, retries, timeout
        self.fps: float | None = None
        self.connects = 0  # successful connections (first one included)
        self.reconnects = 0  # times the feed dropped and we tried again
        self.received = 0  # frames read from the capture
        self.delivered = 0  # frames handed to the consumer
        self.error: str | None = None  # why the reader gave up, if it did
        self._frame: np.ndarray | None = None
        self._seq = -1  # index of self._frame
        self._last_read = -1  # index last handed out
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    # -- consumer side
    @property
    def dropped(self) -> int:
        """Frames received but never handed out (the consumer was slower than the feed)."""
        pending = 1 if self._seq > self._last_read else 0
        return max(self.received - self.delivered - pending, 0)

    def start(self) -> StreamReader:
        """Start the thread and wait until the first frame arrives; :class:`StreamError` if it never does."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"stream:{self.name}", daemon=True)
            self._thread.start()
        while not (self._connected.is_set() or self._done.is_set()):
            self._connected.wait(0.1)
        if not self._connected.is_set():
            self.close()
            raise StreamError(f"{self.name}: could not open stream ({self.error})")
        return self

    def read(self) -> tuple[int, np.ndarray] | None:
        """The newest unseen ``(index, frame)``; ``None`` once the stream has ended for good."""
        with self._cond:
            while self._seq <= self._last_read:
                if self._done.is_set() or self._stop.is_set():
                    return None
                self._cond.wait(0.1)  # short waits keep Ctrl-C responsive
            self._last_read = self._seq
            self.delivered += 1
            return self._seq, self._frame

    def close(self, wait: float = 2.0) -> None:
        """Stop the thread (it may be blocked in a backend read: it is a daemon, we wait at most ``wait`` s)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(wait)

    def __enter__(self) -> StreamReader:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        while (got := self.read()) is not None:
            yield got

    # -- reader thread
    def _give_up(self, why: str) -> None:
        self.error = why
        LOG.warning("%s: giving up: %s", self.name, why)

    def _run(self) -> None:
        delay, failures = self.backoff, 0
        last_frame_t = time.monotonic()
        try:
            while not self._stop.is_set():
                cap, got = None, 0
                try:
                    cap = self.capture_factory(self.source)
                    if cap is not None and cap.isOpened():
                        if self.fps is None:
                            self.fps = _capture_fps(cap)
                        while not self._stop.is_set():
                            ok, frame = cap.read()
                            if not ok or frame is None:
                                break
                            if got == 0:
                                self.connects += 1
                            got += 1
                            last_frame_t = time.monotonic()
                            with self._cond:
                                self._frame, self._seq = frame, self.received
                                self.received += 1
                                self._cond.notify_all()
                            self._connected.set()
                            delay, failures = self.backoff, 0
                except Exception as e:  # noqa: BLE001 - a backend error is a dropped feed
                    LOG.debug("%s: capture error: %s", self.name, e)
                finally:
                    if cap is not None:
                        try:
                            cap.release()
                        except Exception:  # noqa: BLE001
                            pass
                if self._stop.is_set():
                    break
                if got == 0:
                    failures += 1
                what = "could not connect" if not self._connected.is_set() else "feed dropped"
                if failures >= self.retries:
                    self._give_up(f"{what}; {failures} attempt(s) failed")
                    break
                if self.timeout is not None and time.monotonic() - last_frame_t + delay > self.timeout:
                    self._give_up(f"{what}; no frame for {self.timeout:g} s")
                    break
                self.reconnects += 1
                LOG.warning("%s: %s; reconnecting in %.2g s (attempt %d/%d)", self.name, what, delay,
                            failures + 1, self.retries)
                if self._stop.wait(delay):
                    break
                delay = min(delay * 2, self.max_backoff)
        finally:
            self._done.set()
            with self._cond:
                self._cond.notify_all()


# --- the source ---------------------------------------------------------------------------
class Source:
    """A resolved SOURCE. Iterate for :class:`Frame` s, or use :meth:`items` for per-file groups.

    ``kind`` is ``"files"`` (an image, a folder or a glob, which may hold
    videos too), ``"video"`` (a single video file) or ``"stream"``.
    """

    def __init__(self, source: str | os.PathLike, *, capture_factory: Callable[[Any], Any] | None = None,
                 backoff: float = 0.5, max_backoff: float = 8.0, retries: int = 10,
                 timeout: float | None = None) -> None:
        self.spec = str(source)
        self.capture_factory = capture_factory
        self.stream_kw = dict(backoff=backoff, max_backoff=max_backoff, retries=retries, timeout=timeout)
        self.skipped: list[tuple[str, str]] = []
        self.files: list[Path] = []
        self.root: Path | None = None
        self.single = False
        if is_stream(self.spec):
            self.kind = "stream"
            return
        p = Path(self.spec)
        if p.is_dir():
            self.root = p
            self.files = sorted(f for f in p.rglob("*") if f.is_file())
            if not self.files:
                raise FileNotFoundError(f"{p}: folder holds no files")
        elif p.is_file():
            self.root, self.files, self.single = p.parent, [p], True
        elif _GLOB_MAGIC.search(self.spec):
            self.root = _glob_root(self.spec)
            self.files = sorted(Path(f) for f in glob.glob(self.spec, recursive=True) if Path(f).is_file())
            if not self.files:
                raise FileNotFoundError(f"{self.spec}: no files match this pattern")
        else:
            raise FileNotFoundError(f"{self.spec}: no such file, folder, pattern or stream")
        self.kind = "video" if self.single and p.suffix.lower() in VIDEO_SUFFIXES else "files"

    def __len__(self) -> int:
        """Files to go through (1 for a stream)."""
        return 1 if self.kind == "stream" else len(self.files)

    def __iter__(self) -> Iterator[Frame]:
        for item in self.items():
            yield from item

    def skip(self, name: str, reason: str) -> None:
        self.skipped.append((name, reason))
        LOG.warning("%s: skipped: %s", name, reason)

    def items(self) -> Iterator[Item]:
        """One :class:`Item` per readable file (or the stream). Unreadable files are skipped and recorded."""
        if self.kind == "stream":
            yield self._stream_item()
            return
        for f in self.files:
            name = f.name if self.single else _rel(f, self.root)
            suffix = f.suffix.lower()
            if suffix in VIDEO_SUFFIXES:
                try:
                    yield self._video_item(f, name)
                except ValueError as e:
                    if self.single:
                        raise
                    self.skip(name, str(e).removeprefix(f"{f}: "))
                continue
            if suffix not in IMAGE_SUFFIXES and not self.single:
                self.skip(name, f"not an image or video (suffix {suffix or 'none'!r})")
                continue
            try:
                img = read_image(f)
            except ImageReadError as e:
                if suffix not in IMAGE_SUFFIXES:  # a single file of unknown type: maybe a video
                    try:
                        yield self._video_item(f, name)
                        continue
                    except ValueError:
                        self.skip(name, f"not an image or video (suffix {suffix or 'none'!r})")
                        continue
                self.skip(name, str(e).removeprefix(f"{f}: "))
                continue
            yield Item(name, "image", f, total=1, frames=lambda n=name, im=img: iter((Frame(n, 0, im),)))

    def _video_item(self, path: Path, name: str) -> Item:
        import cv2

        cap = cv2.VideoCapture(str(path))
        first = None
        if cap.isOpened():
            ok, first = cap.read()
            if not ok:
                first = None
        if first is None:
            cap.release()
            raise ValueError(f"{path}: cannot open video (not a readable video file)")
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) or None

        def frames() -> Iterator[Frame]:
            try:
                i, frame = 0, first
                while frame is not None:
                    yield Frame(name, i, frame)
                    ok, frame = cap.read()
                    i += 1
                    if not ok:
                        break
            finally:
                cap.release()

        return Item(name, "video", path, fps=_capture_fps(cap), total=total, frames=frames)

    def _stream_item(self) -> Item:
        src: str | int = int(self.spec) if self.spec.isdigit() else self.spec
        reader = StreamReader(src, self.capture_factory, **self.stream_kw)
        reader.start()  # StreamError (a ValueError) when it never connects
        name = reader.name

        def frames() -> Iterator[Frame]:
            try:
                for i, frame in reader:
                    yield Frame(name, i, frame)
            finally:
                reader.close()

        return Item(name, "stream", None, fps=reader.fps, total=None, frames=frames, reader=reader)


def open_source(source: str | os.PathLike, **kwargs: Any) -> Source:
    """Resolve SOURCE (see :class:`Source` for the keyword arguments)."""
    return Source(source, **kwargs)


def iter_frames(source: str | os.PathLike, **kwargs: Any) -> Iterator[Frame]:
    """Every frame of SOURCE as ``(name, index, bgr)``; skips are logged."""
    yield from Source(source, **kwargs)


__all__ = ["Frame", "Item", "Source", "StreamError", "StreamReader", "default_capture_factory",
           "is_stream", "iter_frames", "open_source", "stream_name"]
