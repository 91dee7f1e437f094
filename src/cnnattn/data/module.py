"""LightningDataModules: ``ClassificationData`` over any recognised dataset (see :mod:`.sources`) and
``DetectionData`` over any detection layout (see :mod:`.detection`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.accelerators import CUDAAccelerator
from torch.utils.data import DataLoader

from .detection import DetectionImages, DetectionSet, collate_detection, detection_transform, open_detection
from .loading import EpochShardSampler, LoadedView, NamedSubset, OnBadImage, collate_skipping_bad
from .sources import resolve_source
from .transforms import Augment, build_transform

__all__ = ["DEFAULT_IMG_SIZE", "ClassificationData", "DetectionData", "sharded_loader"]

DEFAULT_IMG_SIZE = 224
SUBSET_SEED = 0  # train_subset picks the same images whatever the run's seed


def subset_indices(length: int, size: int) -> list[int]:
    """The ``size`` samples ``train_subset`` keeps out of ``length``, in order: the same for every seed."""
    order = torch.randperm(length, generator=torch.Generator().manual_seed(SUBSET_SEED))
    return sorted(order[:size].tolist())


def sharded_loader(module: pl.LightningDataModule, view: LoadedView, train: bool, collate: Callable) -> DataLoader:
    """A loader of ``view`` for this process: its shard of each epoch (shuffled from the seed when training)."""
    trainer = module.trainer
    world, rank = (trainer.world_size, trainer.global_rank) if trainer else (1, 0)
    sampler = EpochShardSampler(view, world, rank, shuffle=train, seed=module.seed, drop_last=train)
    return DataLoader(
        view,
        module.batch_size,
        sampler=sampler,
        num_workers=module.num_workers,
        collate_fn=collate,
        drop_last=train,
        persistent_workers=module.num_workers > 0,
        pin_memory=bool(trainer and isinstance(trainer.accelerator, CUDAAccelerator)),
    )


class _SplitData(pl.LightningDataModule):
    """Splits opened once (``train_subset`` applied to the train split), class names, and the two loaders.

    Subclasses implement ``_open(name)``, ``_subset(dataset, indices)`` and ``_loader(name)``."""

    def split(self, name: str) -> Any:
        """The ``'train'`` or ``'val'`` split, untransformed (opened once)."""
        if name not in self._splits:
            dataset = self._open(name)
            if name == "train" and self.train_subset:
                dataset = self._subset(dataset, subset_indices(len(dataset), self.train_subset))
            self._splits[name] = dataset
        return self._splits[name]

    @property
    def classes(self) -> list[str]:
        return list(self.split("train").classes)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")


class ClassificationData(_SplitData):
    """Train and validation loaders, sharded over processes, deterministic from ``seed``.

    Args:
        data: A path or ``builtin:<name>`` (see :func:`cnnattn.data.resolve_source`).
        img_size: Side of the square model input in pixels; None: the dataset's default (224 for photos).
        batch_size: Per process (the global batch is ``batch_size × world size``).
        num_workers: Loader worker processes per process.
        augment, hflip: Train augmentation (see :func:`build_transform`); flips are off for sets whose
            labels flips would change (digits) unless ``hflip`` is given.
        seed: Seed of shuffling and augmentation.
        on_bad_image: ``'skip'`` unreadable images with a warning, or ``'error'``.
        train_subset: Use only N samples of the train split, the same N for every seed.
    """

    def __init__(
        self,
        data: str,
        img_size: int | None,
        batch_size: int,
        num_workers: int = 2,
        *,
        augment: Augment = "auto",
        hflip: float | None = None,
        seed: int = 0,
        on_bad_image: OnBadImage = "skip",
        train_subset: int | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1; got {batch_size}.")
        self.source = resolve_source(data)
        self.img_size = img_size or self.source.default_img_size or DEFAULT_IMG_SIZE
        self.batch_size, self.num_workers = batch_size, num_workers
        self.augment, self.seed, self.on_bad_image, self.train_subset = augment, seed, on_bad_image, train_subset
        self.hflip = (0.5 if self.source.flip_invariant else 0.0) if hflip is None else hflip
        self._splits: dict[str, torch.utils.data.Dataset] = {}

    def _open(self, name: str) -> torch.utils.data.Dataset:
        return self.source.open(name)

    def _subset(self, dataset: torch.utils.data.Dataset, indices: list[int]) -> torch.utils.data.Dataset:
        return NamedSubset(dataset, indices)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def _loader(self, name: str) -> DataLoader:
        train = name == "train"
        transform = build_transform(self.img_size, train, augment=self.augment, hflip=self.hflip)
        view = LoadedView(self.split(name), transform, self.seed, self.on_bad_image)
        return sharded_loader(self, view, train, collate_skipping_bad)


class DetectionData(_SplitData):
    """Train and validation loaders of a detection dataset (see :mod:`.detection`), sharded and seeded like
    :class:`ClassificationData`. Batches are ``(list of images, list of targets)``; the detector resizes.

    Args:
        data: A COCO, Pascal VOC or flat VOC folder.
        batch_size, num_workers, seed, on_bad_image, train_subset: As for :class:`ClassificationData`.
        hflip: Probability of a horizontal flip (image and boxes) in training.
        val_fraction: Validation share of a flat VOC set without split files (a deterministic hash split).
    """

    def __init__(
        self,
        data: str,
        batch_size: int,
        num_workers: int = 2,
        *,
        hflip: float = 0.5,
        seed: int = 0,
        on_bad_image: OnBadImage = "skip",
        train_subset: int | None = None,
        val_fraction: float = 0.2,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1; got {batch_size}.")
        self.data, self.batch_size, self.num_workers, self.hflip, self.seed = data, batch_size, num_workers, hflip, seed
        self.on_bad_image, self.train_subset, self.val_fraction = on_bad_image, train_subset, val_fraction
        self._splits: dict[str, DetectionSet] = {}

    def _open(self, name: str) -> DetectionSet:
        return open_detection(self.data, name, val_fraction=self.val_fraction)

    def _subset(self, dataset: DetectionSet, indices: list[int]) -> DetectionSet:
        dataset.records = [dataset.records[i] for i in indices]
        return dataset

    @property
    def num_classes(self) -> int:
        """Classes plus the background, as torchvision's detectors count them."""
        return self.split("train").num_classes

    def _loader(self, name: str) -> DataLoader:
        train = name == "train"
        images = DetectionImages(self.split(name))
        view = LoadedView(images, detection_transform(train, self.hflip), self.seed, self.on_bad_image, joint=True)
        return sharded_loader(self, view, train, collate_detection)
