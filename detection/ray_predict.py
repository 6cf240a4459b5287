"""``facewear predict SOURCE --engine ray --out DIR``: batch prediction on Ray Data, resumable and exactly-once.

Any facewear detector (``.pt``/``.onnx`` YOLO or Faster R-CNN, a cascade spec: whatever
:func:`detection.registry.load_detector` loads) runs inside Ray Data actors (``map_batches`` with an actor class,
``--workers`` of them), each loading the model once. SOURCE is a folder, a glob, a ``.txt`` file of paths (one a
line, relative to the file), or a Parquet/CSV manifest with a ``path`` column (else its first column). Videos are
split into ranges of ``--frames-per-task`` frames, so one long video spreads over every worker.

Output, under ``--out DIR``:

* ``rows/part-<hash>.parquet``: one row per detection: ``file`` (the name relative to SOURCE, as ``facewear
  predict`` names it), ``path``, ``frame``, ``x1 y1 x2 y2`` (pixels), ``class_id``, ``class_name``, ``score``,
  ``model``, ``crop`` (relative to DIR) and ``task``. Each shard's Parquet metadata (``facewear.tasks``) lists
  the tasks (file and frame range) it completes, with their status (``done``, ``failed`` + reason) and skipped
  frames: **the rows and the done marker of a task are one file, written atomically** (temporary file + rename);
* ``crops/<class>/<sub/folders>/<stem>_f<frame>_d<det>.jpg``: ``facewear predict``'s crop names (sub-folders and
  Unicode kept). They are a function of the file, frame and detection only, so two workers can never pick the
  same name, and a task that is redone rewrites the same files instead of adding ``-1`` copies. Two files whose
  safe names coincide (``a b.jpg``, ``a_b.jpg``) get a short hash of their name appended;
* ``run.json`` (the settings; a re-run with other model/threshold/split settings is refused), ``summary.json``.

Re-running the same command skips every task found done in ``rows/`` (Ctrl-C or a crash loses nothing that was
committed; a half-written shard is a ``.part`` file, deleted on the next run). A file that cannot be read is
committed as ``failed`` with its reason and not retried (``--retry-failed`` retries those). Without
``--address`` a local Ray is started on this machine (no network, no dashboard); ``--address auto`` or
``ray://HOST:10001`` joins a cluster started with ``ray start --head`` (see the README, "Scaling out").
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

import facewear  # noqa: F401  (offline env first)
from facewear.constants import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from facewear.io import atomic_path, write_json

LOG = logging.getLogger("facewear.ray_predict")
TASKS_KEY = b"facewear.tasks"
#: settings that must match between a run and its resumption (the rows would otherwise mix two runs)
PINNED = ("model", "imgsz", "conf", "iou", "agnostic_nms", "margin", "frames_per_task")
COLUMNS = ("file", "path", "frame", "x1", "y1", "x2", "y2", "class_id", "class_name", "score", "model", "crop",
           "task")


def schema() -> Any:
    import pyarrow as pa

    return pa.schema([("file", pa.string()), ("path", pa.string()), ("frame", pa.int64()),
                      ("x1", pa.float32()), ("y1", pa.float32()), ("x2", pa.float32()), ("y2", pa.float32()),
                      ("class_id", pa.int32()), ("class_name", pa.string()), ("score", pa.float32()),
                      ("model", pa.string()), ("crop", pa.string()), ("task", pa.string())])


# --- inputs and the plan ------------------------------------------------------------------
def _manifest_paths(p: Path) -> list[str]:
    """Paths of a ``.txt`` list (one a line, ``#`` comments), or of a Parquet/CSV manifest (``path`` column, else
    the first column)."""
    suffix = p.suffix.lower()
    if suffix == ".txt":
        lines = p.read_text(encoding="utf-8").splitlines()
        return [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(p)
    else:
        import pyarrow.csv as pcsv

        table = pcsv.read_csv(p)
    if table.num_columns == 0:
        raise ValueError(f"{p}: manifest has no columns")
    col = "path" if "path" in table.column_names else table.column_names[0]
    return [str(v) for v in table.column(col).to_pylist() if v is not None and str(v).strip()]


def list_inputs(source: str | os.PathLike) -> list[tuple[Path, str]]:
    """``(path, name)`` of every file of SOURCE; ``name`` is relative to SOURCE as ``facewear predict`` gives it
    (for a list or manifest: relative to the list's folder, or to the files' common folder)."""
    from .sources import Source, _rel

    p = Path(source)
    if p.is_file() and p.suffix.lower() in (".txt", ".parquet", ".csv"):
        entries = _manifest_paths(p)
        if not entries:
            raise FileNotFoundError(f"{p}: the list holds no paths")
        files = [Path(e) if Path(e).is_absolute() else p.parent / e for e in entries]
        base = p.parent
        if not all(_inside(f, base) for f in files):
            base = Path(os.path.commonpath([str(f.absolute().parent) for f in files]))
        return [(f, _rel(f.absolute(), base.absolute())) for f in files]
    src = Source(str(source))
    if src.kind == "stream":
        raise ValueError(f"{source}: --engine ray reads files (folders, globs, lists, manifests), not streams")
    return [(f, f.name if src.single else _rel(f, src.root)) for f in src.files]


def _inside(f: Path, base: Path) -> bool:
    try:
        f.absolute().relative_to(base.absolute())
        return True
    except ValueError:
        return False


def task_id(name: str, start: int, end: int | None) -> str:
    return hashlib.sha1(f"{name}\0{start}\0{end}".encode()).hexdigest()[:20]


def video_frames(path: Path) -> int | None:
    """The frame count a video's header gives (``None``: unknown or unreadable)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
    finally:
        cap.release()
    return n if n > 0 else None


