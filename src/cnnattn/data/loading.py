"""Reproducible, fault-tolerant loading: seeded per-sample augmentation, sharded epochs, bad-image skipping.

Every random transform of sample ``i`` in epoch ``e`` runs under its own RNG seeded from
``(seed, e, i)``, so the pixels a model sees do not depend on worker count, process count or on where a
run was resumed; :class:`EpochShardSampler` yields ``(epoch, index)`` keys for that. An image that cannot
be read is skipped with a warning naming it (``on_bad_image='skip'``) or raises :class:`DataError`.
"""

from __future__ import annotations

import struct
import warnings
import zipfile
from collections.abc import Callable, Iterator
from typing import Literal

import torch
from torch.utils.data import DistributedSampler, default_collate

from .errors import DataError

__all__ = [
    "EpochShardSampler",
    "LoadedView",
    "NamedSubset",
    "SkippedImageWarning",
    "collate_skipping_bad",
    "describe_sample",
]

OnBadImage = Literal["skip", "error"]
READ_ERRORS = (OSError, ValueError, SyntaxError, EOFError, zipfile.BadZipFile, struct.error)


class SkippedImageWarning(UserWarning):
    """An unreadable image was skipped. Shown for every file (Python's default shows a warning once per line of
    code, which would name only the first bad file and skip the rest in silence)."""


warnings.simplefilter("always", SkippedImageWarning)


def describe_sample(dataset: torch.utils.data.Dataset, index: int) -> str:
    """A human-readable location of sample ``index`` (a file path where the dataset has one)."""
    if hasattr(dataset, "describe"):
        return dataset.describe(index)
    samples = getattr(dataset, "samples", None) or getattr(dataset, "imgs", None)
    return str(samples[index][0]) if samples else f"item {index}"


class LoadedView(torch.utils.data.Dataset):
    """``(transform(image), label)`` of an untransformed dataset, with seeded transforms and bad-image handling.

    Args:
        dataset: Items ``(PIL image, label)``.
        transform: Applied to each image.
        seed: Base seed of the augmentation.
        on_bad_image: ``'skip'`` (warn, return None; use :func:`collate_skipping_bad`) or ``'error'``.
        joint: The transform takes and returns ``(image, label)`` (detection targets move with the image).

    Keys are an index or an ``(epoch, index)`` pair.
    """

    def __init__(
        self, dataset, transform: Callable, seed: int = 0, on_bad_image: OnBadImage = "skip", *, joint: bool = False
    ) -> None:
        if on_bad_image not in ("skip", "error"):
            raise ValueError(f"on_bad_image must be 'skip' or 'error'; got {on_bad_image!r}.")
        self.dataset, self.transform, self.seed, self.on_bad_image = dataset, transform, seed, on_bad_image
        self.joint = joint

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int] | None:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        try:
            image, label = self.dataset[index]
        except READ_ERRORS as err:
            where = describe_sample(self.dataset, index)
            if self.on_bad_image == "error":
                raise DataError(f"cannot read {where}: {err} (use on_bad_image='skip' to skip such files).") from None
            warnings.warn(f"skipping unreadable image {where}: {err}", SkippedImageWarning, stacklevel=2)
            return None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(hash((self.seed, epoch, index)) & 0x7FFF_FFFF_FFFF_FFFF)
            return self.transform(image, label) if self.joint else (self.transform(image), label)


def collate_skipping_bad(batch: list) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``default_collate`` of the items that loaded; None when none did."""
    good = [item for item in batch if item is not None]
    return default_collate(good) if good else None


class EpochShardSampler(DistributedSampler):
    """``DistributedSampler`` that yields ``(epoch, index)`` keys; its shuffle depends only on seed and epoch.

    :meth:`resume_at` makes the next pass over a given epoch start after the samples already trained (a run
    resumed from a checkpoint written in the middle of that epoch); later passes are whole again.
    """

    _resume: tuple[int, int] | None = None

    def resume_at(self, epoch: int, samples_done: int) -> None:
        """Skip the first ``samples_done`` samples of this process's shard the next time ``epoch`` is drawn."""
        self._resume = (epoch, samples_done)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = [int(i) for i in super().__iter__()]
        if self._resume is not None and self._resume[0] == self.epoch:
            indices = indices[self._resume[1] :]
            self._resume = None
        return ((self.epoch, i) for i in indices)


class NamedSubset(torch.utils.data.Subset):
    """A ``Subset`` that keeps the parent's ``classes`` and names its samples like the parent."""

    def __init__(self, dataset: torch.utils.data.Dataset, indices: list[int]) -> None:
        super().__init__(dataset, indices)
        self.classes = dataset.classes

    def describe(self, index: int) -> str:
        return describe_sample(self.dataset, self.indices[index])
