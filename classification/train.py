"""``facewear train cls --arch ARCH``: train a four-class crop classifier.

The loop follows torchvision's ``references/classification``: the checkpoint is a dict of model, optimizer,
scheduler, epoch and args (plus what a runtime needs: arch, imgsz, margin, class_names); ``--resume``
continues ``last.pt``; ``--test-only`` evaluates a checkpoint without training. Evaluation reports accuracy,
per-class recall and a confusion matrix on ``val``, ``heldout-real`` and ``heldout-synth``.
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
    SEED,
    default_build_dir,
)
from facewear.io import atomic_path, write_json

from .data import CropDataset, eval_crops, load_split
from .evaluate import plot_confusion, scores
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
        with torch.inference_mode():
            return self.model(torch.from_numpy(x)).numpy()


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
        key = (s, clf.imgsz, clf.margin)
        if cache is not None and key in cache:
            x, y = cache[key]
        else:
            try:
                imgs, y, _ = load_split(root, s, clf.names)
            except ValueError as e:
                LOG.info("%s", e)
                continue
            x = eval_crops(imgs, clf.imgsz, clf.margin)
            if cache is not None:
                cache[key] = (x, y)
        pred = np.concatenate([clf(x[i:i + 256]).argmax(1) for i in range(0, len(x), 256)])
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
          distill_t: float = 2.0, project: str = "runs/cls", name: str | None = None, exist_ok: bool = False,
          resume: bool = False, test_only: bool = False, weights: str | None = None, fraction: float = 1.0,
          workers: int = 0, threads: int | None = None, bn_batches: int = 20, seed: int = SEED) -> dict:
    """Train (or with ``test_only`` evaluate) a crop classifier; returns the final metrics dict."""
    args = dict(locals())
    if arch not in ARCHS:
        raise ValueError(f"unknown --arch {arch!r} (expected one of {', '.join(ARCHS)})")
    root = Path(data) if data else default_build_dir() / "crops"
    run_dir = Path(project).resolve() / (name or arch)
    wdir = run_dir / "weights"
    torch.set_num_threads(threads or os.cpu_count() or 1)
    torch.manual_seed(seed)
    args["command"] = ("facewear " + " ".join(shlex.quote(a) for a in sys.argv[1:])
                       if Path(sys.argv[0]).name == "facewear" else None)

    if test_only:
        ckpt = Path(weights) if weights else wdir / "best.pt"
        clf = load_classifier(ckpt, threads)
        out = ckpt.parent.parent if ckpt.parent.name == "weights" else ckpt.parent
        res = evaluate_all(clf, root, out_dir=out)
        print(_table(res))
        write_json(out / f"{ckpt.stem}.eval.json", res)
        return res

    tr_imgs, tr_y, _ = load_split(root, "train", CLASS_NAMES, fraction, seed)
    va_imgs, va_y, _ = load_split(root, "val", CLASS_NAMES)
    LOG.info("%s: %d train crops %s, %d val crops", root, len(tr_y), np.bincount(tr_y, minlength=4).tolist(),
             len(va_y))
    model, start = build_model(arch, len(CLASS_NAMES), pretrained=init == "imagenet")
    if init not in ("imagenet", "none"):
        raise ValueError(f"--init must be 'imagenet' or 'none', got {init!r}")
    teacher = None
    if distill:
        teacher = load_classifier(distill, threads)
        if not hasattr(teacher, "model"):
            raise ValueError(f"{distill}: a distillation teacher must be a torch .pt checkpoint")
        start += f" + distilled from {Path(distill).name}"
    lr = lr or (1e-3 if start.startswith("imagenet") else 3e-3)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    dl = DataLoader(CropDataset(tr_imgs, tr_y, imgsz, margin, train=True, seed=seed), batch_size=batch,
                    shuffle=True, num_workers=workers, drop_last=len(tr_y) > batch,
                    generator=torch.Generator().manual_seed(seed))
    steps = max(1, epochs * len(dl))
    warm = min(len(dl), steps // 10 + 1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm))))
    start_epoch, best, history = 0, -1.0, []
    if resume:
        last = wdir / "last.pt"
        if not last.is_file():
            raise FileNotFoundError(f"{last}: nothing to resume")
        ck = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["lr_scheduler"])
        start_epoch = ck["epoch"] + 1
        best = ck["metrics"].get("best_val", -1.0)
        history = ck["metrics"].get("history", [])
        start = ck.get("start", start)
        LOG.info("resuming %s from epoch %d", last, start_epoch)
    elif run_dir.exists() and not exist_ok:
        raise ValueError(f"{run_dir}: run folder exists (pass --exist-ok, another --name, or --resume)")
    wdir.mkdir(parents=True, exist_ok=True)
    LOG.info("%s (%s, %.2fM params) at %d px, %d epochs, lr %.0e", arch, start, count_params(model) / 1e6, imgsz,
             epochs, lr)
    cache: dict = {}
    va_x = eval_crops(va_imgs, imgsz, margin)
    model = model.to(memory_format=torch.channels_last)  # ~1.5x faster convolutions on CPU
    for epoch in range(start_epoch, epochs):
        model.train()
        t0, tot, n = time.time(), 0.0, 0
        bar = tqdm(dl, desc=f"epoch {epoch + 1}/{epochs}", leave=False)
        for x, y in bar:
            x = x.contiguous(memory_format=torch.channels_last)
            out = model(x)
            loss = F.cross_entropy(out, y, label_smoothing=label_smoothing)
            if teacher is not None:
                with torch.no_grad():
                    tl = teacher.model(x)
                kd = F.kl_div(F.log_softmax(out / distill_t, 1), F.softmax(tl / distill_t, 1),
                              reduction="batchmean") * distill_t ** 2
                loss = (1 - distill_alpha) * loss + distill_alpha * kd
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * len(y)
            n += len(y)
            bar.set_postfix(loss=f"{tot / n:.3f}")
        precise_bn(model, dl, bn_batches)
        clf = ModuleClassifier(model, imgsz, margin)
        pred = np.concatenate([clf(va_x[i:i + 256]).argmax(1) for i in range(0, len(va_x), 256)])
        va = scores(va_y, pred)
        history.append({"epoch": epoch, "loss": tot / max(n, 1), "val_accuracy": va["accuracy"],
                        "seconds": round(time.time() - t0, 1)})
        LOG.info("epoch %d/%d loss %.4f val acc %.4f (%.0f s)", epoch + 1, epochs, tot / max(n, 1), va["accuracy"],
                 time.time() - t0)
        improved = va["accuracy"] > best
        best = max(best, va["accuracy"])
        m = {"best_val": best, "history": history}
        save_checkpoint(wdir / "last.pt", model, arch, imgsz, margin, start, epoch, args, m, opt, sched)
        if improved:
            save_checkpoint(wdir / "best.pt", model, arch, imgsz, margin, start, epoch, args, m)
        write_json(run_dir / "history.json", history)
    clf = load_classifier(wdir / "best.pt", threads)
    res = evaluate_all(clf, root, cache=cache, out_dir=run_dir)
    summary = {"arch": arch, "start": start, "params": count_params(model), "imgsz": imgsz, "epochs": epochs,
               "best_epoch": int(np.argmax([h["val_accuracy"] for h in history])) if history else None,
               "metrics": res, "history": history}
    write_json(run_dir / "metrics.json", summary)
    print(_table(res))
    return summary


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", default="mobilenet_v2", choices=ARCHS, help="architecture (default mobilenet_v2)")
    p.add_argument("--data", default=None, help="crop dataset root (default: build/crops, made by facewear data crops)")
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
    p.add_argument("--project", default="runs/cls", help="folder of runs (default runs/cls)")
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


def run(**kwargs) -> dict:
    return train(**kwargs)