def plan(inputs: list[tuple[Path, str]], frames_per_task: int) -> list[dict[str, Any]]:
    """One task per image; one per ``frames_per_task`` frames of a video (the last one reads to the end, so a
    header that under-counts loses nothing). Crop bases follow ``facewear predict``; two names that map to the same
    safe base get a hash of the name appended, so crops of different files never share a name."""
    from .outputs import crop_base

    bases = [crop_base(name) for _, name in inputs]
    clash = {b for b, n in Counter(bases).items() if n > 1}
    tasks = []
    for (path, name), base in zip(inputs, bases):
        if base in clash:
            base = f"{base}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"
        common = {"path": str(path.absolute()), "name": name, "crop_base": base}  # actors may run elsewhere
        if path.suffix.lower() in VIDEO_SUFFIXES:
            n = video_frames(path)
            starts = list(range(0, n, frames_per_task)) if n else [0]
            for k, s in enumerate(starts):
                end = -1 if k == len(starts) - 1 else s + frames_per_task  # -1: to the end of the video
                tasks.append({**common, "kind": "video", "start": s, "end": end, "task": task_id(name, s, end)})
        else:
            tasks.append({**common, "kind": "image", "start": 0, "end": 1, "task": task_id(name, 0, 1)})
    return tasks


# --- reading the output back ------------------------------------------------------------
def shard_tasks(path: Path) -> list[dict[str, Any]]:
    """The task records in a shard's Parquet metadata (read from its footer only)."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta.get(TASKS_KEY, b"[]"))


def scan(out: Path, clean: bool = False) -> dict[str, tuple[str, dict[str, Any]]]:
    """``{task id: (shard file name, task record)}`` for every committed task under ``out/rows``. A task in two
    shards (a worker retried by Ray after it had committed) keeps the first shard by name. ``clean`` deletes
    ``.part`` files that a killed run left half-written."""
    rows = out / "rows"
    done: dict[str, tuple[str, dict[str, Any]]] = {}
    if not rows.is_dir():
        return done
    if clean:
        for tmp in rows.glob(".*.part"):
            tmp.unlink(missing_ok=True)
    for shard in sorted(rows.glob("part-*.parquet")):
        try:
            recs = shard_tasks(shard)
        except Exception as e:  # noqa: BLE001 - a foreign or broken file: not ours, tasks redone
            LOG.warning("%s: unreadable shard, its tasks will be redone (%s)", shard, e)
            continue
        for rec in recs:
            done.setdefault(rec["task"], (shard.name, rec))
    return done


def read_rows(out: str | os.PathLike) -> Any:
    """Every detection row under ``out`` as one pyarrow Table, each task's rows once (from the shard
    :func:`scan` credits it to)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    owner = {t: s for t, (s, _) in scan(out).items()}
    tables = []
    for shard in sorted((out / "rows").glob("part-*.parquet")) if (out / "rows").is_dir() else []:
        if shard.name not in set(owner.values()):
            continue
        t = pq.read_table(shard).replace_schema_metadata(None)
        mine = [owner.get(x) == shard.name for x in t.column("task").to_pylist()]
        tables.append(t.filter(pa.array(mine, pa.bool_())) if not all(mine) else t)
    return pa.concat_tables(tables) if tables else schema().empty_table()


