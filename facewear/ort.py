"""onnxruntime helpers shared by every ONNX model: one way to open a session and to stamp metadata."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def ort_session(path: str | Path, threads: int | None = None) -> Any:
    """A CPU ``InferenceSession`` with fixed threads (``threads`` or all cores intra-op, 1 inter-op) and quiet logs.

    Raises ``ValueError`` naming the file when onnxruntime cannot load it."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or os.cpu_count() or 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"{path}: onnxruntime cannot load it ({msg})") from None


def set_metadata(model: Any, props: dict[str, str]) -> None:
    """Set ``props`` as the ONNX model's ``metadata_props``, replacing keys already there and keeping the rest."""
    keep = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for k, v in props.items():
        e = model.metadata_props.add()
        e.key, e.value = k, v
