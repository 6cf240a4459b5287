"""The small classifier (``mobilenet_v2_s16``: ImageNet mobilenet_v2 cut at stride 16) and class-balanced sampling."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_crop_root

from classification.models import PRETRAINED, build_model, count_params, pretrained_file


def test_s16_is_small() -> None:
    m, _ = build_model("mobilenet_v2_s16", pretrained=False)
    assert count_params(m) < 750_000  # <= 3 MB as fp32 (4 bytes a weight)
    assert m(torch.zeros(2, 3, 64, 64)).shape == (2, 4)


@pytest.mark.slow
def test_s16_keeps_the_imagenet_layers() -> None:
    if pretrained_file("mobilenet_v2_s16") is None:
        pytest.skip(f"{PRETRAINED['mobilenet_v2_s16'][0]} not installed")
    s16, start = build_model("mobilenet_v2_s16")
    full, _ = build_model("mobilenet_v2")
    assert start.startswith("imagenet")
    a, b = s16.state_dict(), full.state_dict()
    kept = [k for k in a if k.startswith("features.") and int(k.split(".")[1]) < 14]
    assert len(kept) > 100 and all(torch.equal(a[k], b[k]) for k in kept)


@pytest.mark.slow
def test_tiny_balanced_training_of_s16(tmp_path) -> None:
    from classification.runtime import load_classifier
    from classification.train import train

    root = make_crop_root(tmp_path / "crops")
    for i in range(6, 18):  # make "mask" 3x as common as the others: --balance draws it as often as each other
        src = root / "train" / "mask" / f"mask{i % 6}.jpg"
        (root / "train" / "mask" / f"mask{i}.jpg").write_bytes(src.read_bytes())
    res = train(arch="mobilenet_v2_s16", data=str(root), imgsz=32, epochs=1, batch=8, project=str(tmp_path / "runs"),
                name="t", threads=1, balance=True)
    assert res["arch"] == "mobilenet_v2_s16" and res["start"].startswith(("imagenet", "scratch"))
    clf = load_classifier(tmp_path / "runs" / "t" / "weights" / "best.pt")
    p = clf(np.zeros((2, 32, 32, 3), np.uint8))
    assert p.shape == (2, 4)


def test_balance_sampler_draws_classes_evenly(tmp_path, monkeypatch) -> None:
    """The sampler --balance builds: each class about a quarter of the draws although mask is 3x as common."""
    import classification.train as tr

    seen = {}

    def spy(ds, **kw):
        seen["sampler"] = kw.get("sampler")
        raise RuntimeError("stop")

    monkeypatch.setattr(tr, "DataLoader", spy)
    root = make_crop_root(tmp_path / "crops", n=4)
    for i in range(4, 12):
        (root / "train" / "mask" / f"mask{i}.jpg").write_bytes((root / "train" / "mask" / "mask0.jpg").read_bytes())
    with pytest.raises(RuntimeError, match="stop"):
        tr.train(arch="mobilenet_v2_050", data=str(root), imgsz=32, epochs=1, init="none",
                 project=str(tmp_path / "runs"), name="t", threads=1, balance=True)
    s = seen["sampler"]
    assert s is not None
    idx = np.array(list(iter(s)) + list(iter(s)) + list(iter(s)) + list(iter(s)))
    from classification.data import load_split
    from facewear.constants import CLASS_NAMES

    _, y, _ = load_split(root, "train", CLASS_NAMES)
    share = np.bincount(y[idx], minlength=4) / len(idx)
    assert np.bincount(y, minlength=4)[1] == 12 and np.all(np.abs(share - 0.25) < 0.12)
