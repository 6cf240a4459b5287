"""``facewear predict SOURCE --model M``: run a detector on images, folders, globs, videos and streams.

SOURCE is an image, a folder (all files below it), a glob pattern, a video,
an RTSP/HTTP(S) stream URL or a webcam index (``0``); see
:mod:`detection.sources`. Outputs, all optional:

* ``--save-crops DIR``: each detected face, with a margin, as
  ``DIR/<class>/<sub/folders>/<stem>_f<frame>_d<det>.jpg`` (``_t<track>`` with
  ``--track``): the sub-folders of the file below SOURCE are kept and Unicode
  letters stay in the stem, so every crop traces back to its file; never
  overwrites a file (``-1``, ``-2`` ... suffixes);
* ``--save-json FILE``: a list of ``{"file_name", "frame", "bbox": [x, y, w, h],
  "category_id", "category", "score"}`` (+ ``"track_id"`` with ``--track``),
  plus ``"crop"``, the crop file written for that detection (with ``--track``:
  on the track's best frame);
* ``--save DIR``: annotated images (same relative names) and one annotated
  ``.mp4`` per video or stream (H.264 when imageio-ffmpeg is installed, else
  mp4v with a warning).

No output may replace a file the run reads: ``--save`` or ``--save-json``
naming a source file is refused before anything is written. An image or
frame that cannot be processed (size, shape, pixel count) is skipped with
its reason, counted in the summary, and the run goes on.

NMS is class-agnostic by default (ultralytics' ``agnostic_nms``): one face
gets one box, of its highest-scoring class, so it is cropped once.
``--no-agnostic-nms`` keeps class-wise NMS.

``--track`` follows faces through videos and streams with ultralytics'
ByteTrack and saves one crop per track: the frame where it scored highest,
under the class voted over the track's frames (class ids weighted by score).
Images are never tracked. Ctrl-C stops cleanly: the JSON, the pending track
crops and the video files are written before returning.
"""
from __future__ import annotations

import argparse
import itertools
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facewear.boxes import crop_box
from facewear.constants import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from facewear.io import check_not_inputs, write_image, write_json

from .outputs import class_name, crop_base, draw_detections, json_record, safe_stem, unique_path
from .slicing import add_slice_args, maybe_sliced
from .sources import Item, Source, _rel
from .tracker import TrackCrops, TrackRecord, new_tracker, tracker_args

LOG = logging.getLogger("facewear.predict")
FALLBACK_FPS = 25.0


# --- video writers -----------------------------------------------------------------------
#: ``FACEWEAR_VIDEO_CODEC=mp4v`` forces OpenCV's mp4v writer (default ``h264``: libx264 through imageio-ffmpeg)
VIDEO_CODEC_ENV = "FACEWEAR_VIDEO_CODEC"


class _H264Writer:
    """H.264 (libx264, yuv420p, ``+faststart``) through the ffmpeg binary that imageio-ffmpeg ships: browsers
    play it, unlike mp4v. Odd frame sides are padded up to even (``macro_block_size=2``)."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        import imageio_ffmpeg

        self.gen = imageio_ffmpeg.write_frames(str(path), size, fps=fps, codec="libx264", pix_fmt_in="bgr24",
                                               pix_fmt_out="yuv420p", macro_block_size=2, quality=7,
                                               output_params=["-movflags", "+faststart"], ffmpeg_log_level="error")
        self.gen.send(None)  # starts ffmpeg: fails here, not on the first frame, when it cannot run

    def write(self, frame: np.ndarray) -> None:
        self.gen.send(np.ascontiguousarray(frame))

    def release(self) -> None:
        self.gen.close()


class VideoOut:
    """An annotated-video writer to a hidden partial file, renamed into place on close (also after Ctrl-C).

    H.264 through imageio-ffmpeg when it is installed (see :class:`_H264Writer`); otherwise, or when ffmpeg
    fails to start, OpenCV's mp4v with a warning (mp4v plays in VLC and OpenCV, not in browsers)."""

    def __init__(self, dst: Path, fps: float | None) -> None:
        self.dst, self.fps = dst, fps or FALLBACK_FPS
        self.tmp = dst.with_name(f".{dst.stem}.partial{dst.suffix}")
        self.writer: Any = None
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self.codec: str | None = None

    def _open(self) -> None:
        if os.environ.get(VIDEO_CODEC_ENV, "h264").lower() != "mp4v":
            try:
                self.writer, self.codec = _H264Writer(self.tmp, self.fps, self.size), "h264"
                return
            except Exception as e:  # noqa: BLE001 - no imageio-ffmpeg, or its ffmpeg cannot run here
                self.tmp.unlink(missing_ok=True)
                LOG.warning("%s: H.264 writer unavailable (%s: %s); writing mp4v, which browsers do not play "
                            "(pip install imageio-ffmpeg for H.264)", self.dst, type(e).__name__, e)
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self.size)
        if not self.writer.isOpened():
            self.writer = None
            raise ValueError(f"{self.dst}: cannot open a video writer (mp4v)")
        self.codec = "mp4v"

    def write(self, frame: np.ndarray) -> None:
        """Append one BGR frame (resized to the first frame's size if a stream changed size)."""
        if self.writer is None:
            self.dst.parent.mkdir(parents=True, exist_ok=True)
            h, w = frame.shape[:2]
            self.size = (w, h)
            self._open()
        if (frame.shape[1], frame.shape[0]) != self.size:  # a stream may come back at another size
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(frame)
        self.frames += 1

    def close(self) -> Path | None:
        """Finish the file and rename it into place; the final path, or None when no frame was written."""
        if self.writer is None:
            return None
        self.writer.release()
        self.writer = None
        os.replace(self.tmp, self.dst)
        return self.dst


