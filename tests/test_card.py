"""`facewear bench --suite card` on tiny models: an untrained Faster R-CNN checkpoint and a Haar + tiny-classifier
cascade on generated images; the card (md), card.json, plots and the README block are written, missing models are
listed as skipped, and bad input gives clear errors. CPU, no ../shared."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import make_det_dataset

from facewear.constants import CLASS_NAMES
from facewear.data.layout import write_spec

IMGSZ = 64


@pytest.fixture(autouse=True)
def _one_thread():
    """Keep torch on one thread, also after code that resets it (the card times 1 and 2 threads)."""
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)


def _tiny_frcnn(path: Path) -> Path:
    """An untrained Faster R-CNN checkpoint in the training format (no training: the card only needs a model)."""
    from detection.frcnn.model import build_model, default_config, save_checkpoint

    model, start = build_model(pretrained=False)
    return save_checkpoint(path, model, imgsz=IMGSZ, config=default_config(), epoch=0, args={}, metrics={},
                           start=start)


def _tiny_cls_onnx(path: Path) -> Path:
    """A from-scratch mobilenet_v2_050 classifier exported to ONNX fp32 (the released classifier's format)."""
    from classification.export import export_onnx, load_checkpoint
    from classification.models import build_model

    model, _ = build_model("mobilenet_v2_050", pretrained=False)
    ckpt = path.with_suffix(".pt")
    torch.save({"arch": "mobilenet_v2_050", "imgsz": 32, "margin": 0.15, "class_names": list(CLASS_NAMES),
                "model": model.state_dict(), "start": "scratch", "args": {"epochs": 0}}, ckpt)
    m, meta = load_checkpoint(ckpt)
    return export_onnx(m, meta, path)


def _video(path: Path, n: int = 4) -> Path:
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (IMGSZ, IMGSZ))
    for i in range(n):
        img = np.full((IMGSZ, IMGSZ, 3), 128, np.uint8)
        cv2.rectangle(img, (8 + i, 10), (30 + i, 32), (20, 60, 230), -1)
        vw.write(img)
    vw.release()
    return path


def _specs(tmp: Path) -> tuple[Path, Path]:
    """(held-out spec with a test split, synthetic spec with a val split) over one tiny generated dataset."""
    spec = make_det_dataset(tmp / "ds", n_train=1, n_val=3, size=IMGSZ)
    held = tmp / "held.yaml"
    write_spec(held, tmp / "ds", {"val": "images/val", "test": "images/val"})
    return held, spec


def test_default_models_discovery_and_skips(tmp_path):
    from detection.card import default_models

    models, skipped = default_models(tmp_path)  # nothing shipped
    assert models == []
    reasons = " | ".join(s["reason"] for s in skipped)
    assert "yolov5n-facewear4.pt not found" in reasons and "yolov5n-facewear4-int8.onnx not found" in reasons
    assert "Faster R-CNN not trained yet" in reasons
    casc = {s["model"].split("+")[0]: s["reason"] for s in skipped if "+" in s["model"]}
    assert "facewear-cls.onnx not found" in casc["mtcnn"] and "facewear-cls.onnx not found" in casc["haar"]
    assert "yolov5n-facewear4.onnx" in casc[str(tmp_path / "yolov5n-facewear4.onnx")]  # the finder is missing
    for n in ("yolov5n-facewear4.pt", "yolov5n-facewear4.onnx", "yolov5n-facewear4-fp16.onnx",
              "yolov5n-facewear4-int8.onnx", "frcnn-mv2.pt", "facewear-cls.onnx"):
        (tmp_path / n).write_bytes(b"x")  # discovery goes by files, it loads nothing
    models, skipped = default_models(tmp_path)
    names = [Path(m).name for m in models]
    assert names[:5] == ["yolov5n-facewear4.pt", "yolov5n-facewear4.onnx", "yolov5n-facewear4-fp16.onnx",
                         "yolov5n-facewear4-int8.onnx", "frcnn-mv2.pt"]
    assert [m.split("+")[0] for m in models[5:]] == ["mtcnn", "centerface", str(tmp_path / "yolov5n-facewear4.onnx"),
                                                     "haar"]
    assert all(m.endswith("+" + str(tmp_path / "facewear-cls.onnx")) for m in models[5:])
    assert all("not trained" not in s["reason"] for s in skipped)


