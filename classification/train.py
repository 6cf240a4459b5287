"""``facewear train cls --arch ARCH``: train a four-class crop classifier.

The loop follows torchvision's ``references/classification``: the checkpoint is a dict of model, optimizer,
scheduler, epoch and args (plus what a runtime needs: arch, imgsz, margin, class_names); ``--resume``
continues ``last.pt``; ``--test-only`` evaluates a checkpoint without training. Evaluation reports accuracy,
per-class recall and a confusion matrix on ``val``, ``heldout-real`` and ``heldout-synth``. Under ``torchrun`` it
trains with ``DistributedDataParallel`` (see :func:`train`); the README's "Scaling out" gives the commands.
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from facewear.constants import (
    CLASS_NAMES,
    CLS_IMGSZ,
    CLS_MARGIN,
    DATASETS_DIR,
    RUNS_DIR,
    SEED,
    default_build_dir,
)
from facewear.dist import (
    DistInfo,
    all_gather_object,
    barrier,
    broadcast_object,
    cleanup,
    init_distributed_mode,
    mean_over_ranks,
)
from facewear.io import atomic_path, write_json

from .data import CropDataset, eval_crops, load_split
from .evaluate import plot_confusion, predict_split, scores
from .models import ARCHS, build_model, count_params
from .runtime import Classifier, load_classifier

LOG = logging.getLogger("facewear.cls")
EVAL_SPLITS = ("val", "heldout-real", "heldout-synth")


class ModuleClassifier(Classifier):
    """Wrap an in-memory ``nn.Module`` as a ``Classifier`` (evaluation during training)."""

    def __init__(self, model: nn.Module, imgsz: int, margin: float, names=CLASS_NAMES, source: str = "memory"):
        self.model, self.imgsz, self.margin, self.names, self.source = model, imgsz, margin, tuple(names), source

    def logits(self, x: np.ndarray) -> np.ndarray:
        self.model.eval()
        dev = next(self.model.parameters()).device
        with torch.inference_mode():
            return self.model(torch.from_numpy(x).to(dev)).cpu().numpy()


def save_checkpoint(path: Path, model: nn.Module, arch: str, imgsz: int, margin: float, start: str, epoch: int,
                    args: dict, metrics: dict, optimizer=None, scheduler=None) -> None:
    """torchvision-style checkpoint dict, written atomically. Optimizer/scheduler only in ``last.pt``."""
    ckpt = {"model": model.state_dict(), "arch": arch, "imgsz": imgsz, "margin": margin,
            "class_names": list(CLASS_NAMES), "start": start, "epoch": epoch, "args": args, "metrics": metrics}
    if optimizer is not None:
        ckpt["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        ckpt["lr_scheduler"] = scheduler.state_dict()
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def evaluate_all(clf: Classifier, root: Path, splits=EVAL_SPLITS, cache: dict | None = None,
                 out_dir: Path | None = None) -> dict:
    """Scores on each available split (missing ones are skipped with a note); confusion PNGs into ``out_dir``."""
    res = {}
    for s in splits:
        if not (root / s).is_dir():
            LOG.info("%s: no split %s; skipped", root, s)
            continue
        try:
            y, pred, _ = predict_split(clf, root, s, cache=cache)
        except ValueError as e:  # a split with no crops
            LOG.info("%s", e)
            continue
        res[s] = scores(y, pred, clf.names)
        if out_dir is not None:
            plot_confusion(res[s], out_dir / f"confusion_{s}.png", f"{Path(clf.source).name} on {s}", clf.names)
    return res


def _table(res: dict) -> str:
    lines = ["| split | n | accuracy | " + " | ".join(f"recall {n}" for n in CLASS_NAMES) + " |",
             "|---|---:|---:|" + "---:|" * len(CLASS_NAMES)]
    for s, r in res.items():
        rec = " | ".join("-" if r["recall"][n] is None else f"{r['recall'][n]:.3f}" for n in CLASS_NAMES)
        lines.append(f"| {s} | {r['n']} | {r['accuracy']:.4f} | {rec} |")
    return "\n".join(lines)


@torch.no_grad()
def precise_bn(model: nn.Module, loader: DataLoader, batches: int) -> None:
    """Recompute BatchNorm running statistics as a plain average over ``batches`` training batches
    ("precise BN", as in Detectron2/pycls). The default momentum average lags a network whose weights move
    fast (a from-scratch start, few steps) so far that eval mode predicts one class; this removes the lag."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns or batches <= 0:
        return
    moms = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    model.train()
    for i, (x, _) in enumerate(loader):
        if i >= batches:
            break
        model(x.contiguous(memory_format=torch.channels_last))
    for m, mom in zip(bns, moms):
        m.momentum = mom


