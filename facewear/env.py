"""Offline-by-construction environment set-up.

Imported by ``facewear/__init__.py`` before anything else, so that
ultralytics, albumentations and FiftyOne see these settings before their
own import: no update checks, no telemetry, no font download, no pip
auto-install. Users may still override each variable in their shell.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

_DEFAULTS = {
    # ultralytics: never go online, never pip-install, no analytics
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "false",
    "YOLO_VERBOSE": os.environ.get("YOLO_VERBOSE", "false"),
    # albumentations: no version check over the network
    "NO_ALBUMENTATIONS_UPDATE": "1",
    # FiftyOne: no usage tracking, no migration checks online
    "FIFTYONE_DO_NOT_TRACK": "true",
    "FIFTYONE_APP_ADDRESS": "127.0.0.1",
    "FIFTYONE_DATABASE_VALIDATION": "false",  # the bundled (old) MongoDB is fine offline
    # HuggingFace hub (pulled in by some deps)
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    # matplotlib must never try a display
    "MPLBACKEND": os.environ.get("MPLBACKEND", "Agg"),
}

FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "facewear"


def _local_ttf() -> Path | None:
    """A TTF that is already on disk: matplotlib's DejaVuSans, else a system font."""
    try:
        import matplotlib

        cand = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        if cand.is_file():
            return cand
    except Exception:  # noqa: BLE001  # pragma: no cover - matplotlib missing or broken
        pass
    for cand in Path("/usr/share/fonts").rglob("*.ttf") if Path("/usr/share/fonts").is_dir() else []:
        return cand
    return None


def ensure_ultralytics_config_dir() -> Path:
    """Create ``YOLO_CONFIG_DIR`` holding the two fonts ultralytics would download.

    Ultralytics looks for its settings and fonts in ``$YOLO_CONFIG_DIR/Ultralytics``
    (``USER_CONFIG_DIR``), not in ``$YOLO_CONFIG_DIR`` itself, so the fonts go
    there; otherwise ``check_font`` does a HEAD request to GitHub at every training.
    """
    cfg = Path(os.environ.get("YOLO_CONFIG_DIR") or (_cache_root() / "ultralytics"))
    font_dir = cfg / "Ultralytics"
    font_dir.mkdir(parents=True, exist_ok=True)
    src = _local_ttf()
    for name in FONT_NAMES:
        dst = font_dir / name
        if not dst.exists() and src is not None:
            tmp = dst.with_suffix(".tmp")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
    os.environ["YOLO_CONFIG_DIR"] = str(cfg)
    return cfg


def setup_offline() -> None:
    """Set every offline variable (without overriding the user's) and the font dir."""
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)
    ensure_ultralytics_config_dir()


def configure_ultralytics(threads: int | None = None) -> None:
    """After importing ultralytics: no sync/analytics, and use every core on CPU.

    Ultralytics runs torch on one thread on a 2-core CPU; training is ~1.8x
    faster with both cores.
    """
    from ultralytics.utils import SETTINGS, torch_utils

    try:
        SETTINGS.update({"sync": False, "hub": False} if "hub" in SETTINGS else {"sync": False})
    except Exception:  # noqa: BLE001  # pragma: no cover - settings schema changed
        pass
    n = threads or os.cpu_count() or 1
    torch_utils.NUM_THREADS = n
    import torch

    torch.set_num_threads(n)


def ddp_world(device: str | int | list | tuple | None) -> int:
    """How many processes ultralytics launches for ``device``: the number of GPUs in ``0,1,2,3`` / ``[0, 1]``;
    1 for one device, ``cpu`` or ``mps``."""
    if device is None:
        return 1
    if isinstance(device, (list, tuple)):
        return max(1, len(device))
    s = str(device).strip().strip("[]").lower()
    if s in ("", "cpu", "mps"):
        return 1
    return max(1, len([d for d in s.split(",") if d.strip()]))


def prepare_ddp(device: str | int | list | tuple | None) -> int:
    """Before ultralytics trains on ``device``: when that means several processes (its own DDP, a
    ``torch.distributed.run`` subprocess per GPU that never imports facewear), make sure what we set here reaches
    every rank through the environment it inherits: the offline variables and ``YOLO_CONFIG_DIR`` with the fonts
    (set again, idempotent), and thread counts, ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` = cores // ranks (torchrun
    would otherwise force 1), unless the user set them. Returns the number of processes."""
    world = ddp_world(device)
    if world > 1:
        setup_offline()
        n = max(1, (os.cpu_count() or 1) // world)
        for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(key, str(n))
    return world


setup_offline()
