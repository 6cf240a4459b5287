"""The model registry: one parse of a model string, kinds sniffed from file headers without unpickling."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from detection.registry import ModelSpec, is_cascade_spec, model_files, model_name, parse, sniff
from facewear.constants import WEIGHTS_DIR
from facewear.modelfile import read_header


class _Sneaky:
    """Unpickling this writes a file: a full unpickle would leave it behind."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled"))


def test_sniff_reads_headers_only(tmp_path):
    frcnn = tmp_path / "f.pt"
    torch.save({"model": {}, "arch": "frcnn_mobilenet_v2_fpn", "config": {}, "class_names": [], "imgsz": 320}, frcnn)
    cls = tmp_path / "c.pt"
    torch.save({"model": {}, "arch": "mobilenet_v2", "imgsz": 64}, cls)
    half = tmp_path / "half.pt"  # an frcnn arch without the checkpoint's keys is not a Faster R-CNN checkpoint
    torch.save({"arch": "frcnn_mobilenet_v2_fpn"}, half)
    assert (sniff(frcnn), sniff(cls), sniff(half)) == ("frcnn", "cls", "yolo")
    marker = tmp_path / "marker.txt"
    obj = tmp_path / "obj.pt"
    with open(obj, "wb") as f:  # a torch file that pickles Python objects, as ultralytics' .pt files do
        torch.save({"model": _Sneaky(marker)}, f, pickle_module=pickle)
    h = read_header(obj)
    assert h.format == "pickle" and sniff(obj) == "yolo"
    assert not marker.exists(), "routing a file must not unpickle it"
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint" * 8)
    with pytest.raises(ValueError, match="junk.pt"):
        sniff(junk)
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        sniff(tmp_path / "absent.pt")


@pytest.mark.skipif(not (WEIGHTS_DIR / "yolov5n-facewear4.onnx").is_file(), reason="released weights not present")
def test_released_files_and_manifest_names():
    assert sniff(WEIGHTS_DIR / "yolov5n-facewear4.pt") == "yolo"
    assert sniff(WEIGHTS_DIR / "frcnn-mnv2-facewear4.pt") == "frcnn"
    assert sniff(WEIGHTS_DIR / "facewear-cls.onnx") == "cls"
    s = parse("yolov5n-facewear4-onnx")  # a name of weights/manifest.json
    assert s.path == WEIGHTS_DIR / "yolov5n-facewear4.onnx" and s.kind == "yolo"
    assert model_files("yolov5n-facewear4-onnx") == [WEIGHTS_DIR / "yolov5n-facewear4.onnx"]


def test_cascade_specs_parse_once(tmp_path):
    clf = tmp_path / "cls.onnx"
    clf.write_bytes(b"x")
    det = tmp_path / "face+det.onnx"  # a '+' in a real file name is no cut point
    det.write_bytes(b"x")
    s = parse(f"haar+{clf}")
    assert isinstance(s, ModelSpec) and s.is_cascade and s.kind == "cascade"
    assert (s.finder, s.classifier) == ("haar", str(clf))
    assert s.name == "haar+cls" and model_name(f"{det}+{clf}") == "face+det+cls"
    assert model_files(f"{det}+{clf}") == [det, clf]
    assert parse(s) is s
    assert not is_cascade_spec(det) and not is_cascade_spec(np.zeros(2))
    assert model_files("nope+x.onnx") == []  # an unknown finder: no files, no error
    with pytest.raises(ValueError, match="FINDER"):
        parse("mtcnn+")
