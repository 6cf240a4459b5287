"""tools/real_ab.py (renaming merged rows keeps their figures and their order) and tools/cmu_poses.py (the pose
of each cmu-faces photo)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))


def test_rename_rows_keeps_figures_and_order():
    from real_ab import rename_rows

    results = {"E": {"x": 1}, "H": {"x": 2}, "I": {"x": 3}}
    models = {"E": "e.pt", "H": "h.pt", "I": "i.pt"}
    commands = {"H": "train ..."}
    r, m, c = rename_rows({"H": "H: long label", "I": "I: soup"}, results, models, commands)
    assert list(r) == ["E", "H: long label", "I: soup"] and r["H: long label"] == {"x": 2}
    assert m["I: soup"] == "i.pt" and c == {"H: long label": "train ..."}
    assert list(results) == ["E", "H", "I"]  # the inputs are not changed
    with pytest.raises(SystemExit, match="no merged row 'Z'"):
        rename_rows({"Z": "z"}, results, models, commands)
    with pytest.raises(SystemExit, match="a row 'E' exists already"):
        rename_rows({"H": "E"}, results, models, commands)


def test_cmu_pose_groups():
    """tools/cmu_poses.py: the pose comes from the cmu-faces file name; other photos are left out; a name
    without a pose is an error naming the file."""
    from cmu_poses import pose_groups

    gt = {"images": [{"id": 1, "file_name": "cmu-faces_sunglasses__an2i_left_angry_sunglasses.jpg"},
                     {"id": 2, "file_name": "cmu-faces_sunglasses__kk49_straight_happy_sunglasses.jpg"},
                     {"id": 3, "file_name": "cmu-faces_open__an2i_left_angry_open.jpg"},
                     {"id": 4, "file_name": "ilc_0001.jpg"}],
          "categories": [{"id": 0, "name": "face"}, {"id": 2, "name": "sunglasses"}],
          "annotations": [{"id": 10, "image_id": 1, "category_id": 2}, {"id": 11, "image_id": 2, "category_id": 2},
                          {"id": 12, "image_id": 3, "category_id": 0}, {"id": 13, "image_id": 4, "category_id": 2},
                          {"id": 14, "image_id": 2, "category_id": 0}]}
    assert pose_groups(gt) == {10: "left", 11: "straight"}  # not the open photo, the ILC one, or a face box
    gt["images"].append({"id": 5, "file_name": "cmu-faces_sunglasses__odd.jpg"})
    with pytest.raises(ValueError, match="cmu-faces_sunglasses__odd.jpg: no cmu-faces pose"):
        pose_groups(gt)


def test_merge_only_keeps_the_merged_input_size(tmp_path):
    """real_ab --merge without --model measures nothing, so the JSON keeps the merged rows' input size (640)
    rather than this run's default --imgsz (320)."""
    import json
    import subprocess
    import sys

    from facewear.constants import REPO_ROOT

    src = json.loads((REPO_ROOT / "weights" / "real-data-ab.json").read_text())
    src["imgsz"] = 640
    merged = tmp_path / "in.json"
    merged.write_text(json.dumps(src))
    out = tmp_path / "ab.md"
    subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "real_ab.py"), "--merge", str(merged), "--out", str(out)],
                   check=True, capture_output=True)
    got = json.loads(out.with_suffix(".json").read_text())
    assert got["imgsz"] == 640 and got["results"] == src["results"]
    out2 = tmp_path / "ab2.md"  # an explicit --imgsz still wins
    subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "real_ab.py"), "--merge", str(merged), "--out", str(out2),
                    "--imgsz", "416"], check=True, capture_output=True)
    assert json.loads(out2.with_suffix(".json").read_text())["imgsz"] == 416


def test_pose_gap_boxes_and_table(tmp_path):
    """tools/pose_gap.py: YOLO rows become pixel boxes in file order; the table gives n, median and the shares
    above each threshold per group."""
    import cv2
    import numpy as np
    from pose_gap import face_boxes, render

    img = tmp_path / "a.jpg"
    cv2.imwrite(str(img), np.zeros((50, 100, 3), np.uint8))
    lab = tmp_path / "a.txt"
    lab.write_text("2 0.5 0.5 0.2 0.4\n0 0.1 0.2 0.1 0.2\n")
    got = face_boxes(img, lab)
    assert [c for c, _ in got] == [2, 0] and got[0][1] == pytest.approx((40, 15, 60, 35))
    text = render({"cmu-faces left": [0.1, 0.25, 0.35, 0.4], "training": [0.0, 0.05]}, "python tools/pose_gap.py")
    assert "| cmu-faces left | 4 | 0.300 |" in text and text.rstrip().endswith("| 0.00 | 0.00 |")
    assert "| 0.75 | 0.50 |" in text


