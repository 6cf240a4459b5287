"""A re-release keeps a variant's rebuild recipe but never the previous file's figures (content hash, agreement)."""
from __future__ import annotations

import json

import onnx
from onnx import TensorProto, helper

from detection import manifest


def _tiny_onnx(path, doc: str) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], doc, [x], [y])
    onnx.save(helper.make_model(g), str(path))


def test_rerelease_refreshes_the_kept_rebuild_record(tmp_path, monkeypatch):
    monkeypatch.setattr(manifest, "MANIFEST", tmp_path / "manifest.json")
    f = tmp_path / "m-fp16.onnx"
    _tiny_onnx(f, "old")
    old_hash = manifest.content_sha256(f)
    rebuild = {"from": "m.pt", "format": "fp16", "check": "content_sha256", "content_sha256": old_hash,
               "agreement": {"metric": "detections_matched", "value": 0.5, "released_figures": {"stale": 1}}}
    (tmp_path / "manifest.json").write_text(json.dumps({"models": [
        {"name": "m-fp16-onnx", "file": f.name, "committed": False, "made_by": "facewear export ...",
         "rebuild": rebuild}]}))
    _tiny_onnx(f, "new")  # the re-released file
    kw = dict(task="detect", architecture="yolov5n", imgsz=416, precision="fp16", train_command="t", data="d")
    e = manifest.add_entry(f, name="m-fp16-onnx", metrics={"agreement_with_torch": {"detections_matched": 1.0}},
                           **kw)
    assert e["committed"] is False and e["made_by"] == "facewear export ..."  # the recipe is kept
    assert e["rebuild"]["content_sha256"] == manifest.content_sha256(f) != old_hash
    assert e["rebuild"]["agreement"]["value"] == 1.0
    assert e["rebuild"]["agreement"]["released_figures"] == {"detections_matched": 1.0}
    assert "with" not in e["rebuild"]["agreement"]  # no description given: none invented
    e = manifest.add_entry(f, name="m-fp16-onnx", metrics={}, **kw)  # not measured this time: no stale figures
    assert "released_figures" not in e["rebuild"]["agreement"]
    # a check that says what it ran on replaces the old description; the figures stay figures only
    e = manifest.add_entry(f, name="m-fp16-onnx", metrics={"agreement_with_torch": {"detections_matched": 1.0}},
                           agreement_on="5 labelled frames", **kw)
    assert e["rebuild"]["agreement"]["with"] == "5 labelled frames"
    assert e["rebuild"]["agreement"]["released_figures"] == {"detections_matched": 1.0}


def test_rerelease_of_a_checkpoint_records_its_own_training_command(tmp_path, monkeypatch):
    """A re-released checkpoint's ``made_by`` names its own training command, not the first release's."""
    monkeypatch.setattr(manifest, "MANIFEST", tmp_path / "manifest.json")
    f = tmp_path / "m.pt"
    f.write_bytes(b"new weights")
    (tmp_path / "manifest.json").write_text(json.dumps({"models": [
        {"name": "m", "file": f.name, "committed": True,
         "made_by": "trained: facewear train yolo --imgsz 320 --name old, released by tools/release_yolo.py"}]}))
    kw = dict(task="detect", architecture="yolov5n", imgsz=640, precision="fp16", data="d")
    e = manifest.add_entry(f, name="m", train_command="facewear train yolo --imgsz 640 --name new", **kw)
    assert e["made_by"] == "trained: facewear train yolo --imgsz 640 --name new, released by tools/release_yolo.py"
    assert e["committed"] is True
