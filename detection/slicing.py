"""Sliced inference (SAHI) behind the one ``Detector`` interface: ``facewear predict --slice`` and ``val --slice``.

A crowd photo shrunk to a 320 px input leaves a 25 px face 6 px wide; cut into tiles of the model's input size,
the same face is seen at its own resolution. :class:`SlicedDetector` wraps any :class:`~detection.detector.Detector`:
the frame is cut into overlapping square slices (``slice_size``, default the model's input size; ``overlap`` 0.2
of a slice), each slice and (``full``, default) the whole frame go through the model, the boxes are shifted back
to frame pixels and merged by :func:`sahi.predict.get_sliced_prediction` (``sahi`` 0.12.8).

Which sahi model runs:

- an ultralytics ``.pt`` (:class:`~detection.yolo.detector.TorchYoloDetector`) goes through sahi's own ultralytics
  model (``AutoDetectionModel.from_pretrained(model_type="ultralytics", model=<the loaded YOLO>)``), with the
  detector's input size, confidence, NMS IoU and agnostic NMS;
- everything else (YOLO ``.onnx``, Faster R-CNN ``.pt``/``.onnx``, cascades, any Detector object) goes through
  :class:`DetectorModel`, sahi's ``DetectionModel`` around our Detector: sahi has no model for onnxruntime
  exports of ours, for facewear's Faster R-CNN checkpoints or for the cascades.

Merging (``merge``): ``auto`` (the default) is NMS over the intersection divided by the smaller box's area (IOS)
at ``match`` 0.5: a piece of a face cut by a slice border lies inside the whole face's box (IOS 1) and goes, and so
does the same face found in two slices or in a slice and the full image, while two neighbouring faces overlap
little. Measured with the released YOLOv5n on 200 held-out images (``facewear val``, conf 0.001) it kept face and
mask AP50 closest to full-image inference: sahi's greedy merging (``greedynmm``, its default at conf >= 0.1) grows
boxes out of low-score noise at val's 0.001 (mask AP50 0.13), and NMS over IoU (sahi's rule below 0.1) keeps the
cut pieces as false positives (face AP50 0.51-0.54 against 0.59 with IOS). ``greedynmm``, ``nmm`` and ``nms`` (over
IoU at the detector's NMS IoU) are sahi's own. Class names come from the detector, which takes them from
:data:`facewear.constants.CLASS_NAMES`.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from facewear.constants import CLASS_NAMES

#: default overlap between neighbouring slices, as a fraction of the slice side
SLICE_OVERLAP = 0.2
#: merge choices (``auto``: NMS over IOS; see the module text)
MERGES = ("auto", "greedynmm", "nmm", "nms")
EMPTY = np.zeros((0, 6), np.float32)


@contextlib.contextmanager
def _keep_pil_limit() -> Iterator[None]:
    """sahi's image reader sets ``PIL.Image.MAX_IMAGE_PIXELS = None`` for the whole process; put facewear's
    decompression-bomb limit (:func:`facewear.io.read_image`) back after each call."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def _names(detector: Any) -> tuple[str, ...]:
    return tuple(getattr(detector, "names", ()) or CLASS_NAMES)


def _sahi_base():
    from sahi.models.base import DetectionModel

    return DetectionModel