# --- the run -----------------------------------------------------------------------------
class _Predictor:
    """The state of one predict run: detector, outputs, counts and skipped files or frames."""

    def __init__(self, detector: Any, conf: float, margin: float, save_crops: Path | None,
                 save: Path | None, tracking: bool, tracker_cfg: str | Path | None) -> None:
        self.det = detector
        self.names: tuple[str, ...] = tuple(getattr(detector, "names", ()) or ())
        self.conf, self.margin = conf, margin
        self.save_crops, self.save, self.tracking, self.tracker_cfg = save_crops, save, tracking, tracker_cfg
        self.records: list[dict] = []
        self.det_counts: Counter[int] = Counter()
        self.track_counts: Counter[int] = Counter()
        self.crops = 0
        self.images = self.videos = self.frames = 0
        self.outputs: list[str] = []
        self.skipped: list[tuple[str, str]] = []  # (file or "file frame N", reason): images/frames not processed

    def skip(self, what: str, reason: str) -> None:
        """Record an image or frame that could not be processed; the run goes on."""
        self.skipped.append((what, reason))
        LOG.warning("%s: skipped: %s", what, reason)

    def detect(self, frame: np.ndarray) -> np.ndarray:
        """The detector's boxes at or above ``conf``; :class:`FrameError` when this frame cannot be processed."""
        if frame.ndim != 3 or frame.shape[2] != 3 or min(frame.shape[:2]) < 1:
            raise FrameError(f"cannot process a frame of shape {frame.shape}")
        try:
            dets = np.asarray(self.det(frame), dtype=np.float32).reshape(-1, 6)
        except (KeyboardInterrupt, FileNotFoundError):
            raise
        except Exception as e:
            h, w = frame.shape[:2]
            raise FrameError(f"{w}x{h} frame could not be processed ({type(e).__name__}: "
                             f"{str(e).strip().splitlines()[-1] if str(e).strip() else ''})") from e
        return dets[dets[:, 4] >= self.conf] if len(dets) else dets

    def write_crop(self, crop: np.ndarray, cls: int, base: str) -> Path | None:
        if self.save_crops is None:
            return None
        path = unique_path(self.save_crops / class_name(self.names, cls), base)
        try:
            write_image(path, crop, quality=95)
        except BaseException:
            path.unlink(missing_ok=True)  # the reserved, still empty name
            raise
        self.crops += 1
        return path

    def count_track(self, rec: TrackRecord) -> None:
        self.track_counts[rec.cls] += 1

    def handle(self, name: str, idx: int, frame: np.ndarray,
               tracks: TrackCrops | None) -> tuple[np.ndarray, list[int | None] | None]:
        """Detect, count, record JSON and crops for one frame; returns (dets, track ids or None)."""
        dets = self.detect(frame)
        recs = [json_record(name, idx, d, self.names, None, tracks is not None) for d in dets]
        ids = tracks.update(idx, frame, dets, recs) if tracks is not None else None
        for i, d in enumerate(dets):
            cls = int(d[5])
            self.det_counts[cls] += 1
            if ids is not None:
                recs[i]["track_id"] = ids[i]
            self.records.append(recs[i])
            if tracks is None and self.save_crops is not None:
                crop = crop_box(frame, d, self.margin)
                if crop is not None:
                    path = self.write_crop(crop, cls, f"{crop_base(name)}_f{idx:06d}_d{i}")
                    if path is not None:
                        recs[i]["crop"] = str(path)
        self.frames += 1
        return dets, ids

    def annotated(self, frame: np.ndarray, result: tuple[np.ndarray, list[int | None] | None]) -> np.ndarray:
        return draw_detections(frame, result[0], self.names, result[1])