def test_card_cli_tiny_models(tmp_path, monkeypatch):
    from detection import card
    from facewear.cli import main

    monkeypatch.setattr(card, "THREADS", (1,))  # 2 threads on a busy 2-core box cost seconds per call, not coverage

    held, spec = _specs(tmp_path)
    frcnn = _tiny_frcnn(tmp_path / "w" / "frcnn-tiny.pt")
    cls = _tiny_cls_onnx(tmp_path / "w" / "facewear-cls.onnx")
    video = _video(tmp_path / "v.mp4")
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\nintro\n\n<!-- card:begin -->\nstale\n<!-- card:end -->\n\n## Status\n")
    out = tmp_path / "card" / "README.md"
    missing = tmp_path / "w" / "missing.onnx"
    rc = main(["bench", "--suite", "card", "--model", str(frcnn), f"haar+{cls}", str(missing),
               f"mtcnn+{tmp_path / 'nope.onnx'}", "--data", str(held), "--synth-data", str(spec),
               "--video", str(video), "--out", str(out), "--readme", str(readme), "--imgsz", str(IMGSZ),
               "--iters", "2", "--slice-model", str(frcnn)])
    assert rc == 0
    res = json.loads((out.parent / "card.json").read_text())
    (sl,) = res["sliced"]  # sliced inference on and off, on the same images
    assert sl["model"] == "frcnn-tiny.pt" and sl["heldout"]["images"] == 3
    assert sl["heldout"]["slice"]["slice_size"] == IMGSZ and "slice" not in res["rows"][0]["heldout"]
    assert set(sl["heldout"]["small"]) >= {"instances", "AP50", "recall"}
    assert [r["model"] for r in res["rows"]] == ["frcnn-tiny.pt", "haar+facewear-cls"]
    assert {s["reason"] for s in res["skipped"]} == {f"{missing} not found", f"{tmp_path / 'nope.onnx'} not found"}
    fr, hc = res["rows"]
    assert fr["kind"] == "frcnn" and hc["kind"] == "cascade"
    for r in res["rows"]:
        assert r["heldout"]["images"] == 3 and r["synth"]["images"] == 3
        assert 0 <= r["heldout"]["mAP50"] <= 1 and set(r["heldout"]["per_class"]) == set(CLASS_NAMES)
        assert set(r["latency"]["end_to_end"]) == {"1t"}
        assert all(v["p50_ms"] > 0 for v in r["latency"]["end_to_end"].values())
        assert r["video"]["frames"] == 4 and r["video"]["fps"] > 0
        assert r["MB"] > 0
    assert set(fr["latency"]["network"]) == {"1t"}  # a detector file also gets the network forward alone
    assert hc["latency"]["network"] is None
    assert hc["MB"] > round(cls.stat().st_size / 1e6, 3)  # a cascade counts the Haar XML too
    # coloured squares are no faces: Haar finds nothing, so the cascade finds 0 % of every present class
    assert all(v["found"] in (0.0, None) for v in hc["heldout"]["found"].values())
    md = out.read_text()
    assert "| `frcnn-tiny.pt` | off |" in md and f"| `frcnn-tiny.pt` | on ({IMGSZ} px, overlap 0.2) |" in md
    for s in ("# facewear model card", "## Headline", "## Per class", "## Latency", "## How each fails",
              "## Sliced inference (`--slice`)",
              "`frcnn-tiny.pt`", "`haar+facewear-cls`", "Skipped:", "missing.onnx not found", "Machine:",
              "facewear bench --suite card", "plots/card_map_latency.png"):
        assert s in md, s
    for png in ("card_map_latency.png", "card_ap_per_class.png"):
        assert (out.parent / "plots" / png).stat().st_size > 1000
    text = readme.read_text()
    assert "stale" not in text and text.endswith("<!-- card:end -->\n\n## Status\n")
    assert "(card/README.md)" in text and "| `frcnn-tiny.pt` |" in text


def test_card_bad_input(tmp_path, capsys):
    from detection.card import run, write_readme_block
    from facewear.cli import main

    held, spec = _specs(tmp_path)
    out = tmp_path / "card.md"
    rc = main(["bench", "--suite", "card", "--model", str(tmp_path / "gone.pt"), "--data", str(held),
               "--synth-data", "none", "--video", "none", "--out", str(out)])
    assert rc == 2 and "gone.pt not found" in capsys.readouterr().err and not out.exists()
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        run(models=["haar+x.onnx"], data=str(tmp_path / "nope.yaml"), out=str(out))
    with pytest.raises(FileNotFoundError, match="clip.mp4"):
        run(models=["haar+x.onnx"], data=str(held), synth_data=str(spec), video=str(tmp_path / "clip.mp4"),
            out=str(out))
    plain = tmp_path / "plain.md"
    plain.write_text("no markers\n")
    assert write_readme_block(plain, "table\n") is False and plain.read_text() == "no markers\n"


def test_card_source_label_section():
    from detection.card import source_label_section

    fb = {"with_mask": {"n": 10, "found": 0.9, "named_if_found": 0.8},
          "with_incorrect_mask": {"n": 4, "found": 0.5, "named_if_found": None}}
    lines = source_label_section({"rows": [{"model": "a.onnx", "heldout": {"found_by_source_label": fb}},
                                           {"model": "b.onnx", "heldout": {}}]})
    assert "| model | with_mask found / named | with_incorrect_mask found / named |" in lines
    assert "| `a.onnx` | 90% / 80% (n 10) | 50% / - (n 4) |" in lines
    assert not any("b.onnx" in ln for ln in lines)  # a row that did not measure it is left out
    assert source_label_section({"rows": [{"model": "b.onnx", "heldout": {}}]}) == []
