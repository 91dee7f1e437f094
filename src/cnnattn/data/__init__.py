"""Classification and detection data: recognised layouts, built-in sets, image reading, transforms and the
Lightning data modules.

Names are imported on first use, so the light parts (image reading, layouts) load without Lightning.
"""

from __future__ import annotations

from ..utils import lazy_exports

_EXPORTS = {
    "cluttered_digits": ".builtin",
    "digits": ".builtin",
    "DetectionRecord": ".detection",
    "DetectionSet": ".detection",
    "open_detection": ".detection",
    "DataError": ".errors",
    "IMG_EXTENSIONS": ".images",
    "image_files": ".images",
    "read_rgb": ".images",
    "Sample": ".samples",
    "display_pixels": ".samples",
    "load_samples": ".samples",
    "CUB200": ".fine_grained",
    "StanfordDogs": ".fine_grained",
    "EpochShardSampler": ".loading",
    "LoadedView": ".loading",
    "SkippedImageWarning": ".loading",
    "collate_skipping_bad": ".loading",
    "ClassificationData": ".module",
    "DetectionData": ".module",
    "LAYOUTS": ".sources",
    "Layout": ".sources",
    "list_layouts": ".sources",
    "register_layout": ".sources",
    "DatasetSource": ".sources",
    "open_dataset": ".sources",
    "resolve_source": ".sources",
    "build_transform": ".transforms",
    "ZipImageFolder": ".zip_folder",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