class FrameError(ValueError):
    """One image or frame that the detector could not process; it is skipped, the run goes on."""


def _load(model: Any, imgsz: int | None, conf: float, iou: float, threads: int | None, agnostic: bool = False) -> Any:
    from .detector import AgnosticNMS
    from .registry import load_detector

    if isinstance(model, (str, os.PathLike)):
        return load_detector(model, imgsz=imgsz, conf=conf, iou=iou, threads=threads, agnostic=agnostic)
    if not callable(model) or not hasattr(model, "names"):
        raise ValueError(f"model must be a .pt/.onnx path, a cascade spec or a Detector (callable with .names), "
                         f"got {type(model)}")
    return AgnosticNMS(model, iou) if agnostic and not getattr(model, "agnostic", False) else model


def _model_files(model: Any) -> list[Path]:
    """The weight files a model spec reads (none for a Detector object)."""
    if not isinstance(model, (str, os.PathLike)):
        return []
    from .registry import model_files

    return model_files(model)


def check_outputs(src: Source, model: Any, save: str | os.PathLike | None,
                  save_json: str | os.PathLike | None) -> None:
    """Refuse (:class:`~facewear.io.OverwriteError`) before anything is written when ``--save`` would replace a
    source image or video with its annotated copy, or ``--save-json`` names a file the run reads."""
    inputs = [*src.files, *_model_files(model)]
    if save is not None:
        outs = []
        for f in src.files:
            suffix = f.suffix.lower()
            if not src.single and suffix not in IMAGE_SUFFIXES and suffix not in VIDEO_SUFFIXES:
                continue  # skipped, never written
            name = f.name if src.single else _rel(f, src.root)
            outs.append(Path(save) / (Path(name).with_suffix(".mp4") if suffix in VIDEO_SUFFIXES else name))
        check_not_inputs(outs, inputs, "--save")
    if save_json is not None:
        check_not_inputs([save_json], inputs, "--save-json")


def _progress(**kw: Any) -> Any:
    from tqdm import tqdm

    return tqdm(dynamic_ncols=True, **kw)


