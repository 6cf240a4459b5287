"""``facewear predict --engine ray``: a local Ray with 2 actors against single-process predict; resume, exactly once.

The images and the video are made here from scikit-image's astronaut (real faces, so the released ONNX detector
finds something); one local Ray serves the whole module.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from detection import predict, ray_predict
from facewear.constants import REPO_ROOT

pytestmark = pytest.mark.slow
MODEL = REPO_ROOT / "weights" / "yolov5n-facewear4.onnx"


def _astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[..., ::-1])


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    """6 images (one in a sub-folder with a Unicode name, one unreadable, one not an image) and a 20-frame video
    of a moving, shrinking astronaut."""
    root = tmp_path_factory.mktemp("ray_media") / "src"
    (root / "cam1").mkdir(parents=True)
    img = _astronaut()
    shots = {"a.jpg": img, "b.jpg": img[:, ::-1], "dark.jpg": (img * 0.5).astype(np.uint8),
             "cam1/照片.jpg": cv2.resize(img, (256, 256)), "small.png": cv2.resize(img, (160, 160))}
    for name, im in shots.items():
        cv2.imwrite(str(root / name), im)
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    (root / "notes.txt").write_text("not media")
    vw = cv2.VideoWriter(str(root / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (240, 180))
    for i in range(20):
        x = 40 + 6 * i
        vw.write(cv2.resize(img[20:20 + 300 + 4 * i, x:x + 300 + 4 * i], (240, 180)))
    vw.release()
    return root


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=128 * 1024 ** 2, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def single(media, tmp_path_factory) -> tuple[list[dict], Path]:
    """Single-process ``facewear predict`` on the same folder: its JSON records and crop folder."""
    out = tmp_path_factory.mktemp("single")
    predict.run(str(media), str(MODEL), threads=1, save_json=str(out / "d.json"), save_crops=str(out / "crops"),
                progress=False)
    return json.loads((out / "d.json").read_text()), out / "crops"


def _key_single(r: dict) -> tuple:
    x, y, w, h = r["bbox"]
    return (r["file_name"], r["frame"], r["category"], x, y, x + w, y + h, r["score"])


def _key_rows(table) -> list[tuple]:
    return [(r["file"], r["frame"], r["class_name"], r["x1"], r["y1"], r["x2"], r["y2"], r["score"])
            for r in table.to_pylist()]


def same_detections(rows: list[tuple], recs: list[dict]) -> bool:
    """Same (file, frame, class) multiset, boxes within 0.02 px and scores within 1e-4 (predict's JSON rounds
    boxes to 2 decimals, scores to 5)."""
    a, b = sorted(rows), sorted(_key_single(r) for r in recs)
    if [k[:3] for k in a] != [k[:3] for k in b]:
        return False
    va, vb = np.array([k[3:] for k in a], float).reshape(-1, 5), np.array([k[3:] for k in b], float).reshape(-1, 5)
    return bool(np.allclose(va[:, :4], vb[:, :4], atol=0.02) and np.allclose(va[:, 4], vb[:, 4], atol=1e-4))


def _files_under(d: Path) -> list[str]:
    return sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file())


def test_two_workers_match_single_process_predict(media, local_ray, single, tmp_path):
    recs, crops = single
    out = tmp_path / "out"
    s = ray_predict.run(str(media), out=str(out), model=str(MODEL), workers=2, threads=1, frames_per_task=6,
                        shard_size=2, progress=False)
    assert s["this_run"]["frames"] == 25 and s["tasks"] == 4 + 7  # 4 video ranges + 7 other files
    rows = ray_predict.read_rows(out)
    assert same_detections(_key_rows(rows), recs) and len(recs) > 10
    assert {r["frame"] for r in rows.to_pylist() if r["file"] == "clip.mp4"} == set(range(20))
    # the same crop names as predict's, under crops/<class>/ (sub-folders and Unicode kept)
    assert _files_under(out / "crops") == _files_under(crops)
    assert any(n.startswith(("face/cam1/照片_f000000", "mask/cam1/照片_f000000")) for n in _files_under(out / "crops"))
    assert all((out / c).is_file() for c in rows.column("crop").to_pylist())
    failed = {f["file"]: f["reason"] for f in s["failed"]}
    assert set(failed) == {"broken.jpg", "notes.txt"} and "not a readable image" in failed["broken.jpg"]
    assert s["detections"] == dict(Counter(r["category"] for r in recs)) | {
        k: 0 for k in s["detections"] if k not in {r["category"] for r in recs}}
    assert set(rows.column_names) == set(ray_predict.COLUMNS)
    assert set(rows.column("model").to_pylist()) == {MODEL.name}


def test_interrupted_run_resumed_gives_every_row_once(media, local_ray, single, tmp_path, capsys):
    recs, _ = single
    out = tmp_path / "out"
    kw = dict(out=str(out), model=str(MODEL), workers=2, threads=1, frames_per_task=6, shard_size=2, progress=False)
    first = ray_predict.run(str(media), max_files=5, **kw)  # stops after 5 tasks: an interrupted run
    assert first["tasks_done"] == 5 and first["tasks_pending"] == 6
    # what a kill during a write leaves behind: a half-written shard; it must not count, and goes away
    (out / "rows" / ".part-dead.parquet.part").write_bytes(b"PAR1 half")
    crops_before = _files_under(out / "crops")
    second = ray_predict.run(str(media), **kw)
    assert second["this_run"]["tasks"] == 6 and second["tasks_pending"] == 0
    assert not list((out / "rows").glob(".*.part"))
    rows = ray_predict.read_rows(out)
    keys = _key_rows(rows)
    assert same_detections(keys, recs)
    per_det = Counter((r["file"], r["frame"], r["crop"]) for r in rows.to_pylist())
    assert max(per_det.values()) == 1  # every row once
    crops = _files_under(out / "crops")
    assert set(crops_before) <= set(crops) and len(crops) == rows.num_rows  # never a duplicate crop
    # a third run finds everything done (failed files are not retried) and changes nothing
    shards = _files_under(out / "rows")
    third = ray_predict.run(str(media), **kw)
    assert third["this_run"]["tasks"] == 0 and _files_under(out / "rows") == shards
    assert third["rows"] == rows.num_rows and len(third["failed"]) == 2
    # other settings on the same output are refused
    with pytest.raises(ValueError, match="other settings"):
        ray_predict.run(str(media), **{**kw, "frames_per_task": 5})


def test_cli_engine_ray_on_a_txt_list(media, local_ray, tmp_path, capsys):
    from facewear import cli

    lst = tmp_path / "list.txt"
    lst.write_text(f"# two files\n{media / 'a.jpg'}\n{media / 'cam1' / '照片.jpg'}\n")
    out = tmp_path / "out"
    rc = cli.main(["predict", str(lst), "--engine", "ray", "--out", str(out), "--model", str(MODEL), "--workers", "2",
                   "--threads", "1", "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "(ray, 2 worker(s))" in text and "2/2 task(s) done" in text and "detections: face" in text
    assert {r["file"] for r in ray_predict.read_rows(out).to_pylist()} <= {"a.jpg", "cam1/照片.jpg"}
    assert json.loads((out / "summary.json").read_text())["files_done"] == 2


def test_inputs_lists_manifests_and_plan(media, tmp_path):
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    names = sorted(n for _, n in ray_predict.list_inputs(str(media)))
    assert names == sorted(_files_under(media))
    pq.write_table(pa.table({"id": [1, 2], "path": [str(media / "a.jpg"), str(media / "clip.mp4")]}),
                   tmp_path / "m.parquet")
    assert [n for _, n in ray_predict.list_inputs(tmp_path / "m.parquet")] == ["a.jpg", "clip.mp4"]
    pcsv.write_csv(pa.table({"file": ["src/b.jpg"]}), tmp_path / "m.csv")
    (tmp_path / "src").symlink_to(media)
    assert ray_predict.list_inputs(tmp_path / "m.csv") == [(tmp_path / "src/b.jpg", "src/b.jpg")]
    tasks = ray_predict.plan(ray_predict.list_inputs(str(media)), frames_per_task=8)
    video = [(t["start"], t["end"]) for t in tasks if t["kind"] == "video"]
    assert video == [(0, 8), (8, 16), (16, -1)]  # the last range reads to the end
    assert len({t["task"] for t in tasks}) == len(tasks)
    # actors do not share the driver's working folder: paths (images, model files, a cascade's parts) go absolute
    rel = ray_predict.plan([(Path("x/a.jpg"), "a.jpg")], 8)
    assert Path(rel[0]["path"]).is_absolute() and rel[0]["name"] == "a.jpg"
    cls = REPO_ROOT / "weights" / "facewear-cls.pt"  # tracked (the .onnx exports are rebuilt, not committed)
    assert ray_predict._absolute_model(f"mtcnn+{os.path.relpath(cls)}") == f"mtcnn+{cls}"
    assert ray_predict._absolute_model(os.path.relpath(MODEL)) == str(MODEL)
    # two names with the same safe crop base get a hash each, so their crops never collide
    clash = ray_predict.plan([(Path("x/a b.jpg"), "a b.jpg"), (Path("x/a_b.jpg"), "a_b.jpg")], 8)
    assert len({t["crop_base"] for t in clash}) == 2 and all(t["crop_base"].startswith("a_b_") for t in clash)
    with pytest.raises(ValueError, match="--out"):
        predict.run(str(media), str(MODEL), engine="ray")
    with pytest.raises(ValueError, match="overlaps"):  # output inside the source folder: refused before anything
        ray_predict.run(str(media), out=str(media / "preds"), model=str(MODEL))
    assert not (media / "preds").exists()


def test_ctrl_c_then_rerun_gives_every_row_once(media, single, tmp_path):
    """A real Ctrl-C (SIGINT to the CLI's process, its own local Ray) while shards are being committed; the same
    command again completes the output, each row and crop once."""
    import signal
    import subprocess
    import sys
    import time

    recs, _ = single
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "facewear.cli", "predict", str(media), "--engine", "ray", "--out", str(out),
           "--model", str(MODEL), "--workers", "1", "--threads", "1", "--shard-size", "1", "--frames-per-task", "1",
           "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(list((out / "rows").glob("part-*.parquet"))) < 2:
            time.sleep(0.2)
        assert proc.poll() is None, "finished before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        text, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    done_before = len(ray_predict.scan(out))
    assert 2 <= done_before < 27, text[-2000:]  # 7 files + 20 one-frame ranges of the video
    rc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert rc.returncode == 0, rc.stdout[-2000:] + rc.stderr[-2000:]
    assert f"this run:   {27 - done_before} task(s)" in rc.stdout  # only what was left
    rows = ray_predict.read_rows(out)
    assert same_detections(_key_rows(rows), recs)
    assert max(Counter((r["file"], r["frame"], r["crop"]) for r in rows.to_pylist()).values()) == 1
    assert len(_files_under(out / "crops")) == rows.num_rows
