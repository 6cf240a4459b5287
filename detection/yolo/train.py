"""YOLOv5 (ultralytics) four-class detector: model building, COCO start and training.

``facewear train yolo`` builds ``yolov5n.yaml`` / ``yolov5s.yaml`` with four
classes. ``--init coco`` loads ``yolov5n-coco-state_dict.pth`` (a plain fp32
state_dict of the YOLOv5 v6 release): its keys ``model.0``-``model.23``
(backbone and neck) match ultralytics' ``yolov5n.yaml`` one to one, and
``model.24`` (the old anchor-based COCO head) has no counterpart in the
anchor-free ``Detect`` head, so it is dropped. The initialised model is saved
as an ultralytics checkpoint and training starts from it, because ultralytics
re-builds a fresh model when training a model that was built from a yaml.
"""
from __future__ import annotations

import argparse
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import facewear
from facewear.constants import CLASS_NAMES, DATASETS_DIR, RUNS_DIR, default_shared_weights
from facewear.data.layout import resolved_spec_file

LOG = logging.getLogger("facewear.yolo")
COCO_STATE_DICT = "yolov5n-coco-state_dict.pth"


def build_model(cfg: str = "yolov5n.yaml", nc: int = len(CLASS_NAMES)):
    """An ultralytics ``DetectionModel`` built from a yaml (never downloads)."""
    from ultralytics.nn.tasks import DetectionModel

    if cfg.endswith(".pt"):
        raise ValueError(f"{cfg}: build from a .yaml; loading a .pt by name downloads")
    model = DetectionModel(cfg, nc=nc, verbose=False)
    model.names = dict(enumerate(CLASS_NAMES[:nc]))
    return model


def load_coco(model, path: str | Path) -> tuple[int, int]:
    """Copy the COCO backbone+neck (``model.0``-``model.23``) into ``model``; returns (loaded, total)."""
    import torch

    sd = torch.load(path, map_location="cpu", weights_only=True)
    own = model.state_dict()
    take = {k: v for k, v in sd.items() if not k.startswith("model.24.") and k in own and own[k].shape == v.shape}
    model.load_state_dict(take, strict=False)
    return len(take), sum(1 for k in sd if not k.startswith("model.24."))


def init_checkpoint(cfg: str, init: str, out: Path) -> Path | str:
    """Make the starting checkpoint. ``init``: 'coco', 'none' or a path to a state_dict/.pt."""
    import torch

    model = build_model(cfg)
    if init == "none":
        return cfg
    src = Path(init) if init != "coco" else (default_shared_weights() or Path("/nonexistent")) / COCO_STATE_DICT
    if not src.is_file():
        warnings.warn(f"{src}: COCO start not found; training from scratch", stacklevel=2)
        LOG.warning("%s: COCO start not found; training from scratch", src)
        return cfg
    if src.suffix == ".pt":
        return src
    n, total = load_coco(model, src)
    LOG.info("COCO start: %d/%d backbone+neck tensors loaded from %s", n, total, src)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.half(), "train_args": {}, "date": None, "version": "facewear-init",
                "init": str(src)}, out)
    return out


OVERLAY_POSES = ("front", "left", "right", "turned")


def parse_overlay_weights(items: list[str]) -> dict[tuple[str, str | None], int]:
    """``["ACTION[:POSE]=W", ...]`` -> ``{(ACTION, POSE or None): W}``. ACTION is an overlay the build draws
    (the keys of :data:`facewear.data.build.ACTIONS`), POSE the head pose it recorded (``front``, ``left``,
    ``right``; ``turned`` = left or right; none = any), W a whole number >= 1. Raises ValueError naming a
    malformed entry."""
    from facewear.data.build import ACTIONS

    out: dict[tuple[str, str | None], int] = {}
    for it in items:
        key, sep, val = it.rpartition("=")
        action, _, pose = key.partition(":")
        try:
            w = int(val)
        except ValueError:
            w = 0
        if not sep or action not in ACTIONS or (pose and pose not in OVERLAY_POSES) or w < 1:
            raise ValueError(f"--overlay-weight {it!r}: expected ACTION[:POSE]=W with ACTION one of "
                             f"{', '.join(ACTIONS)}, POSE one of {', '.join(OVERLAY_POSES)} and W a whole "
                             "number >= 1")
        out[(action, pose or None)] = w
    return out


