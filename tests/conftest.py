"""Shared fixtures and helpers for the facewear tests.

Kept explicit: the only autouse fixture points ``$FACEWEAR_BUILD`` at a
session temp folder so no test ever writes into the repository's ``build/``.
Everything else (synthetic images, a small VOC folder, the real shared data)
is requested by name.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest

from facewear import constants
from facewear.constants import CLASS_NAMES
from facewear.data.layout import ImageMeta, write_spec
from facewear.formats import Box, ImageAnn, to_coco, yolo_lines
from facewear.io import write_json, write_text

#: The labels the public mask sets use, and what the default class map makes of them.
PUBLIC_LABELS: tuple[str, ...] = ("with_mask", "without_mask", "mask_weared_incorrect")
PUBLIC_TO_OURS: dict[str, str] = {"with_mask": "mask", "without_mask": "face", "mask_weared_incorrect": "mask"}


# --- environment -----------------------------------------------------------------------
FIFTYONE_TEST_DB_NAME = "facewear-tests"


def pytest_configure(config: pytest.Config) -> None:
    """Give FiftyOne the tests' own database before anything imports it.

    ``FIFTYONE_DATABASE_DIR`` -> ``~/.cache/facewear/fiftyone-test-db`` (one folder, reused, so
    MongoDB's ~300 MB of preallocated files are not left behind per run) and
    ``FIFTYONE_DATABASE_NAME`` -> ``facewear-tests``. The name is what really isolates: FiftyOne
    attaches to any MongoDB it already runs, whatever its folder, and then the tests still see only
    their own database in it. A user's ``FIFTYONE_DATABASE_URI`` is kept (only the name changes).
    """
    if not os.environ.get("FIFTYONE_DATABASE_URI"):
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        os.environ["FIFTYONE_DATABASE_DIR"] = str(cache / "facewear" / "fiftyone-test-db")
    os.environ["FIFTYONE_DATABASE_NAME"] = FIFTYONE_TEST_DB_NAME


@pytest.fixture(scope="session", autouse=True)
def _isolated_build_dir(tmp_path_factory):
    """``$FACEWEAR_BUILD`` -> a session temp folder, restored afterwards."""
    build = tmp_path_factory.mktemp("facewear_build")
    key = constants.BUILD_DIR_ENV
    old = os.environ.get(key)
    os.environ[key] = str(build)
    try:
        yield build
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


@pytest.fixture
def build_dir(_isolated_build_dir) -> Path:
    """The session's ``$FACEWEAR_BUILD`` folder."""
    return Path(_isolated_build_dir)


@pytest.fixture
def shared_data() -> Path:
    """The real public data (``$FACEWEAR_DATA`` or ``../shared/data``); skips when absent."""
    root = constants.default_data_root()
    if root is None or not root.is_dir():
        pytest.skip("../shared/data not found: real-data tests need it")
    return root


# --- synthetic images ------------------------------------------------------------------
def synth_image(width: int = 96, height: int = 64, seed: int = 0, boxes=()) -> np.ndarray:
    """A small uint8 BGR image: a gradient background with a filled rectangle per box."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = ((xx * 255 // max(width - 1, 1) + yy * 127 // max(height - 1, 1)) % 256).astype(np.uint8)
    img = np.stack([base, base[::-1], np.full_like(base, 60 + seed * 17 % 128)], axis=2).copy()
    for x1, y1, x2, y2 in boxes:
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.rectangle(img, (int(x1), int(y1)), (int(x2) - 1, int(y2) - 1), color, -1)
    return img


def write_synth_image(path: str | os.PathLike, width: int = 96, height: int = 64, seed: int = 0,
                      boxes=()) -> Path:
    """Write :func:`synth_image` to ``path`` (format from the suffix) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), synth_image(width, height, seed, boxes)):
        raise OSError(f"{path}: cv2.imwrite failed")
    return path


@pytest.fixture
def make_image(tmp_path):
    """Factory fixture: ``make_image(name="img.jpg", width=96, height=64, seed=0, boxes=())`` -> Path."""
    def _make(name: str = "img.jpg", width: int = 96, height: int = 64, seed: int = 0, boxes=()) -> Path:
        return write_synth_image(tmp_path / name, width, height, seed, boxes)

    return _make


# --- VOC folders -----------------------------------------------------------------------
def voc_xml(filename: str, width: int | None, height: int | None, objects, *, with_size: bool = True) -> str:
    """A Pascal VOC XML string; ``objects`` is ``[(name, (x1, y1, x2, y2)), ...]``.

    A box of ``None`` writes an ``<object>`` without ``<bndbox>``.
    """
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "images"
    ET.SubElement(root, "filename").text = filename
    if with_size:
        size = ET.SubElement(root, "size")
        for k, v in (("width", width), ("height", height), ("depth", 3)):
            ET.SubElement(size, k).text = str(v)
    for name, box in objects:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = name
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "0"
        if box is not None:
            bb = ET.SubElement(obj, "bndbox")
            for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box):
                ET.SubElement(bb, k).text = str(v)
    return ET.tostring(root, encoding="unicode")


@dataclass
class VocFolder:
    images: Path
    labels: Path
    #: image file name -> (width, height, [(source_label, (x1, y1, x2, y2)), ...])
    truth: dict[str, tuple[int, int, list]] = field(default_factory=dict)


