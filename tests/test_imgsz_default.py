"""Without ``--imgsz`` a detector runs at its own input size: an ONNX file's fixed input, a .pt's training size."""
from __future__ import annotations

import json

from detection.registry import load_detector
from facewear.constants import WEIGHTS_DIR


def _released_size(file: str) -> int:
    entry = next(m for m in json.loads((WEIGHTS_DIR / "manifest.json").read_text())["models"] if m["file"] == file)
    return int(entry["input_size"])


def test_released_pt_runs_at_its_training_size_unless_told():
    size = _released_size("yolov5n-facewear4.pt")
    assert load_detector(str(WEIGHTS_DIR / "yolov5n-facewear4.pt")).imgsz == size
    assert load_detector(str(WEIGHTS_DIR / "yolov5n-facewear4.pt"), imgsz=256).imgsz == 256


def test_released_onnx_runs_at_its_input_size():
    assert load_detector(str(WEIGHTS_DIR / "yolov5n-facewear4.onnx")).imgsz == _released_size("yolov5n-facewear4.onnx")


def test_predict_cli_leaves_the_size_to_the_model():
    from facewear.cli import build_parser

    args = build_parser("predict").parse_args(["predict", "x.jpg"])
    assert args.imgsz is None


def test_export_default_size_is_the_checkpoint_training_size():
    from detection.yolo.detector import trained_imgsz

    assert trained_imgsz(WEIGHTS_DIR / "yolov5n-facewear4.pt") == _released_size("yolov5n-facewear4.pt")
