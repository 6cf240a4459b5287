"""Tests for ``facewear data stats`` and ``facewear data inspect`` on a tiny generated dataset."""
from __future__ import annotations

import importlib
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest

from facewear.cli import main
from facewear.constants import CLASS_NAMES
from facewear.data import stats
from facewear.data.layout import ImageMeta, write_spec

# (file, source, synthetic, YOLO class ids) per split
LAYOUT: dict[str, list[tuple[str, str, bool, list[int]]]] = {
    "train": [
        ("a.jpg", "kaggle-facemask", False, [0, 1, 1]),
        ("b.jpg", "kaggle-facemask", True, [2, 3]),
        ("c.jpg", "ytf-landmarks", False, [0]),
        ("d.jpg", "ytf-landmarks", True, [2]),
    ],
    "val": [
        ("e.jpg", "kaggle-facemask", False, [1, 0]),
        ("f.jpg", "ytf-landmarks", True, [3, 2, 2]),
        ("g.jpg", "ytf-landmarks", False, []),  # background image, no boxes
    ],
}


@pytest.fixture()
def built(tmp_path: Path) -> Path:
    """A tiny built dataset under tmp_path/build and its spec; returns the spec path."""
    root = tmp_path / "build" / "tiny"
    rng = np.random.default_rng(0)
    for split, items in LAYOUT.items():
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        (root / "meta").mkdir(exist_ok=True)
        metas = []
        for i, (fname, source, synthetic, classes) in enumerate(items):
            img = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
            assert cv2.imwrite(str(root / "images" / split / fname), img)
            lines = [f"{c} 0.{3 + k % 4} 0.5 0.2 0.25" for k, c in enumerate(classes)]
            (root / "labels" / split / Path(fname).with_suffix(".txt")).write_text(
                "\n".join(lines) + ("\n" if lines else ""))
            overlays = [{"box": 0, "kind": "sunglasses", "overlay": "aviator"}] if synthetic else []
            metas.append(ImageMeta(file=fname, split=split, source=source, origin=f"raw/{source}/{i}.png",
                                   group=f"{source}-{i}", synthetic=synthetic, overlays=overlays).to_json())
        (root / "meta" / f"{split}.jsonl").write_text("\n".join(metas) + "\n")
    spec = tmp_path / "specs" / "tiny.yaml"
    write_spec(spec, root, {"train": "images/train", "val": "images/val"})
    return spec


def _importable(mod: str) -> bool:
    """True when ``mod`` imports (other verbs may still be under construction)."""
    try:
        importlib.import_module(mod)
    except ImportError:
        return False
    return True