def _overlay_matches(overlay: dict, action: str, pose: str | None) -> bool:
    got = overlay.get("pose")
    return overlay.get("action") == action and (
        pose is None or got == pose or (pose == "turned" and got in ("left", "right")))


def _overlay_key(action: str, pose: str | None) -> str:
    return f"overlay {action}:{pose}" if pose else f"overlay {action}"


def weighted_train_list(spec_file: str | Path, source_weight: list[str] | None, out: str | Path,
                        data_root: str | Path | None = None,
                        overlay_weight: list[str] | None = None) -> dict[str, int]:
    """Oversample training images for ultralytics: those holding a box of a given source label, or a composite
    of a given overlay and head pose.

    ``source_weight``: ``["LABEL=W", ...]`` (e.g. ``mask_weared_incorrect=4``): every image of the spec's
    ``train`` split with a box whose source VOC label is ``LABEL``
    (:class:`classification.source_labels.SourceIndex`, which needs the raw data) is listed ``W`` times (a whole
    number: the largest weight of its boxes). Composites of a matching photo count too: a face the overlay left
    alone keeps its source label (the crop classifier's ``--source-weight`` leaves composited crops out instead).
    ``overlay_weight``: ``["ACTION[:POSE]=W", ...]`` (e.g. ``sunglasses:turned=3``, :func:`parse_overlay_weights`):
    every image the build drew that overlay on, on a face of that head pose (its provenance file
    ``meta/train.jsonl``; no raw data needed), is listed ``W`` times. An image matching several entries takes the
    largest weight. The list ``out`` holds absolute paths, one per line (ultralytics reads a ``.txt`` train split
    and finds the labels by its images/labels convention), every other image once; ``spec_file``'s ``train`` is
    rewritten to ``out``. Returns ``{"images": unique images, "listed": lines, "weighted": images repeated}``.

    Raises ValueError on a malformed weight or when no training image matches an entry; FileNotFoundError as
    :class:`SourceIndex` does (no provenance file, no raw data root), prefixed with what needs it.
    """
    import yaml

    from classification.source_labels import SourceIndex, parse_source_weights
    from facewear.data.layout import load_spec, read_meta_file, split_paths
    from facewear.io import list_images, write_text

    weights = parse_source_weights(source_weight or [])
    bad = [f"{k}={v:g}" for k, v in weights.items() if v != int(v)]
    if bad:
        raise ValueError(f"--source-weight {', '.join(bad)}: a YOLO image weight is a whole number of listings")
    ow = parse_overlay_weights(overlay_weight or [])
    spec_file = Path(spec_file)
    images, _, meta_file = split_paths(load_spec(spec_file), "train")
    idx = None
    if weights:
        try:
            idx = SourceIndex(spec_file, "train", data_root, missing_ok=True)
        except FileNotFoundError as e:  # e.g. a GPU machine holding only the unpacked dataset, not the raw data
            raise FileNotFoundError(f"--source-weight needs the build's provenance file and the raw data's VOC "
                                    f"files (each training image's source label): {e}. On a machine with only an "
                                    "unpacked dataset, train without --source-weight") from None
    overlays: dict[str, list[dict]] = {}
    if ow:
        try:
            overlays = {m.file: m.overlays for m in read_meta_file(meta_file)}
        except FileNotFoundError as e:
            raise FileNotFoundError(f"--overlay-weight reads the overlays the build drew from its provenance file: "
                                    f"{e}") from None
    lines, weighted = [], 0
    hits = {**dict.fromkeys(weights, 0), **{_overlay_key(a, p): 0 for a, p in ow}}
    for p in list_images(images):
        found = [lab for lab in idx.image_labels(p.name)[1] if lab in weights] if idx else []
        for lab in set(found):
            hits[lab] += 1
        reps = [weights[lab] for lab in found]
        for (action, pose), w in ow.items():
            if any(_overlay_matches(o, action, pose) for o in overlays.get(p.name, [])):
                hits[_overlay_key(action, pose)] += 1
                reps.append(w)
        n = int(max(reps, default=1.0))
        weighted += n > 1
        lines += [str(p.resolve())] * n
    missing = [lab for lab, n in hits.items() if not n]
    if missing:
        raise ValueError(f"--source-weight/--overlay-weight {', '.join(missing)}: no training image of {spec_file} "
                         "matches")
    write_text(out, "\n".join(lines) + "\n")
    raw = yaml.safe_load(spec_file.read_text())
    raw["train"] = str(Path(out).resolve())
    write_text(spec_file, yaml.safe_dump(raw, sort_keys=False))
    LOG.info("--source-weight %s --overlay-weight %s: %d of %d training images listed more than once (%d lines): "
             "%s", source_weight, overlay_weight, weighted, len(set(lines)), len(lines), hits)
    return {"images": len(set(lines)), "listed": len(lines), "weighted": weighted}