def detector_model(detector: Any, conf: float):
    """sahi's ``DetectionModel`` around any facewear Detector (frames in, ``(N, 6)`` boxes out)."""
    from sahi.prediction import ObjectPrediction
    from sahi.utils.compatibility import fix_full_shape_list, fix_shift_amount_list

    names = _names(detector)

    class DetectorModel(_sahi_base()):
        """A facewear :class:`~detection.detector.Detector` as a sahi model: sahi hands it RGB slices, it runs the
        detector on the BGR slice and turns its boxes into sahi ``ObjectPrediction`` objects (slice pixels,
        shifted by sahi to frame pixels)."""

        def load_model(self) -> None:  # the detector is always given
            raise ValueError("DetectorModel wraps a loaded facewear Detector (pass model=...)")

        def set_model(self, model: Any, **kwargs: Any) -> None:
            self.model = model

        def perform_inference(self, image: np.ndarray) -> None:
            bgr = np.ascontiguousarray(image[..., ::-1])
            dets = np.asarray(self.model(bgr), np.float32).reshape(-1, 6)
            self._original_predictions = [dets[dets[:, 4] >= self.confidence_threshold]]
            self._original_shapes = [image.shape]

        def _create_object_prediction_list_from_original_predictions(self, shift_amount_list=None,
                                                                      full_shape_list=None) -> None:
            shifts = fix_shift_amount_list(shift_amount_list or [[0, 0]])
            fulls = fix_full_shape_list(full_shape_list)
            per_image = []
            for i, dets in enumerate(self._original_predictions):
                h, w = self._original_shapes[i][:2]
                preds = []
                for x1, y1, x2, y2, s, c in dets.tolist():
                    box = [min(max(x1, 0.0), w), min(max(y1, 0.0), h), min(max(x2, 0.0), w), min(max(y2, 0.0), h)]
                    if box[2] <= box[0] or box[3] <= box[1]:
                        continue
                    c = int(c)
                    preds.append(ObjectPrediction(
                        bbox=box, category_id=c, score=float(s),
                        category_name=names[c] if 0 <= c < len(names) else str(c),
                        shift_amount=[int(v) for v in shifts[i]],
                        full_shape=[int(v) for v in fulls[i]] if fulls is not None else [h, w]))
                per_image.append(preds)
            self._object_prediction_list_per_image = per_image

    return DetectorModel(model=detector, confidence_threshold=conf, device="cpu",
                         category_mapping={str(i): n for i, n in enumerate(names)})


def sahi_model(detector: Any, conf: float):
    """The sahi model for ``detector``: sahi's ultralytics model for a torch YOLO, else :func:`detector_model`."""
    from .yolo.detector import TorchYoloDetector

    if isinstance(detector, TorchYoloDetector):
        from sahi import AutoDetectionModel

        yolo = detector.model
        # sahi passes conf, imgsz and device; NMS IoU and agnostic NMS come from the model's own overrides
        # (ultralytics merges them under each call's arguments; TorchYoloDetector passes its own explicitly)
        yolo.overrides.update(iou=detector.iou, agnostic_nms=bool(detector.agnostic))
        return AutoDetectionModel.from_pretrained(
            model_type="ultralytics", model=yolo, confidence_threshold=conf, image_size=detector.imgsz,
            device="cpu", category_mapping={str(i): n for i, n in enumerate(_names(detector))})
    return detector_model(detector, conf)


