"""The README blocks and weights/ reports re-render from the saved JSON (tools/render_reports.py)."""
import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parent.parent / "tools"
sys.path.insert(0, str(TOOLS))

import render_reports  # noqa: E402

from facewear.constants import REPO_ROOT, WEIGHTS_DIR  # noqa: E402


@pytest.mark.parametrize("key", ["yolov5n-facewear4", "frcnn-mnv2-facewear4", "classifiers", "card"])
def test_release_blocks_match_their_json(key):
    """These blocks are written together with their JSON by one tool run: a re-render is identical."""
    writer, render = render_reports.blocks()[key]
    readme = (REPO_ROOT / "README.md").read_text()
    committed = render_reports._block(readme, key)
    assert committed is not None, f"README.md has no {key} markers"
    assert committed.split("\n", 2)[2].rsplit("\n", 1)[0] + "\n" == render()


def test_check_writes_only_a_copy(tmp_path):
    readme = REPO_ROOT / "README.md"
    before = readme.read_text()
    res = render_reports.check(readme, WEIGHTS_DIR, write=False)
    assert readme.read_text() == before
    assert set(res) >= {f"README block {k}" for k in render_reports.blocks()}
    assert not any(v.startswith("missing") for v in res.values())


@pytest.mark.parametrize("name", ["cmu-poses.md", "cmu-poses-320.md", "pose-gap.md", "pose-gap-turned.md"])
def test_pose_reports_match_their_json(name):
    """tools/cmu_poses.py and tools/pose_gap.py write their JSON with machine and command: a re-render from it
    gives the committed report byte for byte."""
    assert render_reports.reports()[name]() == (WEIGHTS_DIR / name).read_text()
