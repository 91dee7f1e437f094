"""Classification data: recognised layouts, built-in sets, transforms and the Lightning data module."""

from .builtin import cluttered_digits, digits
from .detection import DetectionRecord, DetectionSet, open_detection
from .errors import DataError
from .fine_grained import CUB200, StanfordDogs
from .loading import EpochShardSampler, LoadedView, collate_skipping_bad
from .module import ClassificationData, DetectionData
from .sources import LAYOUTS, DatasetSource, open_dataset, resolve_source
from .transforms import build_transform
from .zip_folder import IMG_EXTENSIONS, ZipImageFolder

__all__ = [
    "CUB200",
    "IMG_EXTENSIONS",
    "LAYOUTS",
    "ClassificationData",
    "DataError",
    "DatasetSource",
    "DetectionData",
    "DetectionRecord",
    "DetectionSet",
    "EpochShardSampler",
    "LoadedView",
    "StanfordDogs",
    "ZipImageFolder",
    "build_transform",
    "cluttered_digits",
    "collate_skipping_bad",
    "digits",
    "open_dataset",
    "open_detection",
    "resolve_source",
]
