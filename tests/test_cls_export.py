"""Crop-classifier export: ONNX fp32/fp16/int8, TorchScript int8/fp16, agreement, CLI, bad input, QAT hook.

Tiny inputs (32 px) and untrained weights keep it fast and offline; ``run`` is always checked through
``runtime.load_classifier``, the path users take.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import synth_image

from classification.export import (
    FORMATS,
    calibration_crops,
    checkpoint_kind,
    convert_qat,
    export_torch_int8,
    load_checkpoint,
    prepare_qat,
    run,
)
from classification.models import ARCHS, build_model
from classification.runtime import OnnxClassifier, TorchClassifier, load_classifier
from facewear.constants import CLASS_NAMES

SZ = 32


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny inputs gain nothing from threads, and busy CPUs make torch's thread pool spin (10x slower)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def make_ckpt(path: Path, arch: str, imgsz: int = SZ) -> Path:
    """A training-checkpoint dict (random weights, seeded) as ``classification/train.py`` saves it."""
    torch.manual_seed(0)
    model, _ = build_model(arch, pretrained=False)
    # untrained BatchNorm statistics (mean 0, var 1) let activations die out at init, so every input gives
    # the same logits; a few train-mode passes set real statistics, and a scaled head spreads the logits
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(8, 3, imgsz, imgsz))
        head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
        head.weight.mul_(20)
    model.eval()
    torch.save({"arch": arch, "imgsz": imgsz, "margin": 0.15, "class_names": list(CLASS_NAMES),
                "model": model.state_dict(), "epoch": 3, "optimizer": None, "metrics": {"top1": 0.5}}, path)
    return path


def crop_array(n: int = 12, size: int = SZ) -> np.ndarray:
    return np.stack([synth_image(size, size, seed=i, boxes=[(4 + i % 5, 6, 20 + i % 7, 26)]) for i in range(n)])


@pytest.fixture
def crops_root(tmp_path) -> Path:
    """``<root>/<split>/<class>/*.jpg`` stored context crops (48 px), like ``build/crops``."""
    import cv2

    root = tmp_path / "crops"
    for split, n in (("train", 4), ("val", 2)):
        for c, name in enumerate(CLASS_NAMES):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(n):
                img = synth_image(48, 48, seed=10 * c + i, boxes=[(14, 14, 34, 34)])
                cv2.imwrite(str(d / f"{i}.jpg"), img)
    return root


@pytest.mark.parametrize("arch", ARCHS)
def test_every_arch_exports_onnx_and_agrees(arch, tmp_path):
    pt = make_ckpt(tmp_path / f"{arch}.pt", arch)
    rep = run(pt, formats=["onnx"], calib=crop_array(), check=12, out_dir=tmp_path / "out")
    r = rep["files"]["onnx"]
    f = Path(r["file"])
    assert f == tmp_path / "out" / f"{arch}.onnx" and f.is_file()
    ref = load_classifier(pt)
    logits = ref.logits(np.ascontiguousarray(np.random.default_rng(0).standard_normal((2, 3, SZ, SZ)), np.float32))
    assert np.ptp(logits, axis=0).max() > 0.1  # inputs matter: the agreement below means something
    assert r["max_abs_logit_diff"] < 1e-3 * max(1.0, float(np.abs(logits).max()))
    assert r["top1_agreement"] == 100.0 and r["samples"] == 12
    clf = load_classifier(f)
    assert isinstance(clf, OnnxClassifier)
    assert (clf.arch, clf.imgsz, clf.margin, clf.names) == (arch, SZ, 0.15, CLASS_NAMES)
    p = clf(crop_array(3))  # dynamic batch: 3 although exported with 1
    assert p.shape == (3, 4) and np.allclose(p.sum(1), 1, atol=1e-5)
    rep_json = json.loads((tmp_path / "out" / f"{arch}.export.json").read_text())
    assert rep_json["files"]["onnx"]["bytes"] == f.stat().st_size


@pytest.mark.slow
def test_all_formats_small_arch_load_through_runtime(tmp_path, crops_root):
    pt = make_ckpt(tmp_path / "m.pt", "mobilenet_v2_050")
    rep = run(pt, calib=crops_root, n_calib=16, check=8)
    assert list(rep["files"]) == list(FORMATS)
    assert rep["calibration"] == {"source": str(crops_root / "train"), "crops": 16}
    assert rep["check"]["source"] == str(crops_root / "val")
    names = {"onnx": "m.onnx", "onnx-fp16": "m-fp16.onnx", "onnx-int8": "m-int8.onnx", "torch-int8": "m-int8.pt",
             "torch-fp16": "m-fp16.pt"}
    crops = crop_array(5)
    for fmt, name in names.items():
        f = tmp_path / name
        assert Path(rep["files"][fmt]["file"]) == f and f.is_file(), fmt
        clf = load_classifier(f)
        assert (clf.arch, clf.imgsz, clf.names) == ("mobilenet_v2_050", SZ, CLASS_NAMES), fmt
        p = clf(crops)
        assert p.shape == (5, 4) and np.isfinite(p).all() and np.allclose(p.sum(1), 1, atol=1e-3), fmt
    fp16 = load_classifier(tmp_path / "m-fp16.onnx")
    assert not fp16.fp16  # float32 inputs kept
    th = load_classifier(tmp_path / "m-fp16.pt")
    assert isinstance(th, TorchClassifier) and th.half
    # an untrained deep net amplifies rounding (see test_quantized_exports_agree for real weights): loose bounds
    for fmt in ("onnx-fp16", "torch-fp16"):
        assert rep["files"][fmt]["max_abs_prob_diff"] < 0.3, fmt
    import onnx

    ops = {n.op_type for n in onnx.load(str(tmp_path / "m-int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    ts = torch.jit.load(str(tmp_path / "m-int8.pt"))
    assert "quantized::conv2d" in str(ts.inlined_graph)
    assert all(r["samples"] == 8 for r in rep["files"].values())
    assert json.loads((tmp_path / "m.export.json").read_text())["files"].keys() == set(FORMATS)
    assert not list(tmp_path.glob("*.part"))


@pytest.mark.slow
def test_quantized_exports_agree(tmp_path):
    """int8 and fp16 against fp32 on ImageNet weights: random deep nets amplify rounding chaotically, so
    agreement needs trained weights (the offline mobilenet_v2 package; skipped where it is absent)."""
    from classification.models import pretrained_file

    if pretrained_file("mobilenet_v2") is None:
        pytest.skip("mobilenet_v2 ImageNet weights package not installed")
    torch.manual_seed(0)
    model, start = build_model("mobilenet_v2", pretrained=True)
    assert start.startswith("imagenet")
    pt = tmp_path / "p.pt"
    torch.save({"arch": "mobilenet_v2", "imgsz": SZ, "margin": 0.15, "class_names": list(CLASS_NAMES),
                "model": model.state_dict()}, pt)
    rep = run(pt, formats=["onnx-fp16", "onnx-int8", "torch-int8"], calib=crop_array(32), n_calib=16, check=32)
    files = rep["files"]
    assert files["onnx-fp16"]["top1_agreement"] == 100.0 and files["onnx-fp16"]["max_abs_prob_diff"] < 0.01
    for fmt in ("onnx-int8", "torch-int8"):
        assert files[fmt]["top1_agreement"] >= 90.0, fmt
        assert files[fmt]["max_abs_prob_diff"] < 0.15, fmt
    assert files["onnx-int8"]["bytes"] < 0.7 * files["onnx-fp16"]["bytes"]  # int8 weights are half of fp16's


@pytest.mark.slow
def test_cli_export_classifier(tmp_path, crops_root, capsys):
    from facewear.cli import main

    pt = make_ckpt(tmp_path / "c.pt", "mobilenet_v2_050")
    out = tmp_path / "out"
    rc = main(["export", "--model", str(pt), "--formats", "fp32", "torch-int8", "--calib-dir", str(crops_root),
               "--calib", "8", "--check", "4", "--out-dir", str(out)])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["c-int8.pt", "c.export.json", "c.onnx"]
    rep = json.loads((out / "c.export.json").read_text())
    assert set(rep["files"]) == {"onnx", "torch-int8"} and rep["check"]["crops"] == 4
    assert "top-1 agree" in capsys.readouterr().out
    assert main(["export", "--model", str(pt), "--imgsz", "64", "--out-dir", str(out)]) == 2
    assert "imgsz" in capsys.readouterr().err


def test_bad_input_is_a_clear_error(tmp_path):
    from facewear.cli import main

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint" * 8)
    with pytest.raises(ValueError, match="junk.pt"):
        run(junk)
    with pytest.raises(ValueError, match="junk.pt"):
        checkpoint_kind(junk)
    other = tmp_path / "other.pt"
    torch.save({"model": {}, "epoch": 1}, other)  # a checkpoint, but not a classifier's
    assert checkpoint_kind(other) == "other"
    with pytest.raises(ValueError, match="other.pt.*not a facewear classifier"):
        run(other)
    assert main(["export", "--model", str(junk)]) == 2
    with pytest.raises(FileNotFoundError):
        run(tmp_path / "absent.pt")
    pt = make_ckpt(tmp_path / "m.pt", "mobilenet_v2_050")
    with pytest.raises(ValueError, match="unknown classifier export format"):
        run(pt, formats=["tflite"])
    with pytest.raises(FileNotFoundError, match="calibration"):  # $FACEWEAR_BUILD (a temp dir) has no crops
        run(pt, formats=["onnx-int8"])
    assert not (tmp_path / "m-int8.onnx").exists()


def test_without_crops_checks_on_noise_and_benches(tmp_path):
    pt = make_ckpt(tmp_path / "m.pt", "mobilenet_v2_050")  # $FACEWEAR_BUILD (a temp dir) has no crops
    rep = run(pt, formats=["torch-fp16"], check=3, bench=True)
    assert rep["calibration"] == {"source": None, "crops": 0}
    assert rep["check"] == {"source": "noise", "crops": 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-fp16.pt", "m.export.json", "m.pt"]  # no ONNX
    assert rep["latency"]["torch-fp16"]["p50_ms"] > 0 and rep["latency"]["threads"] == 1


def test_failed_export_leaves_no_file(tmp_path, monkeypatch):
    pt = make_ckpt(tmp_path / "m.pt", "mobilenet_v2_050")

    def boom(model, args, f, **k):  # writes half a file, then fails
        Path(f).write_bytes(b"partial onnx")
        raise RuntimeError("exporter failed")

    monkeypatch.setattr(torch.onnx, "export", boom)
    with pytest.raises(RuntimeError, match="exporter failed"):
        run(pt, formats=["onnx"], calib=crop_array(), check=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_calibration_crops_balanced_and_resized(tmp_path, crops_root):
    import cv2

    c = calibration_crops(crops_root / "train", n=8, imgsz=24)
    assert c.shape == (8, 24, 24, 3) and c.dtype == np.uint8
    assert np.array_equal(c, calibration_crops(crops_root / "train", n=8, imgsz=24))  # seeded
    assert len(calibration_crops(crops_root / "train", n=1000, imgsz=SZ)) == 16  # all there are
    # round-robin over class folders: one of each although class 0 holds most files (flat colour = class)
    for c_, name in enumerate(CLASS_NAMES):
        d = tmp_path / "flat" / name
        d.mkdir(parents=True)
        for i in range(9 if c_ == 0 else 1):
            cv2.imwrite(str(d / f"{i}.png"), np.full((40, 40, 3), 40 + 50 * c_, np.uint8))
    got = calibration_crops(tmp_path / "flat", n=4, imgsz=16)
    assert sorted(int(g.mean()) for g in got) == [40, 90, 140, 190]
    arr = calibration_crops(crop_array(6, 40), n=4, imgsz=SZ)  # an array: sampled and resized
    assert arr.shape == (4, SZ, SZ, 3)
    with pytest.raises(FileNotFoundError):
        calibration_crops(crops_root / "absent")
    with pytest.raises(ValueError):
        calibration_crops(np.zeros((2, 8, 8), np.uint8))


@pytest.mark.slow
def test_qat_step_then_convert_and_export(tmp_path):
    pt = make_ckpt(tmp_path / "m.pt", "mobilenet_v2_050")
    model, meta = load_checkpoint(pt)
    x = torch.randn(4, 3, SZ, SZ)
    qat = prepare_qat(model, x[:1])
    assert any("FakeQuantize" in type(m).__name__ for m in qat.modules())
    opt = torch.optim.SGD(qat.parameters(), lr=0.01)
    before = [p.detach().clone() for p in qat.parameters()]
    loss = torch.nn.functional.cross_entropy(qat(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and any(not torch.equal(a, b) for a, b in zip(before, qat.parameters()))
    q = convert_qat(qat)
    with torch.no_grad():
        assert q(x).shape == (4, 4)
    f = export_torch_int8(q, meta, tmp_path / "m-qat-int8.pt", crop_array(2))
    assert "quantized::conv2d" in str(torch.jit.load(str(f)).inlined_graph)
    assert load_classifier(f)(crop_array(2)).shape == (2, 4)


@pytest.mark.slow
def test_qat_format_fine_tunes_on_crop_root(tmp_path, crops_root):
    """``torch-int8-qat``: fake-quant fine-tuning on the crop root's train split, then int8 TorchScript."""
    pt = make_ckpt(tmp_path / "m.pt", "mobilenet_v2_050")
    rep = run(pt, formats=["torch-int8-qat"], calib=crops_root, n_calib=8, check=8, qat_epochs=1)
    f = Path(rep["files"]["torch-int8-qat"]["file"])
    assert f.name == "m-int8-qat.pt" and rep["files"]["torch-int8-qat"]["precision"] == "int8"
    assert "quantized::conv2d" in str(torch.jit.load(str(f)).inlined_graph)
    with pytest.raises(FileNotFoundError, match="crop dataset root"):
        run(pt, formats=["torch-int8-qat"], calib=crop_array(8), n_calib=8, check=8, out_dir=tmp_path / "o")
