"""facewear data pack / unpack: shards of a chosen size with checksums, verified and restored into a usable spec."""
from __future__ import annotations

import json
import tarfile
from pathlib import Path

import cv2
import pytest
from conftest import make_det_dataset

from facewear.cli import main
from facewear.data.layout import load_spec, resolved_spec_file, split_image_files


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def dataset(tmp_path) -> Path:
    """The tiny coloured-squares dataset (64 px images), with a held-out-style extra key in its spec."""
    spec = make_det_dataset(tmp_path / "d", n_train=10, n_val=4, size=64)
    spec.write_text(spec.read_text() + "heldout: false\n")
    return spec


def test_pack_unpack_round_trip_is_byte_exact(dataset, tmp_path, capsys):
    from facewear.data.pack import pack
    from facewear.data.unpack import unpack

    man = pack(dataset, tmp_path / "packed", shard_size="25KB", progress=False)
    shards = sorted((tmp_path / "packed").glob("spec-*.tar"))
    assert len(shards) == len(man["shards"]) > 1  # ~14 images of ~2-3 KB, labels, meta, COCO in 25 KB shards
    assert all(s.stat().st_size <= 25_000 for s in shards)
    sums = (tmp_path / "packed" / "SHA256SUMS").read_text().splitlines()
    assert [ln.split()[1] for ln in sums] == [s.name for s in shards]
    assert not list((tmp_path / "packed").glob(".*"))  # no scratch or temporary file left
    for s in shards:  # an image and its label file share a shard
        names = tarfile.open(s).getnames()
        for n in names:
            if n.startswith("images/"):
                lab = "labels/" + n[len("images/"):].rsplit(".", 1)[0] + ".txt"
                assert lab in names
    spec_path = unpack(tmp_path / "packed", tmp_path / "restored", progress=False)
    assert spec_path == tmp_path / "restored" / "spec.yaml"
    src, got = files_of(dataset.parent), files_of(tmp_path / "restored")
    got.pop("spec.yaml")
    src.pop("spec.yaml")
    assert got == src
    spec = load_spec(spec_path)
    assert spec["path"] == str((tmp_path / "restored").resolve()) and spec["heldout"] is False
    assert spec["names"] == load_spec(dataset)["names"]
    assert len(split_image_files(spec, "train")) == 10 and len(split_image_files(spec, "val")) == 4
    assert "restored" in resolved_spec_file(spec_path).read_text()  # what facewear train yolo hands ultralytics
    # deterministic shards: packing again gives the same checksums
    again = pack(dataset, tmp_path / "packed2", shard_size="25KB", progress=False)
    assert [s["sha256"] for s in again["shards"]] == [s["sha256"] for s in man["shards"]]


def test_pack_at_training_size_shrinks_images_and_rescales_coco(dataset, tmp_path):
    from facewear.data.pack import pack
    from facewear.data.unpack import unpack

    man = pack(dataset, tmp_path / "p", imgsz=32, progress=False)
    assert man["imgsz"] == 32 and man["folders"]["images/train"]["resized"] == 10
    out = tmp_path / "r"
    unpack(tmp_path / "p", out, spec=tmp_path / "r.yaml", progress=False)
    img = cv2.imread(str(out / "images" / "train" / "train0.jpg"))
    assert img.shape[:2] == (32, 32)
    assert (out / "labels" / "train" / "train0.txt").read_text() == \
        (dataset.parent / "labels" / "train" / "train0.txt").read_text()  # normalised: unchanged
    old = json.loads((dataset.parent / "coco" / "val.json").read_text())
    new = json.loads((out / "coco" / "val.json").read_text())
    assert [(i["width"], i["height"]) for i in new["images"]] == [(32, 32)] * 4
    for a, b in zip(old["annotations"], new["annotations"]):
        assert b["bbox"] == pytest.approx([v / 2 for v in a["bbox"]], abs=0.01)
    assert load_spec(tmp_path / "r.yaml")["path"] == str(out.resolve())