def train(arch: str = "mobilenet_v2", data: str | None = None, imgsz: int = CLS_IMGSZ, margin: float = CLS_MARGIN,
          epochs: int = 8, batch: int = 128, lr: float | None = None, weight_decay: float = 0.05,
          label_smoothing: float = 0.1, init: str = "imagenet", distill: str | None = None, distill_alpha: float = 0.7,
          distill_t: float = 2.0, project: str = str(RUNS_DIR / "cls"), name: str | None = None, exist_ok: bool = False,
          resume: bool = False, test_only: bool = False, weights: str | None = None, fraction: float = 1.0,
          workers: int = 0, threads: int | None = None, bn_batches: int = 20, seed: int = SEED,
          sync_bn: bool = False, balance: bool = False, source_weight: list[str] | None = None,
          source_spec: str | None = None) -> dict:
    """Train (or with ``test_only`` evaluate) a crop classifier; returns the final metrics dict.

    Under ``torchrun`` (:mod:`facewear.dist`): ``DistributedDataParallel`` with ``batch`` crops per process, a
    ``DistributedSampler`` re-seeded every epoch, per-sample augmentation draws, optional ``sync_bn`` (GPUs), the
    val predictions split over the ranks and gathered on rank 0, checkpoints, logs and the final evaluation on
    rank 0 only; resume works on any number of processes. One process: as before.

    ``balance``: draw training crops with replacement, each class equally often (one process only).
    ``source_weight``: ``["LABEL=W", ...]``: draw the training crops whose source dataset labelled them ``LABEL``
    (e.g. ``mask_weared_incorrect``, a sub-kind of ``mask``; :func:`classification.source_labels.source_labels` on
    ``source_spec``, default ``datasets/facewear4.yaml``) ``W`` times as often as the others of their class (one
    process only; with ``balance``, the classes stay equally often drawn). Raises ValueError on a malformed
    entry, a weight <= 0 or a label no training crop has."""
    args = dict(locals())
    if arch not in ARCHS:
        raise ValueError(f"unknown --arch {arch!r} (expected one of {', '.join(ARCHS)})")
    info = init_distributed_mode()
    root = Path(data) if data else default_build_dir() / "crops"
    run_dir = Path(project).resolve() / (name or arch)
    wdir = run_dir / "weights"
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", info.world_size))
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // local_world))
    torch.manual_seed(seed)
    args["command"] = ("facewear " + " ".join(shlex.quote(a) for a in sys.argv[1:])
                       if Path(sys.argv[0]).name == "facewear" else None)
    args["world_size"] = info.world_size

    if test_only:
        res = {}
        if info.main:
            ckpt = Path(weights) if weights else wdir / "best.pt"
            clf = load_classifier(ckpt, threads)
            out = ckpt.parent.parent if ckpt.parent.name == "weights" else ckpt.parent
            res = evaluate_all(clf, root, out_dir=out)
            print(_table(res))
            write_json(out / f"{ckpt.stem}.eval.json", res)
        cleanup(info)
        return res
    try:
        return _fit(args, info, root, run_dir)
    finally:
        cleanup(info)


def sampling_weights(y: np.ndarray, files: list[str], root: Path, balance: bool, source_weight: list[str],
                     source_spec: str | None = None) -> np.ndarray:
    """Per-crop sampling weights (N,) for ``WeightedRandomSampler``: with ``balance`` each class carries the same
    total weight; ``source_weight`` (``LABEL=W``) multiplies the crops of that source label by ``W`` inside their
    class (with ``balance`` the class totals are kept). ``files`` are the crops' paths relative to ``root``."""
    from .source_labels import parse_source_weights

    w = np.ones(len(y), np.float64)
    weights = parse_source_weights(source_weight)
    if weights:
        from .source_labels import source_labels

        src = source_labels(root, "train", spec=source_spec or str(DATASETS_DIR / "facewear4.yaml"), missing_ok=True)
        groups = np.array([src.get(f, "") for f in files])
        for label, wt in weights.items():
            hit = groups == label
            if not hit.any():
                raise ValueError(f"--source-weight {label}: no training crop of {root} has that source label "
                                 f"(labels found: {sorted(set(groups.tolist()))})")
            w[hit] *= wt
            LOG.info("--source-weight: %d crops labelled %s drawn %gx as often", int(hit.sum()), label, wt)
    if balance:
        totals = np.bincount(y, weights=w, minlength=len(CLASS_NAMES))
        w = w / np.maximum(totals, 1e-12)[y]
        LOG.info("--balance: each class drawn equally often (train counts %s)",
                 np.bincount(y, minlength=len(CLASS_NAMES)).tolist())
    return w