def face_augmentations(gray: float = 0.0, lowres: float = 0.0) -> list | None:
    """Albumentations transforms for ultralytics' ``augmentations`` training argument: its own defaults (Blur,
    MedianBlur, ToGray, CLAHE at p 0.01, ``ultralytics.data.augment.Albumentations``) with ``ToGray`` at
    probability ``gray`` (at least ultralytics' own 0.01; grayscale frames: CCTV, infrared, old scans) and
    ``Downscale`` to 1/4..1/2 of the resolution and back at probability ``lowres`` (low-resolution sources).
    Applied after mosaic and the affine step, to the whole training image (a mosaic tile's faces get blurred at
    their mosaic size, not shown large). None when both are 0: ultralytics' defaults as they are.
    Raises ValueError for a probability outside [0, 1]."""
    for what, v in (("gray", gray), ("lowres", lowres)):
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"--{what} {v}: a probability in [0, 1]")
    if not gray and not lowres:
        return None
    import albumentations as A
    import cv2

    return [A.Blur(p=0.01), A.MedianBlur(p=0.01), A.ToGray(p=max(gray, 0.01)), A.CLAHE(p=0.01),
            A.Downscale(scale_range=(0.25, 0.5), p=lowres,
                        interpolation_pair={"downscale": cv2.INTER_AREA, "upscale": cv2.INTER_LINEAR})]