def test_unpack_names_a_corrupt_or_missing_shard_and_writes_nothing(dataset, tmp_path):
    from facewear.data.pack import pack
    from facewear.data.unpack import unpack

    pack(dataset, tmp_path / "p", shard_size="25KB", progress=False)
    shards = sorted((tmp_path / "p").glob("*.tar"))
    data = bytearray(shards[1].read_bytes())
    data[700] ^= 0xFF  # one flipped byte inside the first member
    shards[1].write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"{shards[1].name}: checksum mismatch"):
        unpack(tmp_path / "p", tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists() and not list(tmp_path.glob("r.partial-*"))
    shards[1].unlink()
    with pytest.raises(FileNotFoundError, match=rf"shard\(s\) missing: {shards[1].name}"):
        unpack(tmp_path / "p", tmp_path / "r", progress=False)
    # the CLI: one line naming the shard, exit 2
    assert main(["data", "unpack", str(tmp_path / "p"), "--out", str(tmp_path / "r"), "--no-progress"]) == 2


def test_existing_outputs_are_refused(dataset, tmp_path, capsys):
    from facewear.data.pack import pack, parse_size
    from facewear.data.unpack import unpack

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="already exists; pack never overwrites"):
        pack(dataset, tmp_path / "taken", progress=False)
    pack(dataset, tmp_path / "p", progress=False)
    with pytest.raises(ValueError, match="already exists; unpack never overwrites"):
        unpack(tmp_path / "p", tmp_path / "taken", progress=False)
    (tmp_path / "s.yaml").write_text("mine")
    with pytest.raises(ValueError, match="s.yaml: already exists"):
        unpack(tmp_path / "p", tmp_path / "new", spec=tmp_path / "s.yaml", progress=False)
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine" and (tmp_path / "s.yaml").read_text() == "mine"
    assert not (tmp_path / "new").exists()
    with pytest.raises(ValueError, match="inside the dataset"):
        pack(dataset, dataset.parent / "packed", progress=False)
    assert main(["data", "pack", "--data", str(dataset), "--out", str(tmp_path / "taken"), "--no-progress"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert parse_size("64MB") == 64_000_000 and parse_size("1.5GiB") == int(1.5 * 2**30)
    with pytest.raises(ValueError, match="--shard-size"):
        parse_size("64 parsecs")


def test_reencode_shrinks_jpegs_keeps_size_and_labels(dataset, tmp_path):
    """--reencode re-encodes JPEGs that are not shrunk (same pixels size, smaller bytes at a low quality); COCO and
    labels are untouched; without it they go in byte for byte."""
    from facewear.data.pack import pack
    from facewear.data.unpack import unpack

    src = dataset.parent / "images" / "train" / "train0.jpg"
    man = pack(dataset, tmp_path / "p", quality=30, reencode=True, progress=False)
    assert man["reencode"] is True and man["quality"] == 30
    assert man["folders"]["images/train"] == {**man["folders"]["images/train"], "reencoded": 10, "resized": 0}
    out = tmp_path / "r"
    unpack(tmp_path / "p", out, progress=False)
    got = out / "images" / "train" / "train0.jpg"
    assert got.read_bytes() != src.read_bytes() and got.stat().st_size < src.stat().st_size
    assert cv2.imread(str(got)).shape == cv2.imread(str(src)).shape
    assert (out / "coco" / "val.json").read_bytes() == (dataset.parent / "coco" / "val.json").read_bytes()
    plain = pack(dataset, tmp_path / "q", quality=30, progress=False)  # --quality alone touches nothing
    assert plain["quality"] is None and plain["folders"]["images/train"]["reencoded"] == 0


def test_gpu_train_script_parses_and_shows_usage():
    """tools/gpu_train_yolo.sh (prepare / receive / train on a bare GPU machine): valid bash; with no step it prints
    its usage (and no code) and exits 2 without touching anything."""
    import subprocess

    from facewear.constants import REPO_ROOT

    script = REPO_ROOT / "tools" / "gpu_train_yolo.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    r = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert r.returncode == 2 and "prepare" in r.stdout and "receive" in r.stdout and "train OUT" in r.stdout
    assert "set -euo" not in r.stdout and "cd " not in r.stdout


def test_resized_reports_shrinking_and_keeps_what_reencoding_would_not_shrink(tmp_path):
    """_resized: a tall image whose width rounds to itself is still reported shrunk (so its COCO entry is
    rescaled); --reencode leaves PNGs alone and keeps a JPEG whose re-encoding would be larger."""
    import numpy as np

    from facewear.data.pack import _resized

    rng = np.random.default_rng(0)
    tall = tmp_path / "tall.jpg"
    cv2.imwrite(str(tall), rng.integers(0, 255, (641, 300, 3), np.uint8))
    data, scale, size, shrunk = _resized(tall, 640, 90, reencode=True)
    assert shrunk and size == (300, 640) and scale == pytest.approx(640 / 641)
    png = tmp_path / "a.png"
    cv2.imwrite(str(png), rng.integers(0, 255, (40, 40, 3), np.uint8))
    assert _resized(png, None, 30, reencode=True) is None
    low = tmp_path / "low.jpg"
    cv2.imwrite(str(low), rng.integers(0, 255, (64, 64, 3), np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 20])
    assert _resized(low, None, 95, reencode=True) is None  # quality 95 would make it larger
    data, scale, size, shrunk = _resized(low, None, 10, reencode=True)
    assert not shrunk and scale == 1.0 and size == (64, 64) and len(data) < low.stat().st_size