# --- the actor ------------------------------------------------------------------------------
class PredictWorker:
    """A Ray Data actor: loads the detector once, then turns each batch of tasks into one committed shard."""

    def __init__(self, model: str, out: str, imgsz: int | None, conf: float, iou: float, agnostic_nms: bool,
                 margin: float, threads: int | None, model_label: str) -> None:
        import cv2

        from .registry import load_detector

        if threads:
            cv2.setNumThreads(threads)
            import torch

            torch.set_num_threads(threads)
        self.det = load_detector(model, imgsz=imgsz, conf=conf, iou=iou, threads=threads, agnostic=agnostic_nms)
        self.names = tuple(getattr(self.det, "names", ()) or ())
        self.out, self.conf, self.margin, self.label = Path(out), conf, margin, model_label

    # one frame
    def _detect(self, frame: np.ndarray) -> np.ndarray:
        if frame.ndim != 3 or frame.shape[2] != 3 or min(frame.shape[:2]) < 1:
            raise ValueError(f"cannot process a frame of shape {frame.shape}")
        dets = np.asarray(self.det(frame), dtype=np.float32).reshape(-1, 6)
        return dets[dets[:, 4] >= self.conf] if len(dets) else dets

    def _frame_rows(self, task: dict, idx: int, frame: np.ndarray, rows: list[dict]) -> None:
        from facewear.boxes import crop_box
        from facewear.io import write_image

        from .outputs import class_name

        dets = self._detect(frame)
        for i, d in enumerate(dets):
            cls = int(d[5])
            cname = class_name(self.names, cls)
            crop_rel = None
            crop = crop_box(frame, d, self.margin)
            if crop is not None:
                crop_rel = f"crops/{cname}/{task['crop_base']}_f{idx:06d}_d{i}.jpg"
                write_image(self.out / crop_rel, crop, quality=95)  # atomic; a redone task rewrites the same name
            rows.append({"file": task["name"], "path": task["path"], "frame": idx, "x1": float(d[0]),
                         "y1": float(d[1]), "x2": float(d[2]), "y2": float(d[3]), "class_id": cls,
                         "class_name": cname, "score": float(d[4]), "model": self.label, "crop": crop_rel,
                         "task": task["task"]})

    def _run_task(self, task: dict, rows: list[dict]) -> dict[str, Any]:
        rec = {"task": task["task"], "file": task["name"], "start": int(task["start"]), "end": int(task["end"]),
               "status": "done", "frames": 0, "detections": 0, "skipped_frames": []}
        n0 = len(rows)
        path = Path(task["path"])
        try:
            if task["kind"] == "image":
                self._image(task, path, rows, rec)
            else:
                self._video(task, path, rows, rec)
        except _TaskFailed as e:
            del rows[n0:]
            rec.update(status="failed", reason=str(e))
        rec["detections"] = len(rows) - n0
        return rec

    def _image(self, task: dict, path: Path, rows: list[dict], rec: dict) -> None:
        from facewear.io import ImageReadError, read_image

        suffix = path.suffix.lower()
        if suffix not in IMAGE_SUFFIXES:
            raise _TaskFailed(f"not an image or video (suffix {suffix or 'none'!r})")
        try:
            frame = read_image(path)
        except (ImageReadError, OSError) as e:
            raise _TaskFailed(str(e).removeprefix(f"{path}: ")) from None
        try:
            self._frame_rows(task, 0, frame, rows)
        except (KeyboardInterrupt, FileNotFoundError):
            raise
        except Exception as e:  # noqa: BLE001 - one image the model cannot process is recorded, not fatal
            raise _TaskFailed(f"could not be processed ({type(e).__name__}: {e})") from None
        rec["frames"] = 1

    def _video(self, task: dict, path: Path, rows: list[dict], rec: dict) -> None:
        import cv2

        if not path.is_file():
            raise _TaskFailed("file not found")
        cap = cv2.VideoCapture(str(path))
        try:
            if not cap.isOpened():
                raise _TaskFailed("cannot open video (not a readable video file)")
            start, end = int(task["start"]), int(task["end"])
            if start:
                cap.set(cv2.CAP_PROP_POS_FRAMES, start)
                if int(cap.get(cv2.CAP_PROP_POS_FRAMES)) != start:  # no exact seek: decode from the start
                    cap.release()
                    cap = cv2.VideoCapture(str(path))
                    for _ in range(start):
                        if not cap.grab():
                            break
            idx = start
            while end < 0 or idx < end:
                ok, frame = cap.read()
                if not ok or frame is None:
                    break
                try:
                    self._frame_rows(task, idx, frame, rows)
                except (KeyboardInterrupt, FileNotFoundError):
                    raise
                except Exception as e:  # noqa: BLE001 - a frame that cannot be processed is listed, the rest goes on
                    rec["skipped_frames"].append([idx, f"{type(e).__name__}: {e}"])
                rec["frames"] += 1
                idx += 1
            if rec["frames"] == 0 and start == 0:
                raise _TaskFailed("cannot read any frame (not a readable video file)")
        finally:
            cap.release()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        keys = list(batch)
        tasks = [{k: (batch[k][i].item() if hasattr(batch[k][i], "item") else batch[k][i]) for k in keys}
                 for i in range(len(batch[keys[0]]))]
        rows: list[dict] = []
        recs = [self._run_task(t, rows) for t in tasks]
        ids = sorted(r["task"] for r in recs)
        shard = self.out / "rows" / f"part-{hashlib.sha1(''.join(ids).encode()).hexdigest()[:24]}.parquet"
        sch = schema().with_metadata({TASKS_KEY: json.dumps(recs).encode()})
        table = pa.Table.from_pylist(rows, schema=sch) if rows else sch.empty_table()
        with atomic_path(shard) as tmp:  # rows and done markers: one rename
            pq.write_table(table, tmp)
        return {"task": [r["task"] for r in recs], "status": [r["status"] for r in recs],
                "frames": [r["frames"] for r in recs], "detections": [r["detections"] for r in recs],
                "kind": [t["kind"] for t in tasks]}


