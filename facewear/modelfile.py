"""What a model file holds, read from its header only: the one kind-sniffing function.

An ONNX file is read for its metadata (``onnx.load`` without external data; no session is built). A torch
``.pt`` is read with ``torch.load(weights_only=True, mmap=True)``: the pickle is parsed with the safe unpickler
and the tensors stay mapped on disk, so routing a checkpoint neither runs pickled code nor reads its weights.
The layers above map the header to a model kind (``detection.registry.sniff``, ``classification.export``).
"""
from __future__ import annotations

import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: ``ModelFile.format`` values
FORMATS = ("onnx", "checkpoint", "torchscript", "pickle")


@dataclass(frozen=True)
class ModelFile:
    """The header of a model file.

    ``format``: ``onnx``; ``checkpoint`` (a ``weights_only``-safe torch file, e.g. facewear's Faster R-CNN and
    classifier dicts); ``torchscript``; or ``pickle`` (a torch file that pickles Python objects, e.g. an
    ultralytics YOLO checkpoint, never unpickled here). ``arch``: the ``arch`` the file records ('' when none).
    ``keys``: a checkpoint dict's top-level keys. ``meta``: ONNX metadata (string to string)."""

    path: Path
    format: str
    arch: str = ""
    keys: tuple[str, ...] = ()
    meta: dict[str, str] = field(default_factory=dict)


def onnx_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict; ``{}`` when the file cannot be parsed."""
    import onnx

    try:
        m = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - onnx raises DecodeError, OSError, ...; "not ours" either way
        return {}
    return {p.key: p.value for p in m.metadata_props}


def read_header(path: str | Path) -> ModelFile:
    """The :class:`ModelFile` of ``path`` (``.onnx``: metadata; anything else: a torch file).

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: naming the file, when torch cannot read it at all (junk bytes, a truncated file).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: model file not found")
    if p.suffix.lower() == ".onnx":
        meta = onnx_metadata(p)
        return ModelFile(p, "onnx", meta.get("arch", ""), (), meta)
    import torch

    is_zip = zipfile.is_zipfile(p)
    if is_zip:
        with zipfile.ZipFile(p) as z:
            if any(n.endswith("/constants.pkl") for n in z.namelist()):  # TorchScript archives carry one
                return ModelFile(p, "torchscript")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj: Any = torch.load(p, map_location="cpu", weights_only=True, mmap=is_zip)
    except Exception as e:  # noqa: BLE001 - junk bytes make the unpickler raise anything (IndexError, KeyError...)
        if "Unsupported global" in str(e):  # a pickle of Python objects (ultralytics): not unpickled here
            return ModelFile(p, "pickle")
        raise ValueError(f"{p}: not a torch checkpoint ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if not isinstance(obj, dict):
        return ModelFile(p, "checkpoint")
    return ModelFile(p, "checkpoint", str(obj.get("arch", "") or ""), tuple(map(str, obj)))


__all__ = ["FORMATS", "ModelFile", "onnx_metadata", "read_header"]
