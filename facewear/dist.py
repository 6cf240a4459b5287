"""Distributed training helpers (``torchrun``), after torchvision's ``references/detection/utils.py``.

``torchrun --nproc_per_node N -m facewear.cli train frcnn ...`` (or ``.venv/bin/torchrun`` with the
``facewear`` script) sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`init_distributed_mode` reads them and joins the process group: NCCL when CUDA is there, gloo on CPU.
Without those variables nothing happens and training runs in one process as before.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

LOG = logging.getLogger("facewear.dist")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    device: str = "cpu"

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """True on the process that writes checkpoints and logs (rank 0)."""
        return self.rank == 0


def env_world() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from torchrun's variables (``(0, 1, 0)`` without them)."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    return 0, 1, 0


def init_distributed_mode(backend: str | None = None) -> DistInfo:
    """Join the process group described by torchrun's environment; one process: a plain :class:`DistInfo`.

    ``backend``: ``None`` picks NCCL when CUDA is available, else gloo (``FACEWEAR_DIST_BACKEND`` overrides).
    Each rank uses ``cuda:LOCAL_RANK`` when CUDA is there, else the CPU."""
    import torch
    import torch.distributed as dist

    rank, world, local = env_world()
    cuda = torch.cuda.is_available()
    if world <= 1:
        return DistInfo(device="cpu")
    if dist.is_initialized():
        be = dist.get_backend()
    else:
        be = backend or os.environ.get("FACEWEAR_DIST_BACKEND") or ("nccl" if cuda else "gloo")
        if cuda:
            torch.cuda.set_device(local)
        dist.init_process_group(be, init_method="env://", world_size=world, rank=rank)
        dist.barrier()
    info = DistInfo(rank, world, local, be, f"cuda:{local}" if cuda and be == "nccl" else "cpu")
    if not info.main:  # torchvision's setup_for_distributed: only rank 0 logs (warnings still show)
        logging.getLogger("facewear").setLevel(logging.WARNING)
    LOG.info("distributed: rank %d of %d (local %d), backend %s, device %s", rank, world, local, be, info.device)
    return info


def barrier(info: DistInfo) -> None:
    if info.distributed:
        import torch.distributed as dist

        dist.barrier()


def all_gather_object(info: DistInfo, obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` in one process)."""
    if not info.distributed:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(info: DistInfo, obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not info.distributed:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def mean_over_ranks(info: DistInfo, value: float, weight: float = 1.0) -> float:
    """The ``weight``-weighted mean of ``value`` over the ranks (the value itself in one process)."""
    if not info.distributed:
        return value
    import torch
    import torch.distributed as dist

    t = torch.tensor([value * weight, weight], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t[0] / t[1]) if t[1] else 0.0


def cleanup(info: DistInfo) -> None:
    if info.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def ddp_thread_env(world_size: int, cores: int | None = None) -> dict[str, str]:
    """Thread settings for ``world_size`` processes sharing this machine's cores: ``OMP_NUM_THREADS`` and
    ``MKL_NUM_THREADS`` = cores // world_size (at least 1), unless the user set them."""
    n = max(1, (cores or os.cpu_count() or 1) // max(1, world_size))
    return {k: os.environ.get(k, str(n)) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}


__all__ = ["DistInfo", "all_gather_object", "barrier", "broadcast_object", "cleanup", "ddp_thread_env",
           "env_world", "init_distributed_mode", "mean_over_ranks"]
