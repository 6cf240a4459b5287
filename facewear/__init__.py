"""facewear: four-class face detection (face, mask, sunglasses, mask_sunglasses).

Importing the package first sets up the offline environment (see
:mod:`facewear.env`) so that ultralytics, albumentations and FiftyOne never
reach the network and find a local font.
"""
from . import env as _env  # noqa: F401  (must run before any third-party import)
from .constants import CLASS_IDS, CLASS_NAMES

__version__ = "0.1.0"
__all__ = ["CLASS_NAMES", "CLASS_IDS", "__version__"]