def _fit(args: dict, info: DistInfo, root: Path, run_dir: Path) -> dict:
    a = args
    arch, imgsz, margin, epochs, batch, seed = a["arch"], a["imgsz"], a["margin"], a["epochs"], a["batch"], a["seed"]
    wdir = run_dir / "weights"
    tr_imgs, tr_y, tr_files = load_split(root, "train", CLASS_NAMES, a["fraction"], seed)
    va_imgs, va_y, _ = load_split(root, "val", CLASS_NAMES)
    LOG.info("%s: %d train crops %s, %d val crops", root, len(tr_y), np.bincount(tr_y, minlength=4).tolist(),
             len(va_y))
    model, start = build_model(arch, len(CLASS_NAMES), pretrained=a["init"] == "imagenet")
    if a["init"] not in ("imagenet", "none"):
        raise ValueError(f"--init must be 'imagenet' or 'none', got {a['init']!r}")
    device = torch.device(info.device)
    teacher = None
    if a["distill"]:
        teacher = load_classifier(a["distill"], a["threads"])
        if not hasattr(teacher, "model"):
            raise ValueError(f"{a['distill']}: a distillation teacher must be a torch .pt checkpoint")
        teacher.model.to(device)
        start += f" + distilled from {Path(a['distill']).name}"
    lr = a["lr"] or (1e-3 if start.startswith("imagenet") else 3e-3)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=a["weight_decay"])
    ds = CropDataset(tr_imgs, tr_y, imgsz, margin, train=True, seed=seed)
    sampler = None
    if info.distributed:
        from torch.utils.data.distributed import DistributedSampler

        ds.per_sample = True
        sampler = DistributedSampler(ds, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed)
    weighted = None
    if a.get("balance") or a.get("source_weight"):
        if info.distributed:
            raise ValueError("--balance and --source-weight run in one process only (not under torchrun)")
        from torch.utils.data import WeightedRandomSampler

        w = sampling_weights(tr_y, tr_files, root, bool(a.get("balance")), a.get("source_weight") or [],
                             a.get("source_spec"))
        weighted = WeightedRandomSampler(torch.from_numpy(w), num_samples=len(tr_y), replacement=True,
                                         generator=torch.Generator().manual_seed(seed))
    per_rank = len(sampler) if sampler is not None else len(tr_y)
    dl = DataLoader(ds, batch_size=batch, shuffle=sampler is None and weighted is None, sampler=sampler or weighted,
                    num_workers=a["workers"],
                    drop_last=per_rank > batch,
                    generator=torch.Generator().manual_seed(seed) if sampler is None and weighted is None else None)
    steps = max(1, epochs * len(dl))
    warm = min(len(dl), steps // 10 + 1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm))))
    start_epoch, best, history = 0, -1.0, []
    if a["resume"]:
        last = wdir / "last.pt"
        if not last.is_file():
            raise FileNotFoundError(f"{last}: nothing to resume")
        ck = torch.load(last, map_location="cpu", weights_only=False)
        for k in ("balance", "source_weight", "fraction"):  # the sampling is rebuilt from this command line
            if k in (ck.get("args") or {}) and ck["args"][k] != a.get(k):
                LOG.warning("--resume: %s was %r when %s was saved, now %r: the rest of the run samples the "
                            "new way", k, ck["args"][k], last, a.get(k))
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["lr_scheduler"])
        start_epoch = ck["epoch"] + 1
        # per-iteration schedule re-based on this run's iterations per epoch (another process count changes them)
        sched.last_epoch = start_epoch * len(dl)
        for g, v in zip(opt.param_groups, sched.get_lr()):
            g["lr"] = v
        best = ck["metrics"].get("best_val", -1.0)
        history = ck["metrics"].get("history", [])
        start = ck.get("start", start)
        LOG.info("resuming %s from epoch %d (saved by %d process(es), now %d)", last, start_epoch,
                 ck["args"].get("world_size", 1), info.world_size)
    elif run_dir.exists() and not a["exist_ok"]:
        raise ValueError(f"{run_dir}: run folder exists (pass --exist-ok, another --name, or --resume)")
    barrier(info)  # every rank checked the run folder before rank 0 creates it
    if info.main:
        wdir.mkdir(parents=True, exist_ok=True)
    LOG.info("%s (%s, %.2fM params) at %d px, %d epochs, lr %.0e%s", arch, start, count_params(model) / 1e6, imgsz,
             epochs, lr, f", {info.world_size} processes x batch {batch}" if info.distributed else "")
    cache: dict = {}
    va_x = eval_crops(va_imgs, imgsz, margin)
    model = model.to(device, memory_format=torch.channels_last)  # ~1.5x faster convolutions on CPU
    bare = model  # checkpoints and evaluation use the module itself, never the DDP wrapper
    if info.distributed:
        if a["sync_bn"]:
            if device.type == "cpu":
                LOG.warning("--sync-bn needs GPUs (SyncBatchNorm has no CPU kernel): ignored")
            else:
                model = bare = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    for epoch in range(start_epoch, epochs):
        ds.set_epoch(epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)
        model.train()
        t0, tot, n, first = time.time(), 0.0, 0, []
        bar = tqdm(dl, desc=f"epoch {epoch + 1}/{epochs}", leave=False, disable=not info.main)
        for x, y in bar:
            x = x.to(device).contiguous(memory_format=torch.channels_last)
            y = y.to(device)
            out = model(x)
            loss = F.cross_entropy(out, y, label_smoothing=a["label_smoothing"])
            if teacher is not None:
                with torch.no_grad():
                    tl = teacher.model(x)
                dt = a["distill_t"]
                kd = F.kl_div(F.log_softmax(out / dt, 1), F.softmax(tl / dt, 1), reduction="batchmean") * dt ** 2
                loss = (1 - a["distill_alpha"]) * loss + a["distill_alpha"] * kd
            opt.zero_grad(set_to_none=True)
            loss.backward()  # DDP averages the gradients over the ranks here
            opt.step()
            sched.step()
            tot += loss.item() * len(y)
            n += len(y)
            if len(first) < 2:  # the first steps' loss, averaged over the ranks
                first.append(mean_over_ranks(info, loss.item(), len(y)))
            bar.set_postfix(loss=f"{tot / n:.3f}")
        ep_loss = mean_over_ranks(info, tot / max(n, 1), n)
        precise_bn(bare, dl, a["bn_batches"])
        _average_buffers(bare, info)  # BatchNorm statistics: the mean over the ranks, so every rank holds the same
        va = _val_scores(ModuleClassifier(bare, imgsz, margin), va_x, va_y, info)
        history.append({"epoch": epoch, "loss": ep_loss, "val_accuracy": va["accuracy"],
                        "seconds": round(time.time() - t0, 1), "first_losses": first, "world_size": info.world_size})
        LOG.info("epoch %d/%d loss %.4f val acc %.4f (%.0f s)", epoch + 1, epochs, ep_loss, va["accuracy"],
                 time.time() - t0)
        improved = va["accuracy"] > best
        best = max(best, va["accuracy"])
        m = {"best_val": best, "history": history}
        if info.main:  # rank 0 alone writes
            save_checkpoint(wdir / "last.pt", bare, arch, imgsz, margin, start, epoch, args, m, opt, sched)
            if improved:
                save_checkpoint(wdir / "best.pt", bare, arch, imgsz, margin, start, epoch, args, m)
            write_json(run_dir / "history.json", history)
        barrier(info)
    summary = {"arch": arch, "start": start, "params": count_params(bare), "imgsz": imgsz, "epochs": epochs,
               "best_epoch": int(np.argmax([h["val_accuracy"] for h in history])) if history else None,
               "metrics": {}, "history": history, "world_size": info.world_size}
    if info.main:
        clf = load_classifier(wdir / "best.pt", a["threads"])
        summary["metrics"] = evaluate_all(clf, root, cache=cache, out_dir=run_dir)
        write_json(run_dir / "metrics.json", summary)
        print(_table(summary["metrics"]))
    barrier(info)
    return summary


