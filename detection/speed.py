"""Speed measurements shared by ``export --bench``, ``bench`` and the model card (above the models, below the
reports): the network forward of a ``.pt`` and its ONNX files, a cascade end to end, and ``facewear predict``'s
video FPS. Latency is :func:`facewear.timing.latency` (p50 / p95 ms at batch 1 after a warm-up)."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from facewear.timing import latency


def video_fps(model: Path | str, video: str, imgsz: int | None, track: bool = True) -> dict[str, Any]:
    """End-to-end FPS of ``facewear predict`` on ``video`` (decode, detect, track, crops)."""
    import tempfile

    from .predict import run as predict

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = predict(source=video, model=str(model), imgsz=imgsz, save_crops=str(Path(tmp) / "crops"),
                          track=track)
        dt = time.perf_counter() - t0
    frames = summary.get("frames", 0) if isinstance(summary, dict) else 0
    return {"video": Path(video).name, "frames": frames, "seconds": round(dt, 2),
            "fps": round(frames / dt, 1) if dt else 0.0, "track": track}


def cascade_latency(spec: str, data: str, imgsz: int | None, threads: tuple[int, ...] = (1, 2),
                    iters: int = 50) -> dict[str, dict[str, float]]:
    """Latency of a cascade end to end (find faces, crop, classify) on the first image of ``data``'s
    evaluated split, per thread count: a cascade has no single network forward to time."""
    import os

    import torch

    from facewear.constants import IMAGE_SUFFIXES
    from facewear.data.layout import load_spec, split_paths
    from facewear.io import read_image

    from .registry import load_detector

    s = load_spec(data)
    images, _, _ = split_paths(s, "test" if "test" in s else "val")
    first = next((p for p in sorted(images.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES), None)
    if first is None:
        raise FileNotFoundError(f"{images}: no image to time the cascade on")
    frame = read_image(first)
    res = {}
    for n in threads:
        det = load_detector(spec, imgsz=imgsz, threads=n)
        res[f"{n}t"] = latency(det, frame, warmup=min(10, iters), iters=iters)
    torch.set_num_threads(os.cpu_count() or 1)
    return res


def time_variants(pt: Path, onnx_files: dict[str, Path], imgsz: int, threads: tuple[int, ...] = (1, 2),
                  iters: int = 50) -> dict[str, dict[str, Any]]:
    """Latency of the network forward at batch 1 for torch and each ONNX file, per thread count."""
    import torch
    from ultralytics import YOLO

    from facewear.ort import ort_session

    from .registry import sniff

    x = np.random.default_rng(0).random((1, 3, imgsz, imgsz), dtype=np.float32)
    res: dict[str, dict[str, Any]] = {}
    if sniff(pt) == "frcnn":  # a square frame's network forward, as for YOLO
        from .frcnn.model import ExportWrapper, load_checkpoint

        m = ExportWrapper(load_checkpoint(pt)[0]).eval()
    else:
        m = YOLO(str(pt)).model.float().eval()
    for n in threads:
        torch.set_num_threads(n)
        with torch.no_grad():
            res.setdefault("torch", {})[f"{n}t"] = latency(lambda z: m(torch.from_numpy(z)), x, iters=iters)
    torch.set_num_threads(os.cpu_count() or 1)
    for prec, f in onnx_files.items():
        for n in threads:
            s = ort_session(f, n)
            nm = s.get_inputs()[0].name
            res.setdefault(f"onnx-{prec}", {})[f"{n}t"] = latency(lambda z, s=s, nm=nm: s.run(None, {nm: z}), x,
                                                                  iters=iters)
    return res


__all__ = ["cascade_latency", "time_variants", "video_fps"]
