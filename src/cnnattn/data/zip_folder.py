"""ImageFolder layout inside a zip archive, read in place (no extraction of tens of thousands of files)."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image

from .errors import DataError
from .images import IMG_EXTENSIONS, read_rgb

__all__ = ["ZipImageFolder"]


class ZipImageFolder(torch.utils.data.Dataset):
    """``<root>/<split>/<class>/<image>`` inside ``path``, like ``torchvision.datasets.ImageFolder``.

    Items are ``(image, class_index)`` with the image passed through ``transform`` (a PIL RGB image when
    None). Classes are the sorted folder names. Each worker process opens its own handle to the zip.

    Args:
        path: The ``.zip`` file.
        split: Top-level folder, e.g. ``'train'`` or ``'test'``.
        transform: Applied to each PIL image.
    """

    def __init__(self, path: str | Path, split: str = "train", transform: Callable | None = None) -> None:
        self.path, self.split, self.transform = Path(path), split, transform
        if not zipfile.is_zipfile(self.path):
            raise FileNotFoundError(
                f"{self.path} is not a zip file; expected a zip with "
                f"{split}/<class>/<image> entries (ImageFolder layout)."
            )
        with zipfile.ZipFile(self.path) as archive:
            every = archive.namelist()
        names = [n for n in every if n.lower().endswith(IMG_EXTENSIONS)]
        parts = [n.split("/") for n in names]
        entries = sorted(n for n, p in zip(names, parts, strict=True) if len(p) == 3 and p[0] == split)
        if not entries:
            splits = sorted({p[0] for p in parts if len(p) == 3})
            raise FileNotFoundError(f"{self.path}: no images under {split}/<class>/; splits found: {splits}.")
        self.classes: list[str] = sorted({n.split("/")[1] for n in entries})
        folders = {p[1] for p in (n.split("/") for n in every) if len(p) >= 3 and p[0] == split and p[1]}
        if empty := sorted(folders - set(self.classes)):
            raise DataError(
                f"{self.path}: class folder(s) {', '.join(empty)} under {split}/ hold no images "
                f"({', '.join(IMG_EXTENSIONS)}); add images or remove the folder(s)."
            )
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples: list[tuple[str, int]] = [(n, self.class_to_idx[n.split("/")[1]]) for n in entries]
        self.targets = [t for _, t in self.samples]
        self._archive: zipfile.ZipFile | None = None
        self._pid = -1

    def __len__(self) -> int:
        return len(self.samples)

    def _open(self) -> zipfile.ZipFile:
        if self._archive is None or self._pid != os.getpid():
            self._archive, self._pid = zipfile.ZipFile(self.path), os.getpid()
        return self._archive

    def describe(self, index: int) -> str:
        """Where sample ``index`` lives, for messages: ``<zip>:<entry>``."""
        return f"{self.path}:{self.samples[index][0]}"

    def load_image(self, index: int) -> Image.Image:
        """The RGB image of sample ``index``."""
        with self._open().open(self.samples[index][0]) as f:
            return read_rgb(io.BytesIO(f.read()))

    def __getitem__(self, index: int) -> tuple[object, int]:
        image = self.load_image(index)
        return (self.transform(image) if self.transform else image), self.samples[index][1]

    def subset_indices(self, per_class: int, seed: int = 0) -> Sequence[int]:
        """A class-balanced random subset: ``per_class`` indices of each class (sorted)."""
        generator = torch.Generator().manual_seed(seed)
        targets = torch.tensor(self.targets)
        picks = [
            idx[torch.randperm(len(idx), generator=generator)[:per_class]]
            for idx in (torch.nonzero(targets == c).flatten() for c in range(len(self.classes)))
        ]
        return sorted(torch.cat(picks).tolist())

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_archive"] = None  # zip handles do not cross process boundaries
        return state
