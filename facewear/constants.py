"""The one home of every constant shared across facewear.

Class names and ids, source-label maps, colours, default paths and the
environment variables that override them. Nothing else in the project
spells a class name or a default path.
"""
from __future__ import annotations

import os
from pathlib import Path

# --- classes ---------------------------------------------------------------
CLASS_NAMES: tuple[str, ...] = ("face", "mask", "sunglasses", "mask_sunglasses")
CLASS_IDS: dict[str, int] = {n: i for i, n in enumerate(CLASS_NAMES)}
FACE, MASK, SUNGLASSES, MASK_SUNGLASSES = range(4)

#: Labels used by the public sets, mapped onto our four classes.
SOURCE_CLASS_MAP: dict[str, str] = {
    "without_mask": "face",
    "with_mask": "mask",
    "mask_weared_incorrect": "mask",
    "with_incorrect_mask": "mask",
    # our own names map to themselves so converted data round-trips
    **{n: n for n in CLASS_NAMES},
}

#: BGR colours for drawing, one per class.
CLASS_COLORS_BGR: dict[int, tuple[int, int, int]] = {
    FACE: (60, 180, 75),
    MASK: (230, 130, 0),
    SUNGLASSES: (0, 140, 255),
    MASK_SUNGLASSES: (200, 40, 200),
}

# --- images ----------------------------------------------------------------
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
MIN_BOX_SIDE: float = 1.0  # boxes thinner than this (pixels) are degenerate

# --- paths -----------------------------------------------------------------
REPO_ROOT: Path = Path(__file__).resolve().parent.parent
DATASETS_DIR: Path = REPO_ROOT / "datasets"
WEIGHTS_DIR: Path = REPO_ROOT / "weights"
RUNS_DIR: Path = REPO_ROOT / "runs"  # default --project of every `facewear train` family: RUNS_DIR/<family>
BUILD_DIR_ENV = "FACEWEAR_BUILD"  # where built datasets go (git-ignored)
DATA_ROOT_ENV = "FACEWEAR_DATA"  # the public raw data (../shared/data)
SHARED_WEIGHTS_ENV = "FACEWEAR_SHARED_WEIGHTS"
#: the released detector that ``facewear predict`` / ``val`` use without ``--model``: its name in
#: ``weights/manifest.json`` (resolved from the installed package's ``weights/``, not the current folder)
DEFAULT_DETECTOR: str = "yolov5n-facewear4-onnx"

SEED: int = 0


def default_build_dir() -> Path:
    """Folder that receives built datasets (git-ignored ``build/`` by default)."""
    return Path(os.environ.get(BUILD_DIR_ENV, REPO_ROOT / "build")).resolve()


def default_data_root() -> Path | None:
    """The raw public data: ``$FACEWEAR_DATA``, else ``../shared/data`` if it exists."""
    env = os.environ.get(DATA_ROOT_ENV)
    if env:
        return Path(env).resolve()
    for cand in (REPO_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"):
        if cand.is_dir():
            return cand.resolve()
    return None


def default_shared_weights() -> Path | None:
    """``$FACEWEAR_SHARED_WEIGHTS`` or ``../shared/weights`` when present."""
    env = os.environ.get(SHARED_WEIGHTS_ENV)
    if env:
        return Path(env).resolve()
    root = default_data_root()
    if root is not None and (root.parent / "weights").is_dir():
        return (root.parent / "weights").resolve()
    return None

# --- crop classifier (classification/) -------------------------------------
CLS_IMGSZ: int = 64  # our chosen classifier input (square, pixels): held-out faces are ~52 px (median) wide
CLS_REF_IMGSZ: int = 112  # the input size the classifier's latency requirement is stated at; timed alongside
CLS_MARGIN: float = 0.15  # a face crop is a square of side max(w, h) * (1 + margin), centred on the box
CLS_MEAN_RGB: tuple[float, float, float] = (0.485, 0.456, 0.406)  # ImageNet statistics
CLS_STD_RGB: tuple[float, float, float] = (0.229, 0.224, 0.225)
CLS_STORE_SIZE: int = 128  # side of the stored context crops in build/crops (see classification/crops.py)
CLS_STORE_CONTEXT: float = 1.6  # a stored crop spans max(w, h) * this, so training can jitter the box

# --- cascade: face finder + crop classifier (detection/cascade.py) ------
CASCADE_SEP: str = "+"  # model spec FINDER+CLASSIFIER, e.g. mtcnn+weights/facewear-cls.onnx
CASCADE_FINDERS: tuple[str, ...] = ("mtcnn", "haar", "centerface")  # built-in finders; a detector file also works
CENTERFACE_IMGSZ: int = 640  # CenterFace input, long side (pixels)
CENTERFACE_THRESHOLD: float = 0.3  # keep CenterFace faces with at least this score
CASCADE_FINDER_IOU: float = 0.45  # class-agnostic NMS that merges a detector finder's classes into one face
MTCNN_THRESHOLD: float = 0.9  # keep MTCNN faces with at least this face probability
MTCNN_MIN_FACE: int = 20  # smallest face MTCNN looks for (pixels)
HAAR_CASCADE_FILE: str = "haarcascade_frontalface_default.xml"  # in cv2.data.haarcascades
HAAR_SCALE_FACTOR: float = 1.1
HAAR_MIN_NEIGHBORS: int = 5
HAAR_MIN_FACE: int = 20

# --- Faster R-CNN baseline (detection/frcnn*.py) ------------------------------
FRCNN_ARCH: str = "frcnn_mobilenet_v2_fpn"  # 'arch' of its checkpoints and ONNX files; every frcnn arch starts "frcnn"
FRCNN_IMGSZ: int = 320  # default long side of the network input (frames are resized keeping the aspect ratio)
#: anchor sides (pixels of the resized input), one tuple per FPN level: strides 8, 16, 32 and the max-pool level 64.
#: Faces in facewear4 span ~5-310 px at 320 (held-out median ~27 px), hence a small first level.
FRCNN_ANCHOR_SIZES: tuple[tuple[int, ...], ...] = ((12, 20), (32, 48), (64, 96), (128, 256))
FRCNN_ASPECT_RATIOS: tuple[float, ...] = (1.0, 1.25, 1.5)  # anchor height / width: face boxes are taller (median ~1.2)
FRCNN_FPN_CHANNELS: int = 128  # torchvision uses 256; half the FPN/RPN cost on a CPU
FRCNN_REPR_SIZE: int = 512  # width of the box head's two-layer MLP (torchvision: 1024)
FRCNN_FREEZE: int = 3  # frozen MobileNetV2 stages (of 6) with an ImageNet start, as torchvision's trainable_layers=3
FRCNN_RPN_TOPN: dict[str, int] = {"pre_train": 1000, "post_train": 500, "pre_test": 500, "post_test": 200}
FRCNN_SCORE_THRESH: float = 0.001  # the box head keeps detections from this score (mAP needs them); callers filter
FRCNN_NMS_IOU: float = 0.5  # class-wise NMS inside the box head (torchvision's default), also in the ONNX graph
FRCNN_MAX_DET: int = 100  # detections per image
FRCNN_CHECK_CONF: float = 0.05  # detections from this score are compared by the export agreement check
FRCNN_ONNX_OPSET: int = 17