class _TaskFailed(Exception):
    """A file that cannot be read or processed: committed as ``failed`` with this reason."""


# --- the driver ------------------------------------------------------------------------------
def _settings(out: Path, current: dict[str, Any]) -> None:
    f = out / "run.json"
    if f.is_file():
        old = json.loads(f.read_text(encoding="utf-8"))
        diff = {k: (old.get(k), current.get(k)) for k in PINNED if old.get(k) != current.get(k)}
        if diff:
            raise ValueError(f"{out}: holds a run with other settings ("
                             + ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in diff.items())
                             + "); resume with the same settings or pick another --out")
    out.mkdir(parents=True, exist_ok=True)
    write_json(f, current)


def _absolute_model(model: str) -> str:
    """``model`` with its files made absolute (a file, or a cascade's finder/classifier files): actors do not
    share the driver's working folder."""
    from facewear.constants import CASCADE_SEP

    from .registry import is_cascade_spec, split_spec

    if is_cascade_spec(model):
        return CASCADE_SEP.join(str(Path(x).absolute()) if Path(x).is_file() else x for x in split_spec(model))
    return str(Path(model).absolute()) if Path(model).is_file() else model


def _init_ray(address: str | None, workers: int, cpus_per_worker: float, progress: bool) -> bool:
    """Connect to ``address`` or start a local Ray; True when this call started it (and must shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    kw: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                          "log_to_driver": True, "configure_logging": True}
    if address:
        ray.init(address=address, **kw)
    else:
        cpus = max(int(np.ceil(workers * cpus_per_worker)), 1)
        ray.init(num_cpus=cpus, object_store_memory=256 * 1024 ** 2, **kw)
    return True


def _data_context(progress: bool) -> None:
    import ray.data

    ctx = ray.data.DataContext.get_current()
    for attr, value in (("enable_progress_bars", progress), ("print_on_execution_start", False),
                        ("enable_operator_progress_bars", progress)):
        if hasattr(ctx, attr):
            setattr(ctx, attr, value)
    ctx.max_errored_blocks = 0


def run(source: str, out: str | None = None, model: Any = None, imgsz: int | None = None, conf: float = 0.25,
        iou: float = 0.45, agnostic_nms: bool = True, margin: float = 0.1, address: str | None = None,
        workers: int = 2, cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0, threads: int | None = None,
        frames_per_task: int = 256, shard_size: int = 32, max_files: int | None = None,
        retry_failed: bool = False, progress: bool = True) -> dict[str, Any]:
    """Detect faces in every file of ``source`` with ``workers`` Ray actors; returns (and prints) the summary.

    ``max_files`` runs at most that many pending tasks and stops (a staged run; the next call goes on).
    ``threads`` per actor default to ``cpus_per_worker``."""
    if out is None:
        raise ValueError("--engine ray needs --out DIR (rows, crops and the done markers go there)")
    if workers < 1 or frames_per_task < 1 or shard_size < 1:
        raise ValueError("--workers, --frames-per-task and --shard-size must be >= 1")
    if not 0 <= margin < 5:
        raise ValueError(f"--margin must be in [0, 5) (got {margin})")
    if model is None:
        from .manifest import default_model

        model = str(default_model())
    from facewear.io import check_dir_apart

    from .registry import model_files, model_name

    model = str(model)
    out_dir = Path(out)
    inputs = list_inputs(source)
    roots = [Path(source)] if Path(source).is_dir() else []  # --out inside SOURCE would be read back next time
    check_dir_apart(out_dir, roots + [p for p, _ in inputs] + model_files(model), "--out")
    label = model_name(model)
    _settings(out_dir, {"source": str(source), "model": label, "imgsz": imgsz, "conf": conf, "iou": iou,
                        "agnostic_nms": agnostic_nms, "margin": margin, "frames_per_task": frames_per_task})
    tasks = plan(inputs, frames_per_task)
    done = scan(out_dir, clean=True)
    redo = {t for t, (_, r) in done.items() if r["status"] == "failed"} if retry_failed else set()
    pending = [t for t in tasks if t["task"] not in done or t["task"] in redo]
    if max_files is not None:
        pending = pending[:max_files]
    LOG.info("%d task(s) in %d file(s): %d done before, %d to run", len(tasks), len(inputs), len(tasks) - len(pending),
             len(pending))
    t0 = time.perf_counter()
    ran: Counter[str] = Counter()
    interrupted = False
    if pending:
        started = _init_ray(address, workers, cpus_per_worker, progress)
        try:
            import ray.data

            _data_context(progress)
            # at least two batches per actor, so that a small input still spreads over every actor
            size = max(1, min(shard_size, -(-len(pending) // (2 * workers))))
            ds = ray.data.from_items(pending, override_num_blocks=max(1, -(-len(pending) // size)))
            res = ds.map_batches(
                PredictWorker, batch_size=size,
                fn_constructor_kwargs=dict(model=_absolute_model(model),
                                           out=str(out_dir.absolute()), imgsz=imgsz, conf=conf, iou=iou,
                                           agnostic_nms=agnostic_nms, margin=margin,
                                           threads=threads or max(1, int(cpus_per_worker)), model_label=label),
                compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpus_per_worker,
                num_gpus=gpus_per_worker or None)
            try:
                for row in res.iter_rows():
                    ran[row["status"]] += 1
                    ran["frames"] += int(row["frames"])
                    ran["images" if row["kind"] == "image" else "video_tasks"] += 1
            except KeyboardInterrupt:
                interrupted = True
                LOG.warning("interrupted: every committed shard is kept; run the same command again to go on")
        finally:
            if started:
                import ray

                ray.shutdown()
    seconds = time.perf_counter() - t0
    summary = summarize(out_dir, tasks, ran, seconds, interrupted, source, label, workers)
    write_json(out_dir / "summary.json", summary)
    print(format_summary(summary))
    return summary


def summarize(out: Path, tasks: list[dict], ran: Counter, seconds: float, interrupted: bool, source: Any,
              label: str, workers: int) -> dict[str, Any]:
    """Counts over the whole output (this run and the runs before it) and this run's throughput."""
    import pyarrow.compute as pc

    from facewear.constants import CLASS_NAMES

    done = scan(out)
    wanted = {t["task"] for t in tasks}
    recs = [r for t, (_, r) in done.items() if t in wanted]
    table = read_rows(out)
    table = table.filter(pc.is_in(table.column("task"), value_set=__import__("pyarrow").array(sorted(wanted))))
    per_class = Counter(table.column("class_name").to_pylist())
    det = {n: per_class.get(n, 0) for n in CLASS_NAMES}
    det.update({k: v for k, v in sorted(per_class.items()) if k not in det})
    failed = [{"file": r["file"], "frames": [r["start"], r["end"]], "reason": r.get("reason", "")}
              for r in recs if r["status"] == "failed"]
    skipped_frames = sum(len(r.get("skipped_frames", [])) for r in recs)
    files_done = {r["file"] for r in recs}
    return {"source": str(source), "engine": "ray", "model": label, "workers": workers, "out": str(out),
            "tasks": len(tasks), "tasks_done": len(recs), "tasks_pending": len(wanted) - len(recs),
            "files_done": len(files_done), "failed": failed, "skipped_frames": skipped_frames,
            "detections": det, "rows": table.num_rows,
            "crops": sum(1 for c in table.column("crop").to_pylist() if c),
            "this_run": {"tasks": ran.get("done", 0) + ran.get("failed", 0), "images": ran.get("images", 0),
                         "frames": ran.get("frames", 0), "seconds": round(seconds, 3),
                         "fps": round(ran.get("frames", 0) / seconds, 2) if seconds > 0 else 0.0},
            "interrupted": interrupted}