def train(data: str = str(DATASETS_DIR / "facewear4.yaml"), cfg: str = "yolov5n.yaml", init: str = "coco",
          epochs: int = 30, imgsz: int = 320, batch: int = 32, workers: int = 2, device: str = "cpu",
          project: str = str(RUNS_DIR / "yolo"), name: str = "train", resume: bool = False,
          exist_ok: bool = False, cache: str | bool = False, fraction: float = 1.0, seed: int = 0,
          callbacks: dict[str, Any] | None = None, source_weight: list[str] | None = None,
          overlay_weight: list[str] | None = None, gray: float = 0.0,
          lowres: float = 0.0, plots: bool = True, **overrides: Any):
    """Train YOLOv5 on a facewear spec; returns the ultralytics results. ``resume`` continues ``<project>/<name>``.

    ``callbacks``: ultralytics event name -> function(trainer), added to the model before training (e.g.
    ``tools/train_budget.py`` times ``on_train_batch_end`` and stops after a few iterations).
    ``source_weight``: ``["LABEL=W", ...]``: training images with a box of that source label listed W times
    (:func:`weighted_train_list`; the list sits beside the run's data yaml). ``overlay_weight``:
    ``["ACTION[:POSE]=W", ...]``: training images the build drew that overlay on, on a face of that pose, listed W
    times (e.g. ``sunglasses:turned=3``; the same list). ``lr0`` (an override) only acts with
    an explicit ``optimizer``: ultralytics' ``auto`` picks its own learning rate, so a warning says so.
    ``gray`` / ``lowres``: probabilities of grayscale and low-resolution training images
    (:func:`face_augmentations`, passed as ultralytics' ``augmentations``). ``plots=False``: no label, batch or
    result plots (they need polars and a font, which a bare GPU machine may lack). ``time`` (an override, hours):
    ultralytics' wall-clock budget; it re-plans the epochs after each epoch to fit and overrides ``epochs``."""
    from ultralytics import YOLO

    augmentations = face_augmentations(gray, lowres)  # a bad probability stops here, before any file is written
    facewear.env.configure_ultralytics()
    # --device 0,1,2,3: ultralytics runs its own DDP in torch.distributed.run subprocesses; they inherit the
    # offline environment, the font folder and per-rank thread counts from os.environ (facewear.env.prepare_ddp)
    world = facewear.env.prepare_ddp(device)
    if world > 1:
        LOG.info("device %s: ultralytics DDP on %d processes, batch %d in all (%d per GPU), %s threads per rank",
                 device, world, batch, batch // world, os.environ.get("OMP_NUM_THREADS"))
    project = str(Path(project).resolve())  # ultralytics would put a relative project under runs/detect/
    run_dir = Path(project) / name
    if resume:
        last = run_dir / "weights" / "last.pt"
        if not last.is_file():
            raise FileNotFoundError(f"{last}: nothing to resume")
        facewear.env.prepare_ddp(_saved_device(last))  # ultralytics resumes on the saved --device
        return YOLO(str(last)).train(resume=True)
    start = init_checkpoint(cfg, init, run_dir.parent / f"{name}-init.pt")
    spec = resolved_spec_file(data, run_dir.parent / f"{name}.data.yaml")
    if source_weight or overlay_weight:
        weighted_train_list(spec, source_weight, run_dir.parent / f"{name}.train.txt", overlay_weight=overlay_weight)
    if "lr0" in overrides and overrides.get("optimizer", "auto") == "auto":
        LOG.warning("--lr0 %s is ignored by ultralytics' optimizer 'auto' (it picks its own optimizer and learning "
                    "rate); pass --optimizer SGD or AdamW to use it", overrides["lr0"])
    model = YOLO(str(start))
    for event, fn in (callbacks or {}).items():
        model.add_callback(event, fn)
    args = dict(data=str(spec), epochs=epochs, imgsz=imgsz, batch=batch, workers=workers, device=device,
                project=str(project), name=name, exist_ok=exist_ok, cache=cache, fraction=fraction, seed=seed,
                deterministic=False, amp=False, plots=plots,
                # augmentations that matter for faces: scale, blur/low light (HSV value), flips
                scale=0.5, fliplr=0.5, hsv_v=0.5, hsv_s=0.6, mosaic=1.0, close_mosaic=max(1, epochs // 5))
    if augmentations:
        args["augmentations"] = augmentations
    args.update(overrides)
    LOG.info("training %s from %s on %s: %s", cfg, start, data, args)
    return model.train(**args)


def _saved_device(last: Path) -> str | None:
    """The ``--device`` an ultralytics checkpoint was trained with (``None`` when it cannot be read)."""
    import torch

    try:
        ck = torch.load(last, map_location="cpu", weights_only=False)
        return (ck.get("train_args") or {}).get("device")
    except Exception:  # noqa: BLE001 - ultralytics itself reports a broken checkpoint, with its own message
        return None


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=str(DATASETS_DIR / "facewear4.yaml"), help="dataset spec")
    p.add_argument("--cfg", default="yolov5n.yaml", choices=("yolov5n.yaml", "yolov5s.yaml"),
                   help="model size: ultralytics YOLOv5n or YOLOv5s yaml (default yolov5n.yaml)")
    p.add_argument("--init", default="coco", help="'coco' (../shared/weights), 'none', or a state_dict path")
    p.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    p.add_argument("--imgsz", type=int, default=320, help="training image size in pixels (default 320)")
    p.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    p.add_argument("--workers", type=int, default=2, help="data loader processes (default 2)")
    p.add_argument("--device", default="cpu", help="torch device: cpu, 0, or a GPU list 0,1,2,3 for ultralytics' own "
                   "DDP (one process per GPU; --batch is the total over the GPUs) (default cpu)")
    p.add_argument("--project", default=str(RUNS_DIR / "yolo"),
                   help="folder of runs; relative: to the current folder (default runs/yolo in the repository)")
    p.add_argument("--name", default="train", help="run name: the run folder is PROJECT/NAME (default train)")
    p.add_argument("--resume", action="store_true", help="continue <project>/<name>/weights/last.pt")
    p.add_argument("--exist-ok", action="store_true", help="reuse an existing run folder instead of stopping")
    p.add_argument("--cache", default=False, help="ram | disk | False")
    p.add_argument("--fraction", type=float, default=1.0, help="fraction of the train split to use")
    p.add_argument("--lr0", type=float, default=argparse.SUPPRESS,
                   help="initial learning rate (ultralytics' lr0; default 0.01), used with an explicit --optimizer "
                        "only: 'auto' picks its own (AdamW at 0.00125 for four classes and short runs, which undid "
                        "most of a converged model's gain in a 1-epoch fine-tune here; --optimizer AdamW --lr0 0.0001 "
                        "kept it: README, real-data A/B rows Lc and N)")
    p.add_argument("--source-weight", action="append", default=None, metavar="LABEL=W",
                   help="list the training images holding a box whose source dataset label is LABEL (e.g. "
                        "mask_weared_incorrect) W times; repeat")
    p.add_argument("--overlay-weight", action="append", default=None, metavar="ACTION[:POSE]=W",
                   help="list the training images the build drew overlay ACTION (sunglasses, mask, mask+sunglasses, "
                        "eyeglasses) on, on a face of head pose POSE (front, left, right, turned = left or right; "
                        "none: any), W times (e.g. sunglasses:turned=3); reads meta/train.jsonl, no raw data; "
                        "repeat")
    p.add_argument("--warmup-epochs", dest="warmup_epochs", type=float, default=argparse.SUPPRESS,
                   help="ultralytics' warm-up length in epochs (default 3.0; 0: none)")
    p.add_argument("--hsv-s", dest="hsv_s", type=float, default=argparse.SUPPRESS,
                   help="ultralytics' saturation gain range: each image's saturation is scaled by a factor drawn "
                        "from [1-HSV_S, 1+HSV_S] (default here 0.6; 1.0 also makes some images near-grayscale, as "
                        "CCTV and infrared frames are)")
    p.add_argument("--optimizer", default=argparse.SUPPRESS,
                   help="ultralytics' optimizer: SGD, AdamW, ... or auto (the default)")
    p.add_argument("--plots", action=argparse.BooleanOptionalAction, default=True,
                   help="ultralytics' label, batch and result plots in the run folder (default on; --no-plots on a "
                        "machine without polars or fonts)")
    p.add_argument("--time", type=float, default=argparse.SUPPRESS,
                   help="wall-clock budget in hours (ultralytics' time): the epochs are re-planned after each epoch "
                        "to fit, and the schedule with them; overrides --epochs")
    p.add_argument("--close-mosaic", dest="close_mosaic", type=int, default=argparse.SUPPRESS,
                   help="ultralytics' close_mosaic: the last N epochs without mosaic (default here epochs // 5, at "
                        "least 1, so a 1-epoch run has none; 0 keeps mosaic to the end)")
    p.add_argument("--multi-scale", dest="multi_scale", type=float, default=argparse.SUPPRESS,
                   help="ultralytics' multi-scale training: each batch is resized to a random size in "
                        "imgsz*(1-F)..imgsz*(1+F), a multiple of the stride (default 0: off)")
    p.add_argument("--gray", type=float, default=0.0,
                   help="probability of turning a training image grayscale (albumentations ToGray; default 0: "
                        "ultralytics' own 0.01)")
    p.add_argument("--lowres", type=float, default=0.0,
                   help="probability of showing a training image at 1/4..1/2 of its resolution (albumentations "
                        "Downscale, then back to size; default 0)")


def run(**kwargs):
    """``facewear train yolo``: :func:`train` with the CLI's arguments (``lr0``, ``warmup_epochs`` and
    ``optimizer`` and ``hsv_s`` go to ultralytics as overrides when given)."""
    return train(**kwargs)


if __name__ == "__main__":  # pragma: no cover
    ap = argparse.ArgumentParser()
    add_args(ap)
    train(**vars(ap.parse_args()))
    os._exit(0)


def portable_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Copy the ultralytics checkpoint ``src`` to ``dst`` with the machine paths in its ``train_args`` (``data``,
    ``project``, ``save_dir``...) and ``git`` (``root``) made relative to the repository
    (:func:`facewear.io.portable_checkpoint`), so that a released ``.pt``, and the ONNX description ultralytics
    exports from it ("trained on <data>"), name no directory of the machine that trained it. Weights and
    everything else are copied unchanged; ``dst`` is written atomically. Raises FileNotFoundError when ``src`` is
    missing, ValueError when it is not an ultralytics checkpoint (no ``train_args``)."""
    from facewear.io import portable_checkpoint as copy_portable

    try:
        return copy_portable(src, dst, ("train_args", "git"), require="train_args")
    except ValueError as e:
        raise ValueError(f"{src}: not an ultralytics checkpoint (no train_args)") from e