class SlicedDetector:
    """Any :class:`~detection.detector.Detector` run on overlapping slices plus the full frame, boxes merged (sahi).

    ``slice_size``: slice side in frame pixels (default: the detector's input size ``imgsz``, else 640);
    ``overlap``: fraction of a slice shared with its neighbour; ``full``: also run the whole frame (large faces);
    ``merge``/``match``: see the module text; ``agnostic``: merge across classes (default: the detector's own
    agnostic NMS setting)."""

    def __init__(self, detector: Any, slice_size: int | None = None, overlap: float = SLICE_OVERLAP,
                 full: bool = True, merge: str = "auto", match: float = 0.5, agnostic: bool | None = None) -> None:
        size = slice_size or getattr(detector, "imgsz", None) or 640
        if int(size) < 16:
            raise ValueError(f"--slice-size must be at least 16 px (got {size})")
        if not 0 <= overlap < 1:
            raise ValueError(f"--slice-overlap must be in [0, 1) (got {overlap})")
        if merge.lower() not in MERGES:
            raise ValueError(f"--slice-merge must be one of {', '.join(MERGES)} (got {merge!r})")
        if not 0 < match <= 1:
            raise ValueError(f"slice match threshold must be in (0, 1] (got {match})")
        self.detector = detector
        self.names = _names(detector)
        self.source = getattr(detector, "source", type(detector).__name__)
        self.conf = float(getattr(detector, "conf", 0.25))
        self.iou = float(getattr(detector, "iou", 0.45))
        self.agnostic = bool(getattr(detector, "agnostic", False) if agnostic is None else agnostic)
        self.slice_size, self.overlap, self.full = int(size), float(overlap), bool(full)
        merge = merge.lower()
        self.merge = "NMS" if merge == "auto" else merge.upper()
        self.metric = "IOU" if merge == "nms" else "IOS"
        self.match = self.iou if merge == "nms" else float(match)
        self.model = sahi_model(detector, self.conf)

    def settings(self) -> dict[str, Any]:
        """What a report records about the slicing."""
        return {"slice_size": self.slice_size, "overlap": self.overlap, "full": self.full, "merge": self.merge,
                "metric": self.metric, "match": self.match, "agnostic": self.agnostic,
                "sahi_model": type(self.model).__name__}

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        from sahi.predict import get_sliced_prediction

        rgb = np.ascontiguousarray(frame[..., ::-1])
        with _keep_pil_limit():
            res = get_sliced_prediction(
                rgb, self.model, slice_height=self.slice_size, slice_width=self.slice_size,
                overlap_height_ratio=self.overlap, overlap_width_ratio=self.overlap, perform_standard_pred=self.full,
                postprocess_type=self.merge, postprocess_match_metric=self.metric,
                postprocess_match_threshold=self.match, postprocess_class_agnostic=self.agnostic, verbose=0,
                force_postprocess_type=True)
        preds = res.object_prediction_list
        if not preds:
            return EMPTY
        out = np.array([[*p.bbox.to_xyxy(), p.score.value, p.category.id] for p in preds], np.float32)
        return out[np.argsort(-out[:, 4], kind="stable")]

    def __getattr__(self, name: str):  # imgsz, meta ... of the wrapped detector
        if name == "detector":
            raise AttributeError(name)
        return getattr(self.detector, name)


def maybe_sliced(detector: Any, slice: bool = False, slice_size: int | None = None,
                 slice_overlap: float = SLICE_OVERLAP, slice_merge: str = "auto") -> Any:
    """``detector`` itself, or wrapped in a :class:`SlicedDetector` with ``slice``: the CLI's options."""
    if not slice:
        if slice_size is not None:
            raise ValueError("--slice-size is an option of --slice")
        return detector
    return SlicedDetector(detector, slice_size=slice_size, overlap=slice_overlap, merge=slice_merge)


def add_slice_args(p) -> None:
    """``--slice``, ``--slice-size``, ``--slice-overlap``, ``--slice-merge`` (predict and val)."""
    p.add_argument("--slice", action="store_true",
                   help="sliced inference (sahi): overlapping slices of --slice-size plus the full image, boxes "
                        "merged; finds small faces in large crowd photos, at several times the cost")
    p.add_argument("--slice-size", type=int, default=None, metavar="PX",
                   help="slice side in image pixels (default: the model's input size, --imgsz)")
    p.add_argument("--slice-overlap", type=float, default=SLICE_OVERLAP, metavar="F",
                   help=f"overlap of neighbouring slices, fraction of a slice (default {SLICE_OVERLAP})")
    p.add_argument("--slice-merge", choices=MERGES, default="auto",
                   help="how the boxes of the slices and the full image are merged: auto (default: NMS over "
                        "intersection / smaller box at 0.5, so pieces of a face cut by a slice border go), or sahi's "
                        "greedynmm, nmm (merging over IOS 0.5) or nms (over IoU at --iou)")


__all__ = ["MERGES", "SLICE_OVERLAP", "SlicedDetector", "add_slice_args", "detector_model", "maybe_sliced",
           "sahi_model"]