def make_voc_folder(tmp_path: Path, n: int = 3, *, sizes=((96, 64), (64, 80), (120, 90))) -> VocFolder:
    """Write ``n`` synthetic images plus VOC XML using the public sets' labels.

    Layout: ``tmp_path/voc/images/img_XXX.jpg`` and ``tmp_path/voc/annotations/img_XXX.xml``
    (like the Kaggle face-mask set). Images have different, non-square sizes
    and boxes have fractional coordinates, so width/height swaps and rounding
    errors show up. Every box lies inside its image.
    """
    root = Path(tmp_path) / "voc"
    images, labels = root / "images", root / "annotations"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    folder = VocFolder(images, labels)
    for i in range(n):
        w, h = sizes[i % len(sizes)]
        objects = []
        for j in range(1 + i % 3):
            label = PUBLIC_LABELS[(i + j) % len(PUBLIC_LABELS)]
            x1 = round(2.25 + 17 * j + 1.5 * i, 2)
            y1 = round(3.5 + 5 * j + 0.75 * i, 2)
            x2 = round(min(x1 + 14.37 + j, w - 0.5), 2)
            y2 = round(min(y1 + 20.62, h - 0.25), 2)
            objects.append((label, (x1, y1, x2, y2)))
        name = f"img_{i:03d}.jpg"
        write_synth_image(images / name, w, h, seed=i, boxes=[b for _, b in objects])
        (labels / f"img_{i:03d}.xml").write_text(voc_xml(name, w, h, objects))
        folder.truth[name] = (w, h, objects)
    return folder


@pytest.fixture
def voc_folder(tmp_path) -> VocFolder:
    """Three synthetic images with VOC XML in the public sets' labels (see :func:`make_voc_folder`)."""
    return make_voc_folder(tmp_path, 3)


# --- a tiny detection dataset (coloured squares, one colour per class) -----------------------
DET_COLORS = [(40, 200, 40), (200, 120, 20), (20, 60, 230), (200, 40, 200)]


def make_det_dataset(root: Path, n_train: int = 8, n_val: int = 4, size: int = 64) -> Path:
    """Images with one coloured square per class id; YOLO labels, COCO JSON, meta and a spec."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        anns, metas = [], []
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = np.full((size, size, 3), 128, np.uint8)
            boxes = []
            for _ in range(2):
                c = int(rng.integers(4))
                s = int(rng.integers(14, 24))
                x, y = int(rng.integers(0, size - s)), int(rng.integers(0, size - s))
                cv2.rectangle(img, (x, y), (x + s, y + s), DET_COLORS[c], -1)
                boxes.append(Box(x, y, x + s, y + s, CLASS_NAMES[c]))
            name = f"{split}{i}.jpg"
            cv2.imwrite(str(root / "images" / split / name), img)
            ann = ImageAnn(name, size, size, boxes)
            write_text(root / "labels" / split / f"{split}{i}.txt", yolo_lines(ann))
            anns.append(ann)
            metas.append(ImageMeta(file=name, split=split, source="gen", origin=name, group=name))
        write_json(root / "coco" / f"{split}.json", to_coco(anns))
        write_text(root / "meta" / f"{split}.jsonl", "".join(m.to_json() + "\n" for m in metas))
    spec = root / "spec.yaml"
    write_spec(spec, root, {"train": "images/train", "val": "images/val"})
    return spec


def make_crop_root(root: Path, n: int = 6, size: int = 48,
                   splits: tuple[str, ...] = ("train", "val", "heldout-real")) -> Path:
    """A crop-classifier dataset (``<root>/<split>/<class>/*.jpg``): each class a coloured face-like square
    inside a grey context crop; ``n`` images per class in train, 3 in the other splits."""
    from facewear.io import write_image

    rng = np.random.default_rng(0)
    for split in splits:
        k = n if split == "train" else 3
        for ci, c in enumerate(CLASS_NAMES):
            for i in range(k):
                img = np.full((size, size, 3), 100, np.uint8) + rng.integers(0, 20, (size, size, 3), dtype=np.uint8)
                s = size // 3
                img[s:2 * s, s:2 * s] = DET_COLORS[ci]
                write_image(root / split / c / f"{c}{i}.jpg", img, quality=95)
    return root


def make_cls_ckpt(path: Path, imgsz: int = 32, arch: str = "mobilenet_v2_050") -> Path:
    """An untrained crop-classifier checkpoint (seeded), as `facewear train cls` writes it, minus the optimizer."""
    import torch

    from classification.models import build_model

    torch.manual_seed(0)
    model, _ = build_model(arch, pretrained=False)
    torch.save({"arch": arch, "imgsz": imgsz, "margin": 0.15, "class_names": list(CLASS_NAMES),
                "model": model.state_dict(), "start": "scratch", "args": {"epochs": 0}}, path)
    return path


@pytest.fixture
def fake_app(monkeypatch) -> dict:
    """Replace ``fo.launch_app`` with a session that records its arguments and stops on a simulated Ctrl-C;
    returns the record (``closed`` once the session was closed)."""
    import fiftyone as fo

    calls: dict = {}

    class FakeSession:
        def wait(self) -> None:
            raise KeyboardInterrupt

        def close(self) -> None:
            calls["closed"] = True

    def fake_launch(dataset, **kw):
        calls.update(kw, dataset=dataset.name)
        return FakeSession()

    monkeypatch.setattr(fo, "launch_app", fake_launch)
    return calls
