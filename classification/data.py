"""Load a crop split (``<root>/<split>/<class>/*.jpg``) and serve it, augmented, to training."""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from facewear.constants import CLASS_NAMES, CLS_IMGSZ, CLS_MARGIN
from facewear.io import ImageReadError, list_images, read_image

from .preprocess import MEAN, STD, from_context

LOG = logging.getLogger("facewear.cls")


def load_split(root: str | Path, split: str, names: tuple[str, ...] = CLASS_NAMES,
               fraction: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """All stored context crops of ``split``: ``(images (N, S, S, 3) uint8 BGR, labels (N,), files)``."""
    d = Path(root) / split
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: crop split {split!r} not found (run `facewear data crops` first)")
    imgs, labels, files = [], [], []
    for ci, c in enumerate(names):
        paths = list_images(d / c) if (d / c).is_dir() else []
        if fraction < 1.0 and paths:
            rng = np.random.default_rng(seed + ci)
            paths = sorted(rng.choice(paths, max(1, round(len(paths) * fraction)), replace=False).tolist())
        for p in paths:
            try:
                im = read_image(p)
            except (ImageReadError, OSError) as e:
                LOG.warning("%s: skipped (%s)", p, e)
                continue
            if im.shape[0] != im.shape[1]:
                LOG.warning("%s: skipped (not a square context crop: %dx%d)", p, im.shape[1], im.shape[0])
                continue
            imgs.append(im)
            labels.append(ci)
            files.append(str(Path(p).relative_to(root)))
    if not imgs:
        raise ValueError(f"{d}: no crops in any class folder ({', '.join(names)})")
    side = max(i.shape[0] for i in imgs)
    imgs = [i if i.shape[0] == side else cv2.resize(i, (side, side)) for i in imgs]
    return np.stack(imgs), np.asarray(labels, np.int64), files


def eval_crops(imgs: np.ndarray, imgsz: int = CLS_IMGSZ, margin: float = CLS_MARGIN) -> np.ndarray:
    """Deterministic model crops (the exact box) from stored context crops."""
    return np.stack([from_context(i, imgsz, margin) for i in imgs])


class CropDataset(Dataset):
    """Context crops -> normalised CHW tensors, with the box jitter and photometric changes a real camera gives."""

    def __init__(self, imgs: np.ndarray, labels: np.ndarray, imgsz: int = CLS_IMGSZ, margin: float = CLS_MARGIN,
                 train: bool = True, seed: int = 0):
        self.imgs, self.labels, self.imgsz, self.margin, self.train = imgs, labels, imgsz, margin, train
        self.rng = np.random.default_rng(seed)
        self.seed, self.epoch = seed, 0
        #: draw each sample's augmentation from its own generator keyed by (seed, epoch, index) instead of one
        #: stream: what distributed training sets, so that ranks (each with a copy of this dataset) do not repeat
        #: each other's draws and a sample is augmented the same whichever rank gets it
        self.per_sample = False

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.imgs)

    def augment(self, img: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        r = rng if rng is not None else self.rng
        c = from_context(img, self.imgsz, self.margin, scale=float(r.uniform(0.85, 1.25)),
                         shift=(float(r.uniform(-0.1, 0.1)), float(r.uniform(-0.1, 0.1))))
        if r.random() < 0.5:
            c = c[:, ::-1]
        if r.random() < 0.25:  # small, far faces: down- then up-sample
            s = int(r.integers(14, max(15, self.imgsz // 2)))
            c = cv2.resize(cv2.resize(c, (s, s), interpolation=cv2.INTER_AREA), (self.imgsz, self.imgsz))
        if r.random() < 0.2:
            c = cv2.GaussianBlur(c, (0, 0), float(r.uniform(0.5, 1.5)))
        c = c.astype(np.float32)
        if r.random() < 0.3:  # low light
            c = 255.0 * (c / 255.0) ** float(r.uniform(1.3, 2.5))
        c = c * float(r.uniform(0.7, 1.3)) + float(r.uniform(-25, 25))
        if r.random() < 0.05:
            c[:] = c.mean(axis=2, keepdims=True)
        return np.clip(c, 0, 255)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = self.imgs[i]
        rng = np.random.default_rng((self.seed, self.epoch, i)) if self.per_sample else None
        c = self.augment(img, rng) if self.train else from_context(img, self.imgsz, self.margin).astype(np.float32)
        x = (c[..., ::-1] - MEAN) / STD
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)), int(self.labels[i])