def run(source: str, model: Any = None, imgsz: int | None = None, conf: float = 0.25, iou: float = 0.45,
        save_crops: str | None = None, save_json: str | None = None, save: str | None = None,
        track: bool = False, max_frames: int | None = None, threads: int | None = None,
        margin: float = 0.1, retries: int = 10, stream_timeout: float | None = None,
        progress: bool = True, agnostic_nms: bool = True, *, capture_factory: Callable[[Any], Any] | None = None,
        backoff: float = 0.5, max_backoff: float = 8.0, tracker_cfg: str | Path | None = None,
        engine: str = "local", slice: bool = False, slice_size: int | None = None, slice_overlap: float = 0.2,
        slice_merge: str = "auto", **engine_kw: Any) -> dict:
    """Detect faces in every frame of ``source``; returns (and prints) a summary dict.

    ``model`` is a ``.pt``/``.onnx`` path, a cascade spec or a ready Detector (anything callable with ``.names``);
    ``None`` means the released detector of ``weights/manifest.json``. ``agnostic_nms`` (default) keeps one box
    per face across classes. ``capture_factory``, ``backoff`` and ``max_backoff`` tune stream reading (see
    :class:`detection.sources.StreamReader`). ``slice`` runs sliced inference (:mod:`detection.slicing`: slices of
    ``slice_size`` px, default ``imgsz``, plus the full frame, boxes merged) for small faces in large photos.
    """
    if engine == "ray" and slice:
        raise ValueError("--slice runs with --engine local only")
    if engine == "ray":  # batch prediction on Ray Data: detection/ray_predict.py
        given = {k: v for k, v in dict(save_crops=save_crops, save_json=save_json, save=save, track=track,
                                        max_frames=max_frames).items() if v}
        if given:
            raise ValueError(f"--engine ray writes rows and crops under --out; not with {', '.join(given)}")
        from .ray_predict import run as ray_run

        return ray_run(source, model=model, imgsz=imgsz, conf=conf, iou=iou, agnostic_nms=agnostic_nms,
                       margin=margin, threads=threads, progress=progress, **engine_kw)
    if engine != "local":
        raise ValueError(f"--engine must be local or ray, got {engine!r}")
    if engine_kw.get("out") is not None or engine_kw.get("address") is not None:
        raise ValueError("--out and --address are options of --engine ray")
    if model is None:
        from .manifest import default_model

        model = str(default_model())
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"--max-frames must be >= 1 (got {max_frames})")
    if not 0 <= margin < 5:
        raise ValueError(f"--margin must be in [0, 5) (got {margin})")
    if threads:
        cv2.setNumThreads(threads)
    src = Source(source, capture_factory=capture_factory, backoff=backoff, max_backoff=max_backoff,
                 retries=retries, timeout=stream_timeout)
    check_outputs(src, model, save, save_json)
    if track:
        new_tracker(tracker_cfg)  # import ultralytics' tracker and read its settings before a stream starts
    items = src.items()
    first = next(items, None)  # open the source (a video, a stream) before the slower model load
    detector = maybe_sliced(_load(model, imgsz, conf, iou, threads, agnostic_nms), slice, slice_size, slice_overlap,
                            slice_merge)
    pred = _Predictor(detector, conf, margin, Path(save_crops) if save_crops else None,
                      Path(save) if save else None, track, tracker_cfg)
    stream_info: dict[str, Any] = {}
    interrupted = False
    video_outs: list[VideoOut] = []
    open_tracks: list[TrackCrops] = []
    t0 = time.perf_counter()
    try:
        from tqdm.contrib.logging import logging_redirect_tqdm
        redirect = logging_redirect_tqdm() if progress else nullcontext()
    except ImportError:  # pragma: no cover
        redirect = nullcontext()
    bar = None
    try:
        with redirect:
            if src.kind == "stream":
                bar = _progress(desc="stream", unit="frame", disable=not progress)
            elif src.kind == "video":
                bar = _progress(desc="video", unit="frame", disable=not progress)
            else:
                bar = _progress(desc="predict", unit="file", total=len(src), disable=not progress)
            stop = False
            for item in itertools.chain([first] if first is not None else [], items):
                if item.kind == "image":
                    for name, idx, frame in item:
                        try:
                            res = pred.handle(name, idx, frame, None)
                        except FrameError as e:
                            pred.skip(name, str(e))
                            continue
                        pred.images += 1
                        if pred.save is not None:
                            _save_image(pred.save / name, pred.annotated(frame, res))
                    bar.update(1)
                    bar.set_postfix(dets=sum(pred.det_counts.values()), refresh=False)
                else:
                    stop = _run_frames(pred, item, bar, src.kind, max_frames, video_outs, open_tracks,
                                       stream_info, progress)
                    if src.kind == "files":
                        bar.update(1)
                if stop or (max_frames is not None and pred.frames >= max_frames):
                    break
    except KeyboardInterrupt:
        interrupted = True
        LOG.warning("interrupted: writing what was done so far")
    finally:
        if bar is not None:
            bar.close()
        for t in open_tracks:  # tracks of a video cut short
            t.close()
        for v in video_outs:
            if (p := v.close()) is not None:
                pred.outputs.append(str(p))
        if save_json:
            write_json(save_json, pred.records)
    seconds = time.perf_counter() - t0
    if track and pred.images:
        LOG.info("--track follows faces through videos and streams; the %d image(s) were not tracked", pred.images)
    summary = _summary(source, src, pred, seconds, interrupted, stream_info, save_json, save, save_crops)
    print(format_summary(summary))
    return summary


