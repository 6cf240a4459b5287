"""``facewear predict`` and its frame sources, with a fake detector (no weights needed).

The fake detector finds the pure-colour rectangles the tests draw on a black
background: one box per rectangle, class = the colour's index in ``COLORS``,
score growing with the rectangle's area. One test runs a real (untrained)
ultralytics YOLOv5n checkpoint end to end.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from detection import outputs, predict, tracker
from detection.sources import Source, StreamError, StreamReader, is_stream, stream_name
from facewear import cli
from facewear.boxes import crop_box
from facewear.constants import CLASS_NAMES

# BGR colour of each class's rectangles: face red, mask green, sunglasses blue, mask_sunglasses white
COLORS = ((0, 0, 255), (0, 255, 0), (255, 0, 0), (255, 255, 255))
W, H = 128, 96


class FakeDetector:
    """One box per drawn rectangle of a ``COLORS`` colour; score = area / 2000 clipped to [0.3, 0.99]."""

    names = CLASS_NAMES
    source = "fake"

    def __init__(self, interrupt_at: int | None = None) -> None:
        self.calls = 0
        self.interrupt_at = interrupt_at

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.interrupt_at is not None and self.calls >= self.interrupt_at:
            raise KeyboardInterrupt
        out = []
        f = frame.astype(np.int16)
        for cls, color in enumerate(COLORS):
            mask = (np.abs(f - np.array(color, np.int16)).max(axis=2) < 60).astype(np.uint8)
            n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
            for x, y, w, h, area in stats[1:]:
                if area >= 30:
                    out.append([x, y, x + w, y + h, float(np.clip(area / 2000, 0.3, 0.99)), cls])
        return np.asarray(out, np.float32).reshape(-1, 6)


def scene(rects, w: int = W, h: int = H) -> np.ndarray:
    """A black frame with filled rectangles ``(x1, y1, x2, y2, cls)`` (x2, y2 exclusive)."""
    img = np.zeros((h, w, 3), np.uint8)
    for x1, y1, x2, y2, cls in rects:
        img[y1:y2, x1:x2] = COLORS[cls]
    return img


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frames[0].shape[1], frames[0].shape[0]))
    assert vw.isOpened()
    for f in frames:
        vw.write(f)
    vw.release()
    return path


def moving_video(path: Path, n: int = 20) -> Path:
    """Two faces moving right: a red one (face) growing, a blue one (sunglasses) that turns green (mask)
    for its last 6 frames."""
    frames = []
    for i in range(n):
        a = (4 + i, 10, 30 + i + i // 2, 40 + i // 2, 0)
        b = (70 + i // 2, 50, 100 + i // 2, 85, 2 if i < n - 6 else 1)
        frames.append(scene([a, b]))
    return write_video(path, frames)


def run(source, **kw):
    kw.setdefault("progress", False)
    return predict.run(str(source), kw.pop("model", None) or FakeDetector(), **kw)


def files_under(d: Path) -> list[str]:
    return sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file())


# --- images, folders, globs ---------------------------------------------------------------
def test_single_image_json_format_exact(tmp_path):
    img = tmp_path / "one.png"
    cv2.imwrite(str(img), scene([(10, 20, 50, 60, 1), (70, 5, 100, 45, 3)]))
    out = tmp_path / "dets.json"
    s = run(img, save_json=out)
    recs = json.loads(out.read_text())
    assert recs == [
        {"file_name": "one.png", "frame": 0, "bbox": [10.0, 20.0, 40.0, 40.0], "category_id": 1,
         "category": "mask", "score": 0.8},
        {"file_name": "one.png", "frame": 0, "bbox": [70.0, 5.0, 30.0, 40.0], "category_id": 3,
         "category": "mask_sunglasses", "score": 0.6},
    ]
    assert s["images"] == 1 and s["frames"] == 1 and s["skipped"] == 0
    assert s["detections"] == {"face": 0, "mask": 1, "sunglasses": 0, "mask_sunglasses": 1}


def test_folder_skips_non_images_and_corrupt_files(tmp_path, capsys):
    src = tmp_path / "imgs"
    (src / "sub").mkdir(parents=True)
    cv2.imwrite(str(src / "a.jpg"), scene([(10, 10, 50, 50, 0)]))
    cv2.imwrite(str(src / "sub" / "b.png"), scene([(20, 20, 60, 70, 2)]))
    (src / "notes.txt").write_text("not an image")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    out = tmp_path / "d.json"
    s = run(src, save_json=out, save=tmp_path / "ann")
    assert s["images"] == 2 and s["frames"] == 2
    assert s["skipped"] == 2
    reasons = {d["file"]: d["reason"] for d in s["skipped_files"]}
    assert set(reasons) == {"notes.txt", "broken.jpg"}
    assert "not an image or video" in reasons["notes.txt"]
    printed = capsys.readouterr()
    assert "Traceback" not in printed.out + printed.err
    assert "notes.txt" in printed.out and "broken.jpg" in printed.out
    recs = json.loads(out.read_text())
    assert [(r["file_name"], r["category"]) for r in recs] == [("a.jpg", "face"), ("sub/b.png", "sunglasses")]
    # annotated images keep their relative names, and show the class colour
    assert files_under(tmp_path / "ann") == ["a.jpg", "sub/b.png"]
    ann = cv2.imread(str(tmp_path / "ann" / "sub" / "b.png"))
    assert ann.shape == (H, W, 3) and not np.array_equal(ann, scene([(20, 20, 60, 70, 2)]))


def test_glob_names_relative_to_pattern_root(tmp_path):
    for name in ("x/p1.png", "x/y/p2.png", "x/skip.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / name), scene([(5, 5, 40, 40, 0)]))
    out = tmp_path / "g.json"
    s = run(f"{tmp_path}/x/**/*.png", save_json=out)
    assert s["images"] == 2 and s["skipped"] == 0
    assert sorted(r["file_name"] for r in json.loads(out.read_text())) == ["p1.png", "y/p2.png"]
    with pytest.raises(FileNotFoundError, match="no files match"):
        run(f"{tmp_path}/x/*.gif")


def test_crops_class_folders_unique_names_never_overwrite(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "pic.png"), scene([(10, 10, 50, 50, 0), (60, 10, 100, 50, 0), (20, 55, 60, 90, 2)]))
    crops = tmp_path / "crops"
    s1 = run(src, save_crops=crops)
    assert s1["crops"] == 3
    first = files_under(crops)
    assert first == ["face/pic_f000000_d0.jpg", "face/pic_f000000_d1.jpg", "sunglasses/pic_f000000_d2.jpg"]
    before = {p: (crops / p).read_bytes() for p in first}
    # margin: 10 % each side -> a 40x40 box gives a 48x48 crop; clipped at the border
    assert cv2.imread(str(crops / first[0])).shape[:2] == (48, 48)
    s2 = run(src, save_crops=crops)
    assert s2["crops"] == 3
    assert files_under(crops) == sorted(first + ["face/pic_f000000_d0-1.jpg", "face/pic_f000000_d1-1.jpg",
                                                 "sunglasses/pic_f000000_d2-1.jpg"])
    assert all((crops / p).read_bytes() == b for p, b in before.items())
    assert not [p for p in crops.rglob("*") if p.name.startswith(".")]  # no temporary leftovers


def test_crop_box_margin_and_clipping():
    frame = np.zeros((100, 200, 3), np.uint8)
    assert crop_box(frame, np.array([50, 20, 150, 70]), 0.1).shape == (60, 120, 3)
    assert crop_box(frame, np.array([0, 0, 100, 100]), 0.1).shape == (100, 110, 3)
    assert crop_box(frame, np.array([250, 10, 260, 20]), 0.1) is None


# --- videos ------------------------------------------------------------------------------
def test_video_json_annotated_mp4_and_crops(tmp_path):
    vid = moving_video(tmp_path / "clip.mp4")
    out, ann, crops = tmp_path / "v.json", tmp_path / "ann", tmp_path / "crops"
    s = run(vid, save_json=out, save=ann, save_crops=crops)
    assert s["kind"] == "video" and s["videos"] == 1 and s["frames"] == 20
    recs = json.loads(out.read_text())
    assert {r["frame"] for r in recs} == set(range(20))
    assert all(r["file_name"] == "clip.mp4" for r in recs)
    cap = cv2.VideoCapture(str(ann / "clip.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 20
    cap.release()
    names = files_under(crops)
    assert len(names) == 40 and "face/clip_f000019_d0.jpg" in names


def test_track_one_crop_per_track_with_voted_class(tmp_path):
    vid = moving_video(tmp_path / "clip.mp4")
    out, crops = tmp_path / "t.json", tmp_path / "crops"
    s = run(vid, save_json=out, save_crops=crops, track=True)
    # two tracks: the red face, and the blue sunglasses face that is green (mask) in only 6 of 20 frames
    assert files_under(crops) == ["face/clip_t1.jpg", "sunglasses/clip_t2.jpg"]
    assert s["tracks"] == {"face": 1, "sunglasses": 1} and s["crops"] == 2
    recs = json.loads(out.read_text())
    assert all("track_id" in r for r in recs)
    assert {r["track_id"] for r in recs} == {1, 2}
    # the face's crop comes from its best-scoring (largest) frame, with a 10 % margin
    best = max((r for r in recs if r["track_id"] == 1), key=lambda r: r["score"])
    assert best["frame"] >= 14  # the box grows; mp4 blurs its edges a little
    x, y, w, h = best["bbox"]
    expect = crop_box(np.zeros((H, W, 3), np.uint8), np.array([x, y, x + w, y + h]), 0.1).shape
    assert cv2.imread(str(crops / "face" / "clip_t1.jpg")).shape == expect
    # a second run never overwrites
    run(vid, save_crops=crops, track=True)
    assert files_under(crops) == ["face/clip_t1-1.jpg", "face/clip_t1.jpg",
                                  "sunglasses/clip_t2-1.jpg", "sunglasses/clip_t2.jpg"]


def test_track_vote_is_score_weighted():
    rec = tracker.TrackRecord(1)
    frame = np.zeros((50, 50, 3), np.uint8)
    for cls, score in ((0, 0.3), (0, 0.3), (0, 0.3), (1, 0.95)):
        rec.add(0, np.array([5, 5, 20, 20, score, cls], np.float32), frame, 0.1)
    assert rec.cls == 1 and rec.best_score == pytest.approx(0.95) and rec.frames == 4
    rec.add(1, np.array([5, 5, 20, 20, 0.9, 0], np.float32), frame, 0.1)
    assert rec.cls == 0


def test_interrupt_flushes_json_tracks_and_video(tmp_path):
    vid = moving_video(tmp_path / "clip.mp4")
    out, ann, crops = tmp_path / "i.json", tmp_path / "ann", tmp_path / "crops"
    s = run(vid, model=FakeDetector(interrupt_at=8), save_json=out, save=ann, save_crops=crops, track=True)
    assert s["interrupted"] and s["frames"] == 7
    assert {r["frame"] for r in json.loads(out.read_text())} == set(range(7))
    assert files_under(crops) == ["face/clip_t1.jpg", "sunglasses/clip_t2.jpg"]
    cap = cv2.VideoCapture(str(ann / "clip.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 7
    cap.release()
    assert files_under(ann) == ["clip.mp4"]  # the partial file was renamed into place


def test_max_frames(tmp_path):
    vid = moving_video(tmp_path / "clip.mp4")
    assert run(vid, max_frames=5)["frames"] == 5


def test_unopenable_video_exits_2_via_cli(tmp_path, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video at all" * 10)
    assert cli.main(["predict", str(bad), "--model", str(tmp_path / "unused.pt"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "bad.mp4" in err and "cannot open video" in err and "Traceback" not in err


def test_missing_source_and_model_exit_2(tmp_path, capsys):
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), scene([]))
    assert cli.main(["predict", str(tmp_path / "nope"), "--model", "m.pt"]) == 2
    assert cli.main(["predict", str(img), "--model", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "missing.pt" in err


def test_video_in_folder_is_processed_and_bad_video_skipped(tmp_path):
    src = tmp_path / "mix"
    moving_video(src / "v.mp4", n=6)
    cv2.imwrite(str(src / "a.png"), scene([(10, 10, 50, 50, 0)]))
    (src / "z.avi").write_bytes(b"junk")
    s = run(src, save=tmp_path / "ann")
    assert s["images"] == 1 and s["videos"] == 1 and s["frames"] == 7
    assert [d["file"] for d in s["skipped_files"]] == ["z.avi"]
    assert files_under(tmp_path / "ann") == ["a.png", "v.mp4"]


# --- streams -------------------------------------------------------------------------------
class FakeCapture:
    def __init__(self, n: int, feed: FakeFeed) -> None:
        self.n, self.i, self.feed = n, 0, feed

    def isOpened(self) -> bool:
        return self.n > 0

    def read(self):
        if self.i >= self.n:
            return False, None
        time.sleep(self.feed.delay)
        self.i += 1
        k = self.feed.sent
        self.feed.sent += 1
        return True, scene([(10 + k % 20, 10, 50 + k % 20, 50, k % 4)])

    def get(self, prop):
        return 0.0

    def release(self) -> None:
        pass


class FakeFeed:
    """capture_factory: connection k delivers ``sessions[k]`` frames then drops (0: cannot connect)."""

    def __init__(self, sessions, delay: float = 0.002) -> None:
        self.sessions, self.delay = list(sessions), delay
        self.opens: list[float] = []
        self.sent = 0
        self.lock = threading.Lock()

    def __call__(self, src):
        with self.lock:
            k = len(self.opens)
            self.opens.append(time.monotonic())
        return FakeCapture(self.sessions[k] if k < len(self.sessions) else 0, self)


def test_stream_drops_and_reconnects(tmp_path):
    feed = FakeFeed([5, 0, 5])
    out = tmp_path / "s.json"
    s = run("rtsp://user:secret@cam.local:554/live", capture_factory=feed, backoff=0.01, max_backoff=0.04,
            retries=2, save_json=out, save=tmp_path / "ann", save_crops=tmp_path / "crops")
    st = s["stream"]
    assert st["received"] == 10 and st["gave_up"] and "2 attempt(s) failed" in st["gave_up"]
    assert len(feed.opens) == 5  # ok, fail, ok, fail, fail -> gives up
    assert 1 <= s["frames"] <= 10 and s["frames"] + st["dropped"] == 10
    recs = json.loads(out.read_text())
    assert recs and all(r["file_name"] == "rtsp://user:***@cam.local:554/live" for r in recs)
    frames = [r["frame"] for r in recs]
    assert frames == sorted(frames) and max(frames) <= 9
    assert files_under(tmp_path / "ann") == ["user_cam.local_554_live.mp4"]
    assert all(p.startswith(tuple(f"{c}/user_cam.local_554_live_f" for c in CLASS_NAMES))
               for p in files_under(tmp_path / "crops"))


def test_stream_keeps_only_latest_frame():
    feed = FakeFeed([200], delay=0.0005)
    got = []
    with StreamReader("http://cam/feed", feed, backoff=0.01, max_backoff=0.02, retries=1) as r:
        for idx, _frame in r:
            got.append(idx)
            time.sleep(0.01)  # a consumer much slower than the feed
    assert r.received == 200 and got == sorted(set(got))
    assert len(got) < 100 and r.dropped == 200 - len(got)
    assert got[-1] == 199  # the last frame is still delivered


def test_stream_never_connects_clear_error_with_backoff():
    feed = FakeFeed([])
    t = time.monotonic()
    with pytest.raises(StreamError, match=r"webcam0: could not open stream .*4 attempt\(s\) failed"):
        run("0", capture_factory=feed, backoff=0.02, max_backoff=0.05, retries=4)
    assert time.monotonic() - t < 5
    gaps = np.diff(feed.opens)
    assert len(feed.opens) == 4
    assert gaps[0] >= 0.018 and gaps[1] >= 0.038 and gaps[2] >= 0.048  # 0.02, 0.04, then capped at 0.05


def test_stream_timeout_gives_up():
    feed = FakeFeed([])
    with pytest.raises(StreamError, match="no frame for"):
        Source("rtsp://cam/x", capture_factory=feed, backoff=0.05, max_backoff=0.4, retries=100,
               timeout=0.3).items().__next__()
    assert 2 <= len(feed.opens) <= 5


def test_stream_source_helpers():
    assert is_stream("0") and is_stream("rtsp://a/b") and is_stream("https://x/y.m3u8")
    assert not is_stream("some/folder") and not is_stream("clip.mp4")
    assert stream_name(0) == "webcam0"
    assert stream_name("rtsp://u:p@h:8554/s") == "rtsp://u:***@h:8554/s"


# --- a real (untrained) ultralytics model ------------------------------------------------
def test_real_tiny_yolo_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    from detection.yolo.train import build_model

    pt = tmp_path / "tiny.pt"
    torch.save({"model": build_model("yolov5n.yaml").half(), "train_args": {}}, pt)
    src = tmp_path / "imgs"
    src.mkdir()
    for i in range(2):
        cv2.imwrite(str(src / f"{i}.jpg"), scene([(10, 10, 60, 60, i)]))
    out = tmp_path / "r.json"
    s = predict.run(str(src), str(pt), imgsz=64, conf=0.001, threads=1, save_json=str(out),
                    save_crops=str(tmp_path / "crops"), progress=False)
    assert s["images"] == 2 and s["frames"] == 2 and s["model"] == str(pt)
    recs = json.loads(out.read_text())
    assert isinstance(recs, list)
    for r in recs:
        assert set(r) - {"crop"} == {"file_name", "frame", "bbox", "category_id", "category", "score"}
        assert "crop" not in r or Path(r["crop"]).is_file()
        assert r["category"] == CLASS_NAMES[r["category_id"]] and r["score"] >= 0.001
    assert s["crops"] <= len(recs)


# --- pieces ------------------------------------------------------------------------------
def test_source_yields_name_index_frame_tuples(tmp_path):
    vid = moving_video(tmp_path / "d" / "clip.mp4", n=4)
    cv2.imwrite(str(tmp_path / "d" / "a.png"), scene([]))
    got = [(name, idx, frame.shape) for name, idx, frame in Source(tmp_path / "d")]
    assert got == [("a.png", 0, (H, W, 3))] + [("clip.mp4", i, (H, W, 3)) for i in range(4)]
    assert [(n, i) for n, i, _ in Source(vid)] == [("clip.mp4", i) for i in range(4)]
    with pytest.raises(FileNotFoundError):
        Source(tmp_path / "missing")


def test_lapjv_stand_in_matches_brute_force():
    from itertools import permutations

    rng = np.random.default_rng(0)
    for n, m in ((3, 3), (2, 4), (4, 2), (0, 3)):
        cost = rng.random((n, m))
        limit = 0.5
        _, x, y = tracker._lapjv(cost, extend_cost=True, cost_limit=limit)
        pairs = [(i, j) for i, j in enumerate(x) if j >= 0]
        assert all(y[j] == i for i, j in pairs) and (y >= 0).sum() == len(pairs)
        # optimal: each pair costs (c) and each unmatched row/column costs limit/2
        def total(ps, cost=cost, n=n, m=m, limit=limit):
            return sum(cost[i, j] for i, j in ps) + (n + m - 2 * len(ps)) * limit / 2
        best = min(total([(i, j) for i, j in zip(rows, cols) if cost[i, j] <= limit])
                   for k in range(min(n, m) + 1) for rows in permutations(range(n), k)
                   for cols in permutations(range(m), k))
        assert total(pairs) == pytest.approx(best)


# --- a real HTTP MJPEG stream on localhost (OpenCV's ffmpeg backend, no fake capture) ------------
def _mjpeg_server(frames: list[np.ndarray], drop_after: int):
    """Serve ``frames`` as multipart MJPEG; every connection is cut after ``drop_after`` frames."""
    import http.server
    import socketserver

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            for i in range(drop_after):
                jpg = cv2.imencode(".jpg", frames[i % len(frames)])[1].tobytes()
                try:
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                     + str(len(jpg)).encode() + b"\r\n\r\n" + jpg + b"\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    return
                time.sleep(0.01)

        def log_message(self, *a):
            pass

    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def test_real_http_mjpeg_stream_that_drops_reconnects(tmp_path):
    frames = [scene([(10 + i % 20, 10, 50 + i % 20, 50, 0)]) for i in range(20)]
    srv = _mjpeg_server(frames, drop_after=15)
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/stream.mjpg"
        s = run(url, max_frames=25, save_json=str(tmp_path / "d.json"), backoff=0.05, max_backoff=0.1)
    finally:
        srv.shutdown()
    assert s["frames"] == 25
    assert s["stream"]["reconnects"] >= 1
    recs = json.loads((tmp_path / "d.json").read_text())
    assert recs and all(r["category"] == "face" for r in recs)


# --- inputs never overwritten, bad images skipped, one box per face, traceable crops ---------
RELEASED_ONNX = Path(__file__).resolve().parent.parent / "weights" / "yolov5n-facewear4.onnx"


@pytest.mark.parametrize("h, w", [(4, 3000), (3000, 3), (1, 1), (2, 1000)])
def test_letterbox_degenerate_aspect_ratios(h, w):
    from facewear.boxes import letterbox

    out, r, (px, py) = letterbox(np.full((h, w, 3), 128, np.uint8), 320)
    assert out.shape == (320, 320, 3)
    assert r > 0 and 0 <= px < 320 and 0 <= py < 320


def test_thin_and_tiny_images_with_released_model_do_not_stop_the_run(tmp_path, capsys):
    if not RELEASED_ONNX.is_file():
        pytest.skip("released ONNX detector not in weights/")
    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "a_good.png"), scene([(10, 20, 50, 60, 1)]))
    for name, (h, w) in {"b_strip.png": (4, 3000), "c_strip.png": (3000, 3), "d_dot.png": (1, 1)}.items():
        cv2.imwrite(str(src / name), np.full((h, w, 3), 90, np.uint8))
    s = run(src, model=str(RELEASED_ONNX), save_crops=tmp_path / "crops")
    assert s["images"] == 4 and s["skipped"] == 0
    assert "processed: 4 image(s)" in capsys.readouterr().out


class PickyDetector(FakeDetector):
    """Fails (like cv2.resize on a 0-px side) on frames narrower than 8 px and on its ``fail_calls``-th calls."""

    def __init__(self, fail_calls=()) -> None:
        super().__init__()
        self.fail_calls = set(fail_calls)

    def __call__(self, frame):
        if min(frame.shape[:2]) < 8 or self.calls + 1 in self.fail_calls:
            self.calls += 1
            raise ValueError("inv_scale_x > 0 in function 'resize'")
        return super().__call__(frame)


def test_image_the_detector_cannot_handle_is_skipped_named_and_counted(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "a.png"), scene([(10, 20, 50, 60, 0)]))
    cv2.imwrite(str(src / "b_strip.png"), np.zeros((4, 3000, 3), np.uint8))
    cv2.imwrite(str(src / "c.png"), scene([(10, 20, 50, 60, 2)]))
    s = run(src, model=PickyDetector(), save_json=tmp_path / "d.json")
    assert s["images"] == 2 and s["skipped"] == 1
    [skip] = s["skipped_files"]
    assert skip["file"] == "b_strip.png" and "3000x4" in skip["reason"] and "resize" in skip["reason"]
    assert "b_strip.png" in capsys.readouterr().out  # named in the printed summary
    assert sorted(r["file_name"] for r in json.loads((tmp_path / "d.json").read_text())) == ["a.png", "c.png"]


def test_video_frame_that_fails_is_skipped_and_the_video_goes_on(tmp_path):
    vid = moving_video(tmp_path / "clip.mp4")
    s = run(vid, model=PickyDetector(fail_calls={3, 4}), save=tmp_path / "ann")
    assert s["frames"] == 18 and s["skipped"] == 2
    assert [d["file"] for d in s["skipped_files"]] == ["clip.mp4 frame 2", "clip.mp4 frame 3"]


def test_image_above_the_decompression_bomb_limit_is_skipped(tmp_path, monkeypatch):
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "small.png"), scene([(10, 20, 50, 60, 0)], w=40, h=30))
    cv2.imwrite(str(src / "big.png"), scene([(10, 20, 50, 60, 0)], w=200, h=100))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # 40x30 passes, 200x100 is "a bomb"
    s = run(src)
    assert s["images"] == 1 and s["skipped"] == 1
    [skip] = s["skipped_files"]
    assert skip["file"] == "big.png" and "decompression-bomb limit" in skip["reason"]


def test_save_into_the_source_folder_is_refused_and_nothing_changes(tmp_path, capsys):
    src = tmp_path / "photos"
    src.mkdir()
    cv2.imwrite(str(src / "p.png"), scene([(10, 20, 50, 60, 0)]))
    before = (src / "p.png").read_bytes()
    with pytest.raises(ValueError, match=r"p\.png: --save would overwrite the input"):
        run(src, save=src)
    assert cli.main(["predict", str(src), "--model", "x.onnx", "--save", str(src)]) == 2
    assert "never writes over a file it reads" in capsys.readouterr().err
    # a single file, and --save-json naming the input
    with pytest.raises(ValueError, match="--save would overwrite"):
        run(src / "p.png", save=src)
    with pytest.raises(ValueError, match="--save-json would overwrite"):
        run(src, save_json=src / "p.png")
    assert (src / "p.png").read_bytes() == before and files_under(src) == ["p.png"]
    # into a sub-folder of the source is fine: no source file is replaced
    s = run(src / "p.png", save=src / "annotated")
    assert s["images"] == 1 and (src / "annotated" / "p.png").is_file() and (src / "p.png").read_bytes() == before


def test_save_over_a_source_video_is_refused(tmp_path):
    vid = moving_video(tmp_path / "clip.mp4", n=4)
    before = vid.read_bytes()
    with pytest.raises(ValueError, match=r"clip\.mp4: --save would overwrite"):
        run(tmp_path, save=tmp_path)
    assert vid.read_bytes() == before


class TwoClassDetector:
    """One face seen as ``face 0.59`` and ``mask 0.31`` (IoU ~0.95): what class-wise NMS lets through."""

    names = CLASS_NAMES
    source = "two-class"

    def __call__(self, frame):
        return np.array([[10, 10, 60, 70, 0.59, 0], [11, 11, 60, 71, 0.31, 1],
                         [80, 10, 120, 50, 0.8, 2]], np.float32)


def test_agnostic_nms_by_default_one_face_one_box_one_crop(tmp_path):
    img = tmp_path / "one.png"
    cv2.imwrite(str(img), scene([]))
    s = run(img, model=TwoClassDetector(), save_crops=tmp_path / "crops", save_json=tmp_path / "d.json")
    assert s["detections"] == {"face": 1, "mask": 0, "sunglasses": 1, "mask_sunglasses": 0}
    assert files_under(tmp_path / "crops") == ["face/one_f000000_d0.jpg", "sunglasses/one_f000000_d1.jpg"]
    s = run(img, model=TwoClassDetector(), save_crops=tmp_path / "crops2", agnostic_nms=False)
    assert s["detections"]["face"] == 1 and s["detections"]["mask"] == 1
    assert len(files_under(tmp_path / "crops2")) == 3


def test_nms_agnostic_and_classwise():
    from detection.detector import nms

    d = TwoClassDetector()(None)
    assert len(nms(d, 0.45)) == 3
    kept = nms(d, 0.45, agnostic=True)
    assert kept[:, 5].tolist() == [2, 0]


def test_cli_agnostic_flag():
    p = cli.build_parser("predict")
    assert p.parse_args(["predict", "x.jpg"]).agnostic_nms is True
    assert p.parse_args(["predict", "x.jpg", "--no-agnostic-nms"]).agnostic_nms is False
    assert p.parse_args(["predict", "x.jpg"]).model is None


def test_crop_names_keep_unicode_and_sub_folders_and_json_has_crop_paths(tmp_path):
    src = tmp_path / "photos"
    for rel in ("照片.png", "фото.png", "宇航员 é 1.png", "cam1/img1.png", "cam2/img1.png"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        ok, buf = cv2.imencode(".png", scene([(10, 20, 50, 60, 0)]))
        (src / rel).write_bytes(buf.tobytes())
    crops, out = tmp_path / "crops", tmp_path / "d.json"
    run(src, save_crops=crops, save_json=out)
    assert files_under(crops) == sorted(["face/照片_f000000_d0.jpg", "face/фото_f000000_d0.jpg",
                                         "face/宇航员_é_1_f000000_d0.jpg", "face/cam1/img1_f000000_d0.jpg",
                                         "face/cam2/img1_f000000_d0.jpg"])
    recs = json.loads(out.read_text())
    by_file = {r["file_name"]: r["crop"] for r in recs}
    assert by_file["cam1/img1.png"] == str(crops / "face" / "cam1" / "img1_f000000_d0.jpg")
    assert by_file["cam2/img1.png"] == str(crops / "face" / "cam2" / "img1_f000000_d0.jpg")
    assert all(Path(c).is_file() for c in by_file.values())


def test_crop_base_names():
    assert outputs.crop_base("a/b c/照片.jpg") == "a/b_c/照片"
    assert outputs.crop_base("rtsp://u:***@cam:554/live") == "u_cam_554_live"
    assert outputs.safe_stem("....jpg") == "frame"


def test_track_crop_path_recorded_on_its_best_frame(tmp_path):
    vid = moving_video(tmp_path / "clip.mp4")
    out, crops = tmp_path / "t.json", tmp_path / "crops"
    run(vid, save_json=out, save_crops=crops, track=True)
    recs = json.loads(out.read_text())
    with_crop = [r for r in recs if "crop" in r]
    assert sorted(Path(r["crop"]).relative_to(crops).as_posix() for r in with_crop) == \
        ["face/clip_t1.jpg", "sunglasses/clip_t2.jpg"]
    for r in with_crop:  # the crop's record is the track's best-scoring detection
        assert r["score"] == max(q["score"] for q in recs if q["track_id"] == r["track_id"])


def test_default_model_is_the_released_detector_from_any_folder(tmp_path, monkeypatch):
    from detection.manifest import default_model
    from facewear.constants import WEIGHTS_DIR

    monkeypatch.chdir(tmp_path)
    m = default_model()
    assert m.is_absolute() and m.parent == WEIGHTS_DIR
    if not m.is_file():
        pytest.skip("released detector missing")
    img = tmp_path / "one.png"
    cv2.imwrite(str(img), scene([]))
    s = predict.run(str(img), progress=False)
    assert s["model"] == str(m) and s["images"] == 1


def _fourcc(path: Path) -> str:
    cap = cv2.VideoCapture(str(path))
    code = int(cap.get(cv2.CAP_PROP_FOURCC))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    return "".join(chr((code >> 8 * i) & 0xFF) for i in range(4)).lower() + f":{n}"


def test_annotated_video_is_h264(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    frames = [scene([(10 + i, 20, 50 + i, 61, 0)], w=127, h=95) for i in range(6)]  # odd sides: padded to even
    vid = write_video(tmp_path / "odd.mp4", frames)
    run(vid, save=tmp_path / "ann")
    assert _fourcc(tmp_path / "ann" / "odd.mp4") in ("avc1:6", "h264:6")
    assert files_under(tmp_path / "ann") == ["odd.mp4"]


def test_annotated_video_falls_back_to_mp4v_with_a_warning(tmp_path, monkeypatch, caplog):
    import builtins

    real_import = builtins.__import__

    def no_imageio_ffmpeg(name, *a, **kw):
        if name == "imageio_ffmpeg":
            raise ImportError("No module named 'imageio_ffmpeg'")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_imageio_ffmpeg)
    vid = moving_video(tmp_path / "clip.mp4", n=5)
    with caplog.at_level("WARNING", logger="facewear.predict"):
        run(vid, save=tmp_path / "ann")
    assert _fourcc(tmp_path / "ann" / "clip.mp4") in ("mp4v:5", "fmp4:5")  # MPEG-4 part 2, not H.264
    assert "H.264 writer unavailable" in caplog.text and "mp4v" in caplog.text
