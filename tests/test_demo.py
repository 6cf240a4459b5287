"""``facewear demo`` runs end to end on the project's own media, with no data root at all."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from detection import demo
from facewear import cli
from facewear.constants import CLASS_IDS, CLASS_NAMES, DATA_ROOT_ENV
from facewear.data.layout import load_spec, read_meta

TILE, PER_CLASS, LABEL_W = 128, 6, 150  # facewear.data.sheets.contact_sheet's defaults


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """``demo.run`` once, with ``$FACEWEAR_DATA`` pointing nowhere."""
    tmp = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(DATA_ROOT_ENV, str(tmp / "no-such-data"))
        summary = demo.run(out=str(tmp / "out"))
    assert not (tmp / "no-such-data").exists()
    return tmp / "out", summary


def test_demo_counts_every_class(demo_run):
    out, summary = demo_run
    counts = summary["facewear4"]["train+val"]
    assert set(counts) == set(CLASS_NAMES)
    assert all(counts[n] > 0 for n in CLASS_NAMES), counts
    assert summary["skipped"] == 0


def test_demo_spec_and_labels(demo_run):
    out, summary = demo_run
    raw = yaml.safe_load((out / "facewear4.yaml").read_text())
    assert raw["names"] == dict(enumerate(CLASS_NAMES)) and not Path(raw["path"]).is_absolute()
    spec = load_spec(out / "facewear4.yaml")
    root = Path(spec["path"])
    assert root == (out / "built" / "facewear4").resolve()
    seen = {n: 0 for n in CLASS_NAMES}
    for split in ("train", "val"):
        for m in read_meta(root, split):
            assert (root / "images" / split / m.file).is_file()
            for line in (root / "labels" / split / f"{Path(m.file).stem}.txt").read_text().splitlines():
                seen[CLASS_NAMES[int(line.split()[0])]] += 1
    assert seen == {n: summary["facewear4"]["train+val"][n] for n in CLASS_NAMES}
    assert (out / "stats.md").is_file() and (out / "stats.png").is_file()


def test_demo_contact_sheet_has_a_row_per_class(demo_run):
    out, _ = demo_run
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet is not None, "contact sheet missing or unreadable"
    assert sheet.shape == (len(CLASS_NAMES) * TILE, LABEL_W + PER_CLASS * TILE, 3)
    for name in CLASS_NAMES:
        row = sheet[CLASS_IDS[name] * TILE:(CLASS_IDS[name] + 1) * TILE]
        first_tile = row[:, LABEL_W:LABEL_W + TILE]
        assert (first_tile < 250).mean() > 0.5, f"no crop of class {name} on the contact sheet"
        assert (row[:, :LABEL_W] < 128).any(), f"row {name} has no label"


def test_cli_demo_returns_0_and_is_deterministic(demo_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path / "no-such-data"))
    out = tmp_path / "cli-out"
    assert cli.main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in CLASS_NAMES:
        [line] = [ln for ln in printed.splitlines() if ln.split()[:1] == [name]]
        assert int(line.split()[1]) > 0, line
    assert '"train+val"' not in printed and "{\n" not in printed  # no raw JSON blob from the build
    if "detections by" in printed:  # the released detector is there: tracks and crops stand beside detections
        [video] = [ln for ln in printed.splitlines() if ln.startswith("demo_video")]
        assert int(video.split()[-2]) >= 1 and int(video.split()[-1]) == int(video.split()[-2])
    assert (out / "facewear4.yaml").is_file() and (out / "contact_sheet.png").is_file()
    # same labels and provenance as the Python run
    first = demo_run[0] / "built" / "facewear4"
    second = out / "built" / "facewear4"
    for sub in ("labels", "meta"):
        a = {str(p.relative_to(first)): p.read_bytes() for p in (first / sub).rglob("*") if p.is_file()}
        b = {str(p.relative_to(second)): p.read_bytes() for p in (second / sub).rglob("*") if p.is_file()}
        assert a and a == b, sub
    sa, sb = cv2.imread(str(demo_run[0] / "contact_sheet.png")), cv2.imread(str(out / "contact_sheet.png"))
    assert np.array_equal(sa, sb)