def _save_image(dst: Path, img: np.ndarray) -> None:
    try:
        write_image(dst, img)
    except ValueError:  # a suffix OpenCV cannot encode
        write_image(dst.with_suffix(".jpg"), img)


def _run_frames(pred: _Predictor, item: Item, bar: Any, kind: str, max_frames: int | None,
                video_outs: list[VideoOut], open_tracks: list[TrackCrops], stream_info: dict,
                progress: bool) -> bool:
    """Frames of one video or stream. Returns True when ``max_frames`` was reached."""
    pred.videos += item.kind == "video"
    inner = bar
    if kind == "files":  # a video inside a folder: its own, transient bar
        inner = _progress(desc=item.name, unit="frame", total=item.total, leave=False, position=1,
                          disable=not progress)
    elif kind == "video" and item.total:
        bar.total = item.total
        bar.refresh()
    out = None
    if pred.save is not None:
        rel = Path(item.name).with_suffix(".mp4") if item.kind == "video" else Path(safe_stem(item.name) + ".mp4")
        out = VideoOut(pred.save / rel, item.fps)
        video_outs.append(out)
    tracks = None
    if pred.tracking:
        tracks = TrackCrops(pred, item.name, pred.tracker_cfg)
        open_tracks.append(tracks)
    fps_t, fps_n, fps = time.perf_counter(), 0, 0.0
    hit_max = False
    try:
        for name, idx, frame in item:
            try:
                res = pred.handle(name, idx, frame, tracks)
            except FrameError as e:
                pred.skip(f"{name} frame {idx}", str(e))
                continue
            if out is not None:
                out.write(pred.annotated(frame, res))
            inner.update(1)
            if item.kind == "stream":
                fps_n += 1
                now = time.perf_counter()
                if now - fps_t >= 0.5:
                    fps, fps_t, fps_n = fps_n / (now - fps_t), now, 0
                    bar.set_postfix(fps=f"{fps:.1f}", dropped=item.reader.dropped, refresh=False)
            if max_frames is not None and pred.frames >= max_frames:
                hit_max = True
                break
    finally:
        if item.reader is not None:
            item.reader.close()
            stream_info.update(name=item.name, received=item.reader.received, dropped=item.reader.dropped,
                               reconnects=item.reader.reconnects, gave_up=item.reader.error)
        if tracks is not None:
            tracks.close()
            open_tracks.remove(tracks)
        if out is not None:
            if (p := out.close()) is not None:
                pred.outputs.append(str(p))
            video_outs.remove(out)
        if inner is not bar:
            inner.close()
    return hit_max


def _summary(source: str, src: Source, pred: _Predictor, seconds: float, interrupted: bool,
             stream_info: dict, save_json: str | None, save: str | None, save_crops: str | None) -> dict:
    names = pred.names
    per_class = {class_name(names, c): n for c, n in sorted(pred.det_counts.items())}
    for n in names:
        per_class.setdefault(n, 0)
    per_class = {n: per_class[n] for n in sorted(per_class, key=lambda k: (k not in names,
                                                                         names.index(k) if k in names else 0, k))}
    summary: dict[str, Any] = {
        "source": str(source), "kind": src.kind, "model": str(getattr(pred.det, "source", type(pred.det).__name__)),
        "images": pred.images, "videos": pred.videos, "frames": pred.frames,
        "skipped": len(src.skipped) + len(pred.skipped),
        "skipped_files": [{"file": f, "reason": r} for f, r in (*src.skipped, *pred.skipped)],
        "detections": per_class, "crops": pred.crops,
        "seconds": round(seconds, 3), "fps": round(pred.frames / seconds, 2) if seconds > 0 else 0.0,
        "interrupted": interrupted,
    }
    if pred.tracking:
        summary["tracks"] = {class_name(names, c): n for c, n in sorted(pred.track_counts.items())}
    if stream_info:
        summary["stream"] = stream_info
    if save_json:
        summary["json"] = str(save_json)
    if save:
        summary["save"] = str(save)
        summary["videos_written"] = pred.outputs
    if save_crops:
        summary["crops_dir"] = str(save_crops)
    return summary