@pytest.fixture()
def cli_present(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leave out CLI verbs/actions whose module does not import yet, so the parser builds."""
    import facewear.cli as fcli
    import facewear.data.cli as dcli

    monkeypatch.setattr(fcli, "VERBS", {k: v for k, v in fcli.VERBS.items() if _importable(v[0])})
    monkeypatch.setattr(dcli, "ACTIONS", {k: v for k, v in dcli.ACTIONS.items() if _importable(v[0])})


# --- stats ------------------------------------------------------------------------------
def test_count_dataset(built: Path) -> None:
    c = stats.count_dataset(built)
    assert c["splits"] == ["train", "val"]
    assert c["classes"] == list(CLASS_NAMES)
    assert c["images"] == {"train": 4, "val": 3}
    assert c["per_class"]["train"] == {"face": 2, "mask": 2, "sunglasses": 2, "mask_sunglasses": 1}
    assert c["per_class"]["val"] == {"face": 1, "mask": 1, "sunglasses": 2, "mask_sunglasses": 1}
    # real vs synthetic
    assert c["per_kind"]["train"]["real"] == {"face": 2, "mask": 2, "sunglasses": 0, "mask_sunglasses": 0}
    assert c["per_kind"]["train"]["synthetic"] == {"face": 0, "mask": 0, "sunglasses": 2, "mask_sunglasses": 1}
    # per source, and the full cross
    assert c["per_source"]["val"]["ytf-landmarks"] == {"face": 0, "mask": 0, "sunglasses": 2, "mask_sunglasses": 1}
    assert c["boxes"]["train"]["kaggle-facemask"]["synthetic"] == {"sunglasses": 1, "mask_sunglasses": 1}
    assert c["boxes"]["train"]["ytf-landmarks"]["real"] == {"face": 1}
    assert c["images_by"]["val"]["ytf-landmarks"] == {"real": 1, "synthetic": 1}


def test_count_bad_label_names_file(built: Path) -> None:
    bad = built.parent.parent / "build" / "tiny" / "labels" / "val" / "e.txt"
    bad.write_text("1 0.5\n")
    with pytest.raises(ValueError, match="e.txt:1"):
        stats.count_dataset(built)


def test_merge_markdown_keeps_surrounding_text() -> None:
    old = f"# Title\n\nhand-written intro\n\n{stats.BEGIN}\nOLD TABLE\n{stats.END}\n\n## Footer\nkeep me\n"
    new = stats.merge_markdown(old, "NEW TABLE\n")
    assert "OLD TABLE" not in new and "NEW TABLE" in new
    assert new.startswith("# Title\n\nhand-written intro\n\n")
    assert new.endswith("\n\n## Footer\nkeep me\n")
    assert new.count(stats.BEGIN) == 1 and new.count(stats.END) == 1
    fresh = stats.merge_markdown(None, "T\n")
    assert fresh.startswith("# ") and stats.BEGIN in fresh and stats.END in fresh


def test_run_writes_markdown_and_png(built: Path, tmp_path: Path) -> None:
    out, plot = tmp_path / "docs" / "README.md", tmp_path / "docs" / "img" / "stats.png"
    res = stats.run(data=[built], out=out, plot=plot)
    assert res["tiny"]["images"] == {"train": 4, "val": 3}
    text = out.read_text()
    assert "facewear data stats" in text and "--data" in text
    assert stats.BEGIN in text and stats.END in text
    assert "| class | train | val | train+val | total |" in text
    assert "| `sunglasses` | 2 | 2 | 4 | 4 |" in text
    assert "| **all** | 7 | 5 | 12 | 12 |" in text
    assert "| train | kaggle-facemask | synthetic | 1 | 0 | 0 | 1 | 1 | 2 |" in text
    assert "| val | 3 | 2 | 1 |" in text  # images: total, real, synthetic
    assert "](img/stats.png)" in text
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cv2.imread(str(plot)) is not None
    assert not list(plot.parent.glob("*.part"))
    # a second run with hand-written text around the markers keeps it
    out.write_text("# My datasets\n\nnotes above\n\n" + text + "\nnotes below\n")
    stats.run(data=[built], out=out, plot=plot)
    again = out.read_text()
    assert again.startswith("# My datasets\n\nnotes above\n\n")
    assert again.endswith("\nnotes below\n")
    assert again.count(stats.BEGIN) == 1 and again.count("| class | train | val |") == 1


def test_cli_stats(built: Path, tmp_path: Path, cli_present: None) -> None:
    out, plot = tmp_path / "r.md", tmp_path / "s.png"
    assert main(["data", "stats", "--data", str(built), "--out", str(out), "--plot", str(plot)]) == 0
    assert out.is_file() and plot.is_file()
    assert main(["data", "stats", "--data", str(tmp_path / "nope.yaml"), "--out", str(out)]) == 2


# --- inspect ----------------------------------------------------------------------------
@pytest.fixture()
def fo_name():
    """A unique FiftyOne dataset name, deleted afterwards."""
    name = f"facewear-test-{uuid.uuid4().hex[:10]}"
    yield name
    import fiftyone as fo

    if fo.dataset_exists(name):
        fo.delete_dataset(name)


@pytest.mark.slow
def test_inspect_builds_dataset(built: Path, fo_name: str) -> None:
    import fiftyone as fo

    from facewear.data import fiftyone_split as inspect

    ds = inspect.run(data=built, split="val", name=fo_name, no_launch=True)
    assert ds.name == fo_name and ds.persistent
    assert len(ds) == 3
    assert ds.count("ground_truth.detections") == 5
    assert ds.count_sample_tags() == {"real": 2, "synthetic": 1}
    assert ds.count_values("source") == {"kaggle-facemask": 1, "ytf-landmarks": 2}
    assert ds.count_values("ground_truth.detections.label") == {"face": 1, "mask": 1, "sunglasses": 2,
                                                                 "mask_sunglasses": 1}
    syn = ds.match_tags("synthetic").first()
    assert syn["overlays"] == ["sunglasses:aviator"]
    assert syn["origin"].startswith("raw/ytf-landmarks/")
    x, y, w, h = syn["ground_truth"].detections[0].bounding_box
    assert (x, y, w, h) == pytest.approx((0.2, 0.375, 0.2, 0.25))

    # re-running replaces, never duplicates
    ds2 = inspect.run(data=built, split="val", name=fo_name, no_launch=True)
    assert len(ds2) == 3
    assert fo.list_datasets().count(fo_name) == 1
    assert len(fo.load_dataset(fo_name)) == 3

    ds3 = inspect.run(data=built, split="train", name=fo_name, max_images=2, no_launch=True)
    assert len(ds3) == 2


def test_inspect_errors(built: Path, tmp_path: Path) -> None:
    from facewear.data import fiftyone_split as inspect

    with pytest.raises(ValueError, match="test"):
        inspect.run(data=built, split="test", no_launch=True)
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        inspect.run(data=tmp_path / "nope.yaml", no_launch=True)
    spec2 = tmp_path / "specs" / "broken.yaml"
    write_spec(spec2, tmp_path / "build" / "tiny", {"val": "images/missing"})
    with pytest.raises(FileNotFoundError, match="images/missing"):
        inspect.run(data=spec2, split="val", no_launch=True)


def test_inspect_cli_args(cli_present: None) -> None:
    from facewear.cli import build_parser

    a = build_parser().parse_args(["data", "inspect", "--no-launch", "--max-images", "5"])
    assert (a.no_launch, a.max_images) == (True, 5)
    assert not hasattr(a, "port") and not hasattr(a, "split")  # not given: run()'s defaults apply
    old = build_parser().parse_args(["data", "inspect", "--max-samples", "5"])  # the deprecated spelling
    assert old.max_images == 5


def test_stats_default_specs_skip_missing(built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(stats, "DEFAULT_SPECS", (tmp_path / "missing.yaml", built))
    res = stats.run(out=tmp_path / "d.md", plot=tmp_path / "d.png")
    assert list(res) == ["tiny"]
    assert "skipping" in capsys.readouterr().out
    monkeypatch.setattr(stats, "DEFAULT_SPECS", (tmp_path / "missing.yaml",))
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        stats.run(out=tmp_path / "e.md", plot=tmp_path / "e.png")
    assert not (tmp_path / "e.md").exists()


@pytest.mark.slow
def test_inspect_launch_stops_on_ctrl_c(built: Path, fo_name: str, fake_app: dict) -> None:
    from facewear.data import fiftyone_split as inspect

    calls = fake_app
    ds = inspect.run(data=built, split="val", name=fo_name, port=5999)
    assert len(ds) == 3
    assert calls == {"address": "127.0.0.1", "port": 5999, "auto": False, "dataset": fo_name, "closed": True}
