"""The model registry: what a ``--model`` string names, what kind of model a file holds, and which class runs it.

Every verb that takes a model goes through here (``load_detector``, ``export``, the model card, the benches):

* :func:`parse` reads a model string once into a :class:`ModelSpec`: a model file (``.pt`` / ``.onnx``), the
  name of a released model in ``weights/manifest.json`` (e.g. ``yolov5n-facewear4-onnx``), or a cascade spec
  ``FINDER+CLASSIFIER`` (:mod:`detection.cascade`);
* :func:`sniff` tells the kind of a file (``yolo``, ``frcnn``, ``cls`` or ``torchscript``) from its header only
  (:func:`facewear.modelfile.read_header`: ONNX metadata, or ``torch.load(weights_only=True, mmap=True)``), so
  routing a checkpoint never unpickles it;
* :data:`DETECTORS` maps ``(kind, suffix)`` to the function that builds the detector, as ultralytics' ``task_map``
  and timm's ``model_entrypoint`` do. The model modules never name this one: the arrows only point down.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from facewear.constants import CASCADE_FINDERS, CASCADE_SEP, WEIGHTS_DIR
from facewear.modelfile import read_header

from .detector import AgnosticNMS, Detector

#: what :func:`sniff` answers
KINDS = ("yolo", "frcnn", "cls", "torchscript")
DETECTOR_SUFFIXES = (".pt", ".onnx")


def sniff(path: str | Path) -> str:
    """The kind of model in ``path``, from its header: ``frcnn`` (a facewear Faster R-CNN checkpoint dict or an
    ONNX file whose metadata ``arch`` starts with ``frcnn``), ``cls`` (a crop-classifier checkpoint or ONNX: its
    ``arch`` is a classifier architecture), ``torchscript`` (a TorchScript archive: the classifier's torch
    exports), else ``yolo`` (an ultralytics pickle, an ONNX export without facewear's ``arch``).

    Raises FileNotFoundError when ``path`` is not a file, ValueError naming it when torch cannot read a
    ``.pt`` at all."""
    from classification.models import ARCHS

    from .frcnn.model import CKPT_KEYS

    h = read_header(path)
    if h.format == "torchscript":
        return "torchscript"
    if h.arch.startswith("frcnn") and (h.format == "onnx" or all(k in h.keys for k in CKPT_KEYS)):
        return "frcnn"
    if h.arch in ARCHS:
        return "cls"
    return "yolo"


# --- specs -------------------------------------------------------------------------------------
def is_cascade_spec(model: Any) -> bool:
    """True for a ``FINDER+CLASSIFIER`` string; an existing file whose name holds ``+`` stays a plain model."""
    if not isinstance(model, (str, os.PathLike)):
        return False
    s = os.fspath(model)
    return CASCADE_SEP in s and not Path(s).is_file()


def split_spec(spec: str | os.PathLike) -> tuple[str, str]:
    """``(finder, classifier)`` of a spec. The cut is the first ``+`` after a known finder or existing file.

    Raises ValueError when either part is empty or there is no ``+``."""
    s = os.fspath(spec)
    cuts = [i for i, ch in enumerate(s) if ch == CASCADE_SEP]
    if not cuts:
        raise ValueError(f"{s!r}: not a cascade spec (expected FINDER{CASCADE_SEP}CLASSIFIER)")
    cut = next((i for i in cuts if s[:i].lower() in CASCADE_FINDERS or Path(s[:i]).is_file()), cuts[0])
    finder, cls = s[:cut], s[cut + 1:]
    if not finder or not cls:
        raise ValueError(f"{s!r}: a cascade spec is FINDER{CASCADE_SEP}CLASSIFIER, e.g. "
                         f"mtcnn{CASCADE_SEP}weights/facewear-cls.onnx")
    return finder, cls


def finder_kind(name: str) -> str | Path:
    """The built-in finder name (lower case) or the detector file of a cascade's ``FINDER`` part.

    Raises FileNotFoundError for a missing detector file, ValueError for anything else."""
    if name.lower() in CASCADE_FINDERS:
        return name.lower()
    p = Path(name)
    if p.is_file():
        return p
    if p.suffix.lower() in DETECTOR_SUFFIXES:
        raise FileNotFoundError(f"{p}: face-finder detector file not found")
    raise ValueError(f"unknown face finder {name!r}: use one of {', '.join(CASCADE_FINDERS)} or a detector "
                     f"file ({'/'.join(DETECTOR_SUFFIXES)})")


def _manifest_file(name: str) -> Path | None:
    """The file of released model ``name`` in ``weights/manifest.json`` (None: no such name, or no manifest)."""
    from . import manifest

    if not manifest.MANIFEST.is_file():
        return None
    entry = next((m for m in manifest.load()["models"] if m["name"] == name), None)
    return None if entry is None else WEIGHTS_DIR / entry["file"]


@dataclass(frozen=True)
class ModelSpec:
    """A model string, parsed once (:func:`parse`).

    ``text``: as given. ``path``: the model file (None for a cascade). ``finder`` / ``classifier``: a cascade's
    two parts, unchecked (:meth:`build` and :attr:`files` check them)."""

    text: str
    path: Path | None = None
    finder: str | None = None
    classifier: str | None = None

    @property
    def is_cascade(self) -> bool:
        return self.path is None

    @cached_property
    def kind(self) -> str:
        """``cascade``, or the file's :func:`sniff` kind (``yolo`` when torch cannot read the ``.pt``: ultralytics
        then reports it, as it always has)."""
        if self.path is None:
            return "cascade"
        try:
            return sniff(self.path)
        except ValueError:
            return "yolo"

    @property
    def name(self) -> str:
        """A short name for reports: the file name, or ``finder+classifier`` stems for a cascade."""
        if self.path is not None:
            return Path(self.text).name
        f = self.finder.lower() if self.finder.lower() in CASCADE_FINDERS else Path(self.finder).stem
        return f"{f}{CASCADE_SEP}{Path(self.classifier).stem}"

    @property
    def files(self) -> list[Path]:
        """The weight files the model reads: the file, or a cascade's finder files then its classifier.

        Raises (cascade) FileNotFoundError / ValueError as :func:`finder_kind` does."""
        if self.path is not None:
            return [self.path]
        from .cascade import BUILTIN_FINDERS

        kind = finder_kind(self.finder)
        return [*(BUILTIN_FINDERS[kind].files() if isinstance(kind, str) else [kind]), Path(self.classifier)]

    @property
    def nbytes(self) -> int:
        """Size on disk of :attr:`files` (OSError when one is missing)."""
        return sum(f.stat().st_size for f in self.files)

    def build(self, imgsz: int | None = None, conf: float = 0.25, iou: float = 0.45, threads: int | None = None,
              agnostic: bool = False) -> Detector:
        """The detector that runs this model (see :func:`load_detector`)."""
        if self.path is None:
            return _cascade(self, imgsz, conf, iou, threads)
        p = self.path
        if not p.is_file():
            raise FileNotFoundError(f"{p}: model file not found")
        if p.suffix not in DETECTOR_SUFFIXES:
            raise ValueError(f"{p}: unknown model type {p.suffix!r} (expected .pt or .onnx)")
        make = DETECTORS.get((self.kind if self.kind == "frcnn" else "yolo", p.suffix))
        return make(p, imgsz, conf, iou, threads, agnostic)


def parse(model: str | os.PathLike | ModelSpec) -> ModelSpec:
    """``model`` as a :class:`ModelSpec`: a cascade spec ``FINDER+CLASSIFIER``, a file, or the name of a released
    model in ``weights/manifest.json`` (resolved to its file). Nothing is read from the files here.

    Raises ValueError for a malformed cascade spec (``mtcnn+``)."""
    if isinstance(model, ModelSpec):
        return model
    text = os.fspath(model)
    if is_cascade_spec(text):
        finder, cls = split_spec(text)
        return ModelSpec(text, None, finder, cls)
    p = Path(text)
    if not p.exists() and not p.suffix and CASCADE_SEP not in text:
        found = _manifest_file(text)
        if found is not None:
            return ModelSpec(text, found)
    return ModelSpec(text, p)


# --- the detectors, by (kind, suffix) ------------------------------------------------------------
def _yolo_pt(p: Path, imgsz: int | None, conf: float, iou: float, threads: int | None, agnostic: bool) -> Detector:
    from .yolo.detector import TorchYoloDetector

    return TorchYoloDetector(p, imgsz=imgsz, conf=conf, iou=iou, threads=threads, agnostic=agnostic)


def _yolo_onnx(p: Path, imgsz: int | None, conf: float, iou: float, threads: int | None, agnostic: bool) -> Detector:
    from .yolo.detector import OnnxYoloDetector

    return OnnxYoloDetector(p, imgsz=imgsz, conf=conf, iou=iou, threads=threads, agnostic=agnostic)


def _frcnn_pt(p: Path, imgsz: int | None, conf: float, iou: float, threads: int | None, agnostic: bool) -> Detector:
    from .frcnn.detector import FasterRCNNDetector

    return FasterRCNNDetector(p, imgsz=imgsz, conf=conf, iou=iou, threads=threads)


def _frcnn_onnx(p: Path, imgsz: int | None, conf: float, iou: float, threads: int | None,
                agnostic: bool) -> Detector:
    from .frcnn.detector import OnnxFasterRCNNDetector

    return OnnxFasterRCNNDetector(p, imgsz=imgsz, conf=conf, iou=iou, threads=threads)


#: (kind, suffix) -> builder(path, imgsz, conf, iou, threads, agnostic). A ``.pt`` or ``.onnx`` that is not
#: a facewear Faster R-CNN goes to the ultralytics YOLO detectors.
DETECTORS: dict[tuple[str, str], Callable[..., Detector]] = {
    ("yolo", ".pt"): _yolo_pt, ("yolo", ".onnx"): _yolo_onnx,
    ("frcnn", ".pt"): _frcnn_pt, ("frcnn", ".onnx"): _frcnn_onnx,
}


def _cascade(spec: ModelSpec, imgsz: int | None, conf: float, iou: float, threads: int | None) -> Detector:
    """Build the cascade a spec names: check both parts, load the classifier, build the finder (a built-in one,
    or any detector file through :func:`load_detector`), and hand both to :class:`CascadeDetector`.

    ``conf`` drops rows whose final score is below it (and is passed to a detector finder, whose score bounds
    the final one); ``imgsz`` and ``iou`` only matter for a detector finder."""
    import logging

    from classification.runtime import load_classifier

    from .cascade import CascadeDetector, DetectorFinder, builtin_finder

    kind = finder_kind(spec.finder)  # check both parts before loading anything
    cls_path = Path(spec.classifier)
    if not cls_path.is_file():
        raise FileNotFoundError(f"{cls_path}: classifier file not found (cascade spec {spec.text!r})")
    classifier = load_classifier(cls_path, threads)
    if isinstance(kind, str):
        finder = builtin_finder(kind, threads)
    else:
        finder = DetectorFinder(load_detector(kind, imgsz=imgsz, conf=conf, iou=iou, threads=threads))
    det = CascadeDetector(finder, classifier, conf)
    logging.getLogger("facewear.cascade").debug("cascade %s (classifier %s, %d px, margin %.2f)", det.source,
                                                classifier.arch or "?", classifier.imgsz, classifier.margin)
    return det


# --- the entry points --------------------------------------------------------------------------
def load_detector(model: str | Path | ModelSpec, imgsz: int | None = None, conf: float = 0.25, iou: float = 0.45,
                  threads: int | None = None, agnostic: bool = False) -> Detector:
    """The detector for a model file, a released model's name or a cascade spec ``FINDER+CLASSIFIER``.

    A facewear Faster R-CNN (checkpoint dict or ONNX with ``arch`` frcnn*) runs in :mod:`detection.frcnn.detector`
    (``imgsz`` None: the model's own size); any other ``.pt`` / ``.onnx`` in the ultralytics YOLO detectors
    (``.pt``: ``imgsz`` None is its training size, else 320); a cascade is built by :mod:`detection.cascade`.

    ``agnostic``: class-agnostic NMS (one box per object whatever its class) instead of class-wise NMS; the YOLO
    detectors run it in place of their own NMS, other detectors get an :class:`AgnosticNMS` pass on top.

    Raises FileNotFoundError naming a missing file, ValueError for an unknown file type, finder or a malformed
    spec."""
    det = parse(model).build(imgsz, conf, iou, threads, agnostic)
    if agnostic and not getattr(det, "agnostic", False):
        det = AgnosticNMS(det, iou)
    return det


def model_name(model: str | Path | ModelSpec) -> str:
    """A short name for reports: the file name, or ``finder+classifier`` stems for a cascade spec."""
    try:
        return parse(model).name
    except ValueError:  # a description that merely holds '+'
        return Path(model).name


def model_files(model: str | Path | ModelSpec) -> list[Path]:
    """The weight files a model spec reads: the file itself, or a cascade's finder and classifier files
    (``[]`` for a cascade whose parts do not resolve)."""
    try:
        return parse(model).files
    except (ValueError, FileNotFoundError):
        return []


def model_bytes(model: str | Path | ModelSpec) -> int:
    """Size on disk of a model file, or the sum of a cascade's weight files (errors as :attr:`ModelSpec.files`,
    OSError for a missing file)."""
    return parse(model).nbytes


__all__ = ["DETECTORS", "KINDS", "ModelSpec", "finder_kind", "is_cascade_spec", "load_detector", "model_bytes",
           "model_files", "model_name", "parse", "sniff", "split_spec"]