def format_summary(s: dict[str, Any]) -> str:
    r = s["this_run"]
    lines = [f"predict {s['source']} (ray, {s['workers']} worker(s))" + ("  [interrupted]" if s["interrupted"] else ""),
             f"  this run:   {r['tasks']} task(s), {r['frames']} frame(s) in {r['seconds']:.2f} s "
             f"({r['fps']:.1f} frames/s)",
             f"  output:     {s['tasks_done']}/{s['tasks']} task(s) done ({s['files_done']} file(s)), "
             f"{s['tasks_pending']} pending, {len(s['failed'])} failed, {s['skipped_frames']} frame(s) skipped"]
    for f in s["failed"][:20]:
        lines.append(f"    {f['file']}: {f['reason']}")
    if len(s["failed"]) > 20:
        lines.append(f"    ... and {len(s['failed']) - 20} more")
    lines.append("  detections: " + ", ".join(f"{k} {v}" for k, v in s["detections"].items()))
    lines.append(f"  rows:       {s['rows']} -> {s['out']}/rows/*.parquet; crops: {s['crops']} -> {s['out']}/crops/")
    return "\n".join(lines)


def add_args(p: argparse.ArgumentParser) -> None:
    """The ``--engine ray`` options of ``facewear predict``."""
    g = p.add_argument_group("--engine ray (batch prediction on Ray Data)")
    g.add_argument("--out", metavar="DIR", help="--engine ray: output folder (rows/*.parquet, crops/<class>/, "
                   "run.json, summary.json); re-running the same command resumes it")
    g.add_argument("--address", default=None, help="Ray cluster to join ('auto', HOST:6379 or ray://HOST:10001); "
                   "default: start a local Ray on this machine")
    g.add_argument("--workers", type=int, default=2, help="detector actors (default 2), each loads the model once")
    g.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs reserved per actor (default 1)")
    g.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs reserved per actor (default 0)")
    g.add_argument("--frames-per-task", type=int, default=256, help="video frames per task (default 256)")
    g.add_argument("--shard-size", type=int, default=32, help="tasks per committed Parquet shard (default 32)")
    g.add_argument("--max-files", type=int, default=None, metavar="N", help="run at most N pending tasks, then stop")
    g.add_argument("--retry-failed", action="store_true", help="retry the tasks recorded as failed")


__all__ = ["COLUMNS", "PredictWorker", "add_args", "list_inputs", "plan", "read_rows", "run", "scan", "schema"]
