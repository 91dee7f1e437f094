"""Open a classification dataset from a spec: a directory, a zip, or ``builtin:<name>``.

Each recognised layout is one :class:`Layout` entry of one registry (:func:`register_layout`, :func:`list_layouts`),
tried in registration order: the built-in sets, zip files with an ImageFolder layout inside, CIFAR's python format,
Stanford Dogs, CUB-200-2011 and ImageFolder directories. A new layout is one entry.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
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

__all__ = ["LAYOUTS", "DatasetSource", "Layout", "list_layouts", "open_dataset", "register_layout", "resolve_source"]

SPLITS = ("train", "val")
EVAL_FOLDERS = ("val", "test")


@dataclass(frozen=True)
class Layout:
    """One dataset layout: its name (a :class:`DatasetSource`'s ``format``), how it reads in an error message, how
    to find it at a spec, and how to open a split.

    Attributes:
        name: The format name, e.g. ``'zip'`` or ``'cifar10'``.
        description: What the layout looks like, for error messages.
        find: The dataset's location if ``spec`` (the user's string, ``~`` expanded) has this layout, else None.
        open: ``(location, train)`` → the split as a dataset of ``(PIL RGB image, label)``.
        flip_invariant: Whether horizontal flips keep labels (not for digits).
        default_img_size: The input side its images suit (None: the ImageNet default, 224).
    """

    name: str
    description: str
    find: Callable[[str], str | None]
    open: Callable[[Path, bool], torch.utils.data.Dataset]
    flip_invariant: bool = True
    default_img_size: int | None = None


_LAYOUTS: dict[str, Layout] = {}


def register_layout(layout: Layout) -> Layout:
    """Add ``layout`` to the registry (tried after the ones before it); ValueError if its name is taken."""
    if layout.name in _LAYOUTS:
        raise ValueError(f"dataset layout {layout.name!r} is already registered.")
    _LAYOUTS[layout.name] = layout
    return layout


def list_layouts() -> list[Layout]:
    """Every registered layout, in the order they are tried."""
    return list(_LAYOUTS.values())


def layouts_text() -> str:
    """The registered layouts in one phrase, for error messages."""
    return "; ".join(layout.description for layout in _LAYOUTS.values())


@dataclass(frozen=True)
class DatasetSource:
    """A recognised dataset: its format (a :class:`Layout` name), where it is, whether horizontal flips keep labels,
    and the input side its images suit (None: the ImageNet default, 224)."""

    format: str
    location: str
    flip_invariant: bool = True
    default_img_size: int | None = None

    def open(self, split: str) -> torch.utils.data.Dataset:
        """The ``'train'`` or ``'val'`` split as an untransformed dataset of ``(PIL RGB image, label)``."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}; got {split!r}.")
        return _LAYOUTS[self.format].open(Path(self.location), split == "train")


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


def _directory(spec: str) -> Path | None:
    path = Path(spec)
    return path if path.is_dir() else None


def _builtin(name: str, img_size: int) -> Layout:
    return Layout(
        f"builtin:{name}",
        f"builtin:{name}",
        lambda spec: "" if spec == f"builtin:{name}" else None,
        lambda _, train: BUILTIN_DATASETS[name]("train" if train else "test"),
        flip_invariant=False,
        default_img_size=img_size,
    )


def _cifar(name: str, folder: str) -> Layout:
    def find(spec: str) -> str | None:
        root = _directory(spec)
        if root is None:
            return None
        if root.name == folder:
            return str(root.parent)
        return str(root) if (root / folder).is_dir() else None

    return Layout(name, f"a CIFAR python folder ({folder})", find,
                  lambda root, train: CIFARPython(root, name, train=train), default_img_size=32)  # fmt: skip


def _cub(spec: str) -> str | None:
    root = _directory(spec)
    for candidate in () if root is None else (root, root / "CUB_200_2011"):
        if (candidate / "images.txt").is_file() and (candidate / "train_test_split.txt").is_file():
            return str(candidate)
    return None


def _found(root: Path | None, *children: str) -> str | None:
    return str(root) if root is not None and all((root / child).is_dir() for child in children) else None


register_layout(_builtin("digits", 32))
register_layout(_builtin("cluttered", 40))
register_layout(Layout(
    "zip", "a .zip with train/<class>/<image> and val/ or test/",
    lambda spec: spec if Path(spec).is_file() and zipfile.is_zipfile(spec) else None,
    lambda root, train: ZipImageFolder(root, "train" if train else _zip_eval_split(root)),
))  # fmt: skip
register_layout(_cifar("cifar10", "cifar-10-batches-py"))
register_layout(_cifar("cifar100", "cifar-100-python"))
register_layout(Layout(
    "stanford_dogs", f"Stanford Dogs ({STANFORD_DOGS_LAYOUT})",
    lambda spec: _found(_directory(spec), "Images", "lists"),
    lambda root, train: StanfordDogs(root, "train" if train else "test"),
))  # fmt: skip
register_layout(Layout(
    "cub200", f"CUB-200-2011 ({CUB_LAYOUT})", _cub, lambda root, train: CUB200(root, "train" if train else "test")
))  # fmt: skip
register_layout(Layout(
    "folder", "a folder with train/<class>/<image> and val/<class>/<image> or test/<class>/<image>",
    lambda spec: _found(_directory(spec), "train"),
    lambda root, train: _image_folder(root / ("train" if train else _eval_folder(root))),
))  # fmt: skip
LAYOUTS = layouts_text()


def resolve_source(spec: str | Path) -> DatasetSource:
    """Recognise the dataset at ``spec``; :class:`DataError` naming the path and the layouts if none fits."""
    text = str(spec)
    if text.startswith("builtin:") and text not in _LAYOUTS:
        builtins = [name for name in _LAYOUTS if name.startswith("builtin:")]
        raise DataError(f"unknown built-in dataset {text!r}; choose from {builtins}.")
    root = Path(text).expanduser()
    if not text.startswith("builtin:") and not root.exists():
        raise DataError(f"{root}: no such file or directory; expected {layouts_text()}.")
    for layout in _LAYOUTS.values():
        location = layout.find(text if text.startswith("builtin:") else str(root))
        if location is not None:
            return DatasetSource(layout.name, location, layout.flip_invariant, layout.default_img_size)
    what = "a file but not a zip" if root.is_file() else "unrecognised dataset layout"
    raise DataError(f"{root}: {what}; expected {layouts_text()}.")


def open_dataset(spec: str | Path, split: str) -> torch.utils.data.Dataset:
    """Shortcut for ``resolve_source(spec).open(split)``."""
    return resolve_source(spec).open(split)