def format_summary(s: dict) -> str:
    """The summary dict as the lines ``facewear predict`` prints."""
    lines = [f"predict {s['source']} ({s['kind']})" + ("  [interrupted]" if s["interrupted"] else "")]
    lines.append(f"  processed: {s['images']} image(s), {s['videos']} video(s), {s['frames']} frame(s) "
                 f"in {s['seconds']:.2f} s ({s['fps']:.1f} fps)")
    if s["skipped"]:
        lines.append(f"  skipped:   {s['skipped']}")
        for d in s["skipped_files"][:20]:
            lines.append(f"    {d['file']}: {d['reason']}")
        if s["skipped"] > 20:
            lines.append(f"    ... and {s['skipped'] - 20} more")
    else:
        lines.append("  skipped:   0")
    lines.append("  detections: " + ", ".join(f"{k} {v}" for k, v in s["detections"].items()))
    if "tracks" in s:
        n_tracks = sum(s["tracks"].values())
        lines.append("  tracks:     " + (", ".join(f"{k} {v}" for k, v in s["tracks"].items()) or "none")
                     + (f"  ({n_tracks} face(s) followed; detections count every frame, tracks each face once, "
                        f"under the class voted over its frames)" if n_tracks else ""))
    if "stream" in s:
        st = s["stream"]
        lines.append(f"  stream: {st.get('received', 0)} frame(s) received, {st.get('dropped', 0)} dropped (stale), "
                     f"{st.get('reconnects', 0)} reconnect(s)" + (f"; {st['gave_up']}" if st.get("gave_up") else ""))
    if "crops_dir" in s:
        lines.append(f"  crops:     {s['crops']} -> {s['crops_dir']}")
    if "json" in s:
        lines.append(f"  json:      {s['json']}")
    if "save" in s:
        lines.append(f"  annotated: {s['save']}")
    return "\n".join(lines)


def add_args(p: argparse.ArgumentParser) -> None:
    """``facewear predict`` options (the keyword arguments of :func:`run`)."""
    from facewear.constants import DEFAULT_DETECTOR

    p.add_argument("source", help="image, folder, glob pattern (quote it), video, rtsp/http(s) URL or webcam index")
    p.add_argument("--model", default=None, help="detector weights: ultralytics .pt or .onnx, or a cascade "
                   "FINDER+CLASSIFIER (FINDER: mtcnn, haar or a detector file; CLASSIFIER: a classifier .pt/.onnx); "
                   f"default: the released detector {DEFAULT_DETECTOR!r} of weights/manifest.json")
    p.add_argument("--imgsz", type=int, default=None,
                   help="inference size in pixels (default: the model's own: an ONNX file's input, a .pt's "
                        "training size, else 320)")
    p.add_argument("--conf", type=float, default=0.25, help="confidence threshold (default 0.25)")
    p.add_argument("--iou", type=float, default=0.45, help="NMS IoU threshold (default 0.45)")
    p.add_argument("--agnostic-nms", action=argparse.BooleanOptionalAction, default=True,
                   help="class-agnostic NMS: one box per face, of its best class (default); --no-agnostic-nms runs "
                        "NMS per class, so one face may get boxes of two classes and two crops")
    p.add_argument("--save-crops", metavar="DIR", help="write each face to DIR/<class>/<sub-folders>/ (10%% margin)")
    p.add_argument("--save-json", metavar="FILE", help="write detections (and each one's crop file) as a JSON list")
    p.add_argument("--save", metavar="DIR", help="write annotated images / one .mp4 per video or stream "
                   "(never into the source: a --save that would replace a source file is refused)")
    p.add_argument("--track", action="store_true",
                   help="ByteTrack faces in videos/streams; one crop per track (best frame, voted class)")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames in all")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for inference")
    p.add_argument("--margin", type=float, default=0.1, help="crop margin, fraction of the box on each side")
    p.add_argument("--retries", type=int, default=10,
                   help="streams: give up after this many failed (re)connection attempts in a row")
    p.add_argument("--stream-timeout", type=float, metavar="S", help="streams: give up after S s without a frame")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process (default); ray: Ray Data actors, resumable Parquet output (--out)")
    add_slice_args(p)
    from .ray_predict import add_args as ray_args

    ray_args(p)


__all__ = ["add_args", "run", "check_outputs", "crop_base", "crop_box", "FrameError", "draw_detections",
           "format_summary", "json_record", "new_tracker", "safe_stem", "tracker_args", "unique_path", "TrackRecord",
           "TrackCrops", "VideoOut"]