def _average_buffers(model: nn.Module, info: DistInfo) -> None:
    """Float buffers (BatchNorm running statistics) averaged over the ranks; nothing in one process."""
    if not info.distributed:
        return
    import torch.distributed as dist

    for b in model.buffers():
        if b.is_floating_point():
            dist.all_reduce(b)
            b /= info.world_size


def _val_scores(clf: Classifier, va_x: np.ndarray, va_y: np.ndarray, info: DistInfo) -> dict:
    """Val scores; with several ranks each predicts every world-th crop and rank 0 scores the gathered whole."""
    idx = np.arange(len(va_x))[info.rank::info.world_size]
    mine = np.concatenate([clf(va_x[idx[i:i + 256]]).argmax(1) for i in range(0, len(idx), 256)]) if len(idx) \
        else np.zeros(0, np.int64)
    parts = all_gather_object(info, (idx, mine))
    res = None
    if info.main:
        pred = np.zeros(len(va_x), np.int64)
        for i, p in parts:
            pred[i] = p
        res = scores(va_y, pred)
    return broadcast_object(info, res)


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", default="mobilenet_v2", choices=ARCHS, help="architecture (default mobilenet_v2)")
    p.add_argument("--crops", dest="data", default=None, metavar="DIR",
                   help="crop dataset root (default: build/crops, made by facewear data crops)")
    p.add_argument("--data", dest="data", default=None,
                   help=argparse.SUPPRESS)  # deprecated spelling of --crops (--data is a dataset spec elsewhere)
    p.add_argument("--imgsz", type=int, default=CLS_IMGSZ, help=f"input size in pixels (default {CLS_IMGSZ})")
    p.add_argument("--margin", type=float, default=CLS_MARGIN,
                   help=f"crop margin around the face box, fraction of its side (default {CLS_MARGIN})")
    p.add_argument("--epochs", type=int, default=8, help="training epochs (default 8)")
    p.add_argument("--batch", type=int, default=128, help="batch size (default 128)")
    p.add_argument("--lr", type=float, default=None, help="AdamW peak lr (default 1e-3 pretrained, 3e-3 scratch)")
    p.add_argument("--weight-decay", type=float, default=0.05, help="AdamW weight decay (default 0.05)")
    p.add_argument("--label-smoothing", type=float, default=0.1, help="label smoothing (default 0.1)")
    p.add_argument("--init", default="imagenet", choices=("imagenet", "none"),
                   help="ImageNet start where an offline file exists (mobilenet_v2, efficientnet_lite0)")
    p.add_argument("--distill", default=None, help="teacher checkpoint (.pt) for knowledge distillation")
    p.add_argument("--distill-alpha", type=float, default=0.7,
                   help="with --distill: weight of the teacher's soft labels in the loss (default 0.7)")
    p.add_argument("--distill-t", type=float, default=2.0, help="with --distill: softmax temperature (default 2.0)")
    p.add_argument("--project", default=str(RUNS_DIR / "cls"),
                   help="folder of runs; relative: to the current folder (default runs/cls in the repository)")
    p.add_argument("--name", default=None, help="run name (default: the arch)")
    p.add_argument("--exist-ok", action="store_true", help="reuse an existing run folder instead of stopping")
    p.add_argument("--resume", action="store_true", help="continue <project>/<name>/weights/last.pt")
    p.add_argument("--test-only", action="store_true", help="evaluate --weights (default best.pt) and stop")
    p.add_argument("--weights", default=None, help="checkpoint for --test-only")
    p.add_argument("--fraction", type=float, default=1.0, help="fraction of the train crops per class")
    p.add_argument("--workers", type=int, default=0, help="data loader processes (default 0: in the main process)")
    p.add_argument("--bn-batches", type=int, default=20,
                   help="training batches that re-estimate BatchNorm statistics before each evaluation (0: off)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--seed", type=int, default=SEED, help=f"random seed (default {SEED})")
    p.add_argument("--balance", action="store_true",
                   help="class-balanced sampling: training crops drawn with replacement, each class equally often "
                        "(one process only)")
    p.add_argument("--source-weight", action="append", default=None, metavar="LABEL=W",
                   help="draw training crops that the source dataset labelled LABEL (e.g. mask_weared_incorrect) W "
                        "times as often as the rest of their class; repeat (one process only)")
    p.add_argument("--source-spec", default=None,
                   help="spec of the build the crops were cut from, for --source-weight (default "
                        "datasets/facewear4.yaml)")
    p.add_argument("--sync-bn", action="store_true",
                   help="under torchrun on GPUs: SyncBatchNorm, batch statistics over all ranks (no CPU kernel)")


def run(**kwargs) -> dict:
    return train(**kwargs)
