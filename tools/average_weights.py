#!/usr/bin/env python3
"""Average the weights of fine-tuned checkpoints of one model: a uniform "model soup".

    python tools/average_weights.py runs/yolo/a/weights/best.pt runs/yolo/b/weights/best.pt \\
        --out runs/yolo/soup/weights/best.pt

Wortsman et al., "Model soups: averaging weights of multiple fine-tuned models improves accuracy without
increasing inference time" (ICML 2022): checkpoints fine-tuned from the same start lie in one basin, and their
mean often beats each. Every floating-point tensor of the ultralytics checkpoints' ``model`` state dict is
averaged with equal weights (BatchNorm running statistics included); integer tensors (``num_batches_tracked``)
and everything else (``train_args``, metadata) come from the last checkpoint. The checkpoints must share one
architecture (same state-dict keys and shapes). ``--out`` is written atomically and must not be an input.
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from facewear.io import atomic_path, check_not_inputs


def average(paths: list[Path], out: Path) -> Path:
    """Write the uniform average of the ultralytics checkpoints ``paths`` to ``out``; returns ``out``.

    Raises FileNotFoundError for a missing file and ValueError when the checkpoints differ in architecture."""
    import torch

    if len(paths) < 2:
        raise ValueError("give at least two checkpoints to average")
    ckpts = []
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"{p}: checkpoint not found")
        ck = torch.load(p, map_location="cpu", weights_only=False)  # our own training outputs
        if not isinstance(ck, dict) or ck.get("model") is None:
            raise ValueError(f"{p}: not an ultralytics checkpoint with a model")
        ckpts.append(ck)
    sds = [ck["model"].state_dict() for ck in ckpts]
    for p, sd in zip(paths[1:], sds[1:]):
        if sd.keys() != sds[0].keys() or any(sd[k].shape != sds[0][k].shape for k in sd):
            raise ValueError(f"{p}: a different architecture from {paths[0]} (state-dict keys or shapes differ)")
    last = sds[-1]
    avg = {k: (sum(sd[k].float() for sd in sds) / len(sds)).to(v.dtype) if v.is_floating_point() else v
           for k, v in last.items()}
    soup = dict(ckpts[-1])
    soup["model"] = copy.deepcopy(ckpts[-1]["model"])
    soup["model"].load_state_dict(avg)
    soup["averaged_from"] = [str(p) for p in paths]
    with atomic_path(out) as tmp:
        torch.save(soup, tmp)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", type=Path, help="ultralytics .pt files of one architecture")
    ap.add_argument("--out", type=Path, required=True, help="the averaged checkpoint (.pt)")
    a = ap.parse_args(argv)
    check_not_inputs([a.out], a.checkpoints, "--out")
    print(average(a.checkpoints, a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
