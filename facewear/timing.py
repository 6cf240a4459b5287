"""Latency measurement (timm ``benchmark`` style: fixed threads, a warm-up, then timed calls) and a one-line
description of the machine the figures were taken on."""
from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def latency(fn: Callable[[Any], Any], x: Any, warmup: int = 10, iters: int = 50,
            threads: int | None = None) -> dict[str, float]:
    """p50 / p95 milliseconds of ``fn(x)`` over ``iters`` timed calls after ``warmup`` untimed ones.

    ``threads``: set torch's intra-op thread count to it for the measurement and restore the previous count
    after (None: leave it as the caller set it). Returns ``{"p50_ms": float, "p95_ms": float}``; whatever
    ``fn`` raises propagates."""
    prev = None
    if threads:
        import torch

        prev = torch.get_num_threads()
        torch.set_num_threads(threads)
    try:
        for _ in range(warmup):
            fn(x)
        ts = []
        for _ in range(iters):
            t0 = time.perf_counter()
            fn(x)
            ts.append((time.perf_counter() - t0) * 1000)
    finally:
        if prev is not None:
            import torch

            torch.set_num_threads(prev)
    return {"p50_ms": float(np.percentile(ts, 50)), "p95_ms": float(np.percentile(ts, 95))}


def machine() -> str:
    """A one-line description of this machine (CPU model, cores, Python, torch, onnxruntime)."""
    import onnxruntime
    import torch

    cpu = platform.processor() or "cpu"
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}, "
            f"onnxruntime {onnxruntime.__version__}")


__all__ = ["latency", "machine"]