def test_cmu_poses_merge_joins_rows_of_one_machine_only(tmp_path):
    """tools/cmu_poses.py --merge: earlier rows join the report as measured (in order, nothing re-measured); rows
    of another machine, data or input size are refused."""
    import json

    import cmu_poses

    from facewear.io import portable_path
    from facewear.timing import machine

    spec = tmp_path / "checks.yaml"
    spec.write_text("names: {0: face}\n")
    row = {p: {"n": 4, "found": 1.0, "named_if_found": 0.5, "recall": 0.5} for p in cmu_poses.POSES}
    saved = {"data": portable_path(spec), "imgsz": None, "machine": machine()}
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({**saved, "models": {"E": "e.pt"}, "results": {"E": row}}))
    b.write_text(json.dumps({**saved, "models": {"N": "n.pt"}, "results": {"N": {**row, "up": {**row["up"], "n": 9}}}}))
    out = tmp_path / "joined.md"
    assert cmu_poses.main(["--merge", str(a), str(b), "--data", str(spec), "--out", str(out)]) == 0
    joined = json.loads(out.with_suffix(".json").read_text())
    assert list(joined["results"]) == ["E", "N"] and joined["results"]["N"]["up"]["n"] == 9
    assert "| N | up | 9 |" in out.read_text() and "--model 'E'=e.pt --model 'N'=n.pt" in out.read_text()
    assert cmu_poses.render_saved(joined) == out.read_text()
    b.write_text(json.dumps({**saved, "machine": "another", "models": {}, "results": {}}))
    with pytest.raises(SystemExit, match="machine"):
        cmu_poses.main(["--merge", str(a), str(b), "--data", str(spec)])
    with pytest.raises(SystemExit, match="--model"):
        cmu_poses.main(["--data", str(spec)])
    b.write_text("[1, 2]")
    with pytest.raises(SystemExit, match="not a JSON written by tools/cmu_poses.py"):
        cmu_poses.main(["--merge", str(b), "--data", str(spec)])


def test_merges_refuse_rows_measured_otherwise(tmp_path):
    """Both tools' --merge go through facewear.io.read_report_json: real_ab refuses rows of another machine (its
    one machine line would mislabel them), cmu_poses rows of another --pad; a non-report file is named."""
    import json
    import subprocess
    import sys

    import cmu_poses

    from facewear.constants import REPO_ROOT
    from facewear.io import portable_path, read_report_json
    from facewear.timing import machine

    src = json.loads((REPO_ROOT / "weights" / "real-data-ab.json").read_text())
    other = tmp_path / "gpu.json"
    other.write_text(json.dumps({**src, "machine": "NVIDIA H200"}))
    run = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "real_ab.py"), "--merge", str(other), "--out",
                          str(tmp_path / "ab.md")], capture_output=True, text=True)
    assert run.returncode != 0 and "measured with machine 'NVIDIA H200'" in run.stderr
    assert not (tmp_path / "ab.md").exists()

    spec = tmp_path / "checks.yaml"
    spec.write_text("names: {0: face}\n")
    row = {p: {"n": 4, "found": 1.0, "named_if_found": 0.5, "recall": 0.5} for p in cmu_poses.POSES}
    padded = tmp_path / "pad2.json"
    padded.write_text(json.dumps({"data": portable_path(spec), "imgsz": None, "pad": 2.0, "machine": machine(),
                                  "models": {"E": "e.pt"}, "results": {"E": row}}))
    with pytest.raises(SystemExit, match="pad 2.0, not None"):
        cmu_poses.main(["--merge", str(padded), "--data", str(spec)])
    out = tmp_path / "pad2.md"
    assert cmu_poses.main(["--merge", str(padded), "--data", str(spec), "--pad", "2", "--out", str(out)]) == 0
    assert "--pad 2 --data" in out.read_text() and "2 times larger grey canvas" in out.read_text()
    assert cmu_poses.render_saved(json.loads(out.with_suffix(".json").read_text())) == out.read_text()
    with pytest.raises(SystemExit, match="--pad 0.5: must be at least 1"):
        cmu_poses.main(["--merge", str(padded), "--data", str(spec), "--pad", "0.5"])
    (tmp_path / "b.json").write_text('{"models": {}}')
    with pytest.raises(SystemExit, match=r"b.json: not a JSON written by T \(no results\)"):
        read_report_json(tmp_path / "b.json", "T", ("models", "results"))


def test_real_ab_writes_no_machine_directory(tmp_path):
    """A row whose model (or command) was given as an absolute path inside the repository is written relative to
    it, in the JSON and in the report's command line."""
    import json
    import subprocess
    import sys

    from facewear.constants import REPO_ROOT

    src = json.loads((REPO_ROOT / "weights" / "real-data-ab.json").read_text())
    label = next(iter(src["models"]))
    src["models"][label] = str(REPO_ROOT / "runs" / "yolo" / "x" / "weights" / "best.pt")
    src["commands"][label] = f"facewear train yolo --init {REPO_ROOT / 'weights' / 'yolov5n-facewear4.pt'}"
    merged = tmp_path / "in.json"
    merged.write_text(json.dumps(src))
    out = tmp_path / "ab.md"
    subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "real_ab.py"), "--merge", str(merged), "--out", str(out)],
                   check=True, capture_output=True)
    got = json.loads(out.with_suffix(".json").read_text())
    assert got["models"][label] == "runs/yolo/x/weights/best.pt"
    assert got["commands"][label] == "facewear train yolo --init weights/yolov5n-facewear4.pt"
    assert str(REPO_ROOT) not in out.read_text()
