"""Open a classification dataset from a spec: a directory, a zip, or ``builtin:<name>``.

Recognised layouts (checked in this order):

- ``builtin:digits``, ``builtin:cluttered``: scikit-learn's digits, plain or cluttered (no files).
- ``<file>.zip``: ImageFolder layout inside the zip, ``train/<class>/<image>`` and ``val/`` or ``test/``.
- CIFAR python format: a directory that is or contains ``cifar-10-batches-py`` or ``cifar-100-python``.
- Stanford Dogs: ``Images/`` and ``lists/train_list.mat`` (official split).
- CUB-200-2011: ``images.txt`` and ``train_test_split.txt`` (in the directory or its ``CUB_200_2011/``).
- ImageFolder directories: ``train/<class>/<image>`` and ``val/<class>/...`` or ``test/<class>/...``.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision.datasets import ImageFolder

from .builtin import BUILTIN_DATASETS
from .cifar import CIFARPython
from .errors import DataError
from .fine_grained import CUB200, CUB_LAYOUT, STANFORD_DOGS_LAYOUT, StanfordDogs
from .images import read_rgb
from .zip_folder import ZipImageFolder

__all__ = ["LAYOUTS", "DatasetSource", "open_dataset", "resolve_source"]

SPLITS = ("train", "val")
EVAL_FOLDERS = ("val", "test")
LAYOUTS = (
    "builtin:digits or builtin:cluttered; a .zip with train/<class>/<image> and val/ or test/; "
    "a CIFAR python folder (cifar-10-batches-py or cifar-100-python); Stanford Dogs ("
    f"{STANFORD_DOGS_LAYOUT}); CUB-200-2011 ({CUB_LAYOUT}); or a folder with train/<class>/<image> "
    "and val/<class>/<image> or test/<class>/<image>"
)


@dataclass(frozen=True)
class DatasetSource:
    """A recognised dataset: its format, where it is, whether horizontal flips keep labels, and the input side
    its images suit (None: the ImageNet default, 224)."""

    format: str
    location: str
    flip_invariant: bool = True
    default_img_size: int | None = None

    def open(self, split: str) -> torch.utils.data.Dataset:
        """The ``'train'`` or ``'val'`` split as an untransformed dataset of ``(PIL RGB image, label)``."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}; got {split!r}.")
        train = split == "train"
        root = Path(self.location)
        if self.format.startswith("builtin:"):
            return BUILTIN_DATASETS[self.format.removeprefix("builtin:")]("train" if train else "test")
        if self.format == "zip":
            return ZipImageFolder(root, "train" if train else _zip_eval_split(root))
        if self.format in ("cifar10", "cifar100"):
            return CIFARPython(root, self.format, train=train)
        if self.format == "stanford_dogs":
            return StanfordDogs(root, "train" if train else "test")
        if self.format == "cub200":
            return CUB200(root, "train" if train else "test")
        return _image_folder(root / ("train" if train else _eval_folder(root)))


def _zip_eval_split(path: Path) -> str:
    with zipfile.ZipFile(path) as archive:
        tops = {n.split("/")[0] for n in archive.namelist()}
    for name in EVAL_FOLDERS:
        if name in tops:
            return name
    raise DataError(f"{path}: no val/ or test/ folder in the zip (found {sorted(tops)}); expected {LAYOUTS}.")


def _eval_folder(root: Path) -> str:
    for name in EVAL_FOLDERS:
        if (root / name).is_dir():
            return name
    raise DataError(f"{root}: no val/ or test/ folder; expected train/<class>/<image> and val/<class>/<image>.")


def _image_folder(root: Path) -> ImageFolder:
    try:
        return ImageFolder(str(root), loader=read_rgb)
    except (FileNotFoundError, RuntimeError) as err:
        raise DataError(f"{root}: {err} (expected <class>/<image> folders).") from None


def _cifar(root: Path) -> DatasetSource | None:
    for folder, fmt in (("cifar-10-batches-py", "cifar10"), ("cifar-100-python", "cifar100")):
        if root.name == folder:
            return DatasetSource(fmt, str(root.parent), default_img_size=32)
        if (root / folder).is_dir():
            return DatasetSource(fmt, str(root), default_img_size=32)
    return None


def resolve_source(spec: str | Path) -> DatasetSource:
    """Recognise the dataset at ``spec``; :class:`DataError` naming the path and the layouts if none fits."""
    text = str(spec)
    if text.startswith("builtin:"):
        name = text.removeprefix("builtin:")
        if name not in BUILTIN_DATASETS:
            raise DataError(
                f"unknown built-in dataset {text!r}; choose from {[f'builtin:{n}' for n in BUILTIN_DATASETS]}."
            )
        return DatasetSource(text, "", flip_invariant=False, default_img_size=32 if name == "digits" else 40)
    root = Path(text).expanduser()
    if not root.exists():
        raise DataError(f"{root}: no such file or directory; expected {LAYOUTS}.")
    if root.is_file():
        if not zipfile.is_zipfile(root):
            raise DataError(f"{root}: a file but not a zip; expected {LAYOUTS}.")
        return DatasetSource("zip", str(root))
    if cifar := _cifar(root):
        return cifar
    if (root / "Images").is_dir() and (root / "lists").is_dir():
        return DatasetSource("stanford_dogs", str(root))
    for candidate in (root, root / "CUB_200_2011"):
        if (candidate / "images.txt").is_file() and (candidate / "train_test_split.txt").is_file():
            return DatasetSource("cub200", str(candidate))
    if (root / "train").is_dir():
        return DatasetSource("folder", str(root))
    raise DataError(f"{root}: unrecognised dataset layout; expected {LAYOUTS}.")


def open_dataset(spec: str | Path, split: str) -> torch.utils.data.Dataset:
    """Shortcut for ``resolve_source(spec).open(split)``."""
    return resolve_source(spec).open(split)
