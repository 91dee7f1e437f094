"""Images to look at: model inputs with the picture as shown, true class and object box where known.

``load_samples`` reads the built-in sets' test images (``builtin:cluttered`` with boxes, ``builtin:digits``), a zip
dataset's validation split, or an image file / folder, for ``cnnattn show`` and the localisation scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torchvision import tv_tensors

from .builtin import BUILTIN_DATASETS
from .images import image_files, read_rgb
from .sources import open_dataset
from .transforms import build_transform

__all__ = ["Sample", "display_pixels", "load_samples"]


@dataclass
class Sample:
    """One image: ``tensor`` (3, S, S) normalised model input, ``pixels`` (S, S, 3) uint8 as shown, its name, the
    true class index and the object's box (x1, y1, x2, y2 in shown pixels) where known."""

    tensor: torch.Tensor
    pixels: np.ndarray
    name: str
    label: int | None = None
    box: list[float] | None = None


def display_pixels(tensor: torch.Tensor) -> np.ndarray:
    """A normalised (3, H, W) model input back to the (H, W, 3) uint8 picture it came from."""
    mean, std = torch.tensor(IMAGENET_DEFAULT_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_DEFAULT_STD).view(3, 1, 1)
    return (tensor * std + mean).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()


def _sample(image: Image.Image, size: int, name: str, label: int | None, box: Sequence[float] | None) -> Sample:
    transform = build_transform(size, train=False)
    if box is None:
        tensor = transform(image)
        return Sample(tensor, display_pixels(tensor), name, label)
    boxes = tv_tensors.BoundingBoxes([list(box)], format="XYXY", canvas_size=(image.height, image.width))
    tensor, moved = transform(image, boxes)
    return Sample(tensor, display_pixels(tensor), name, label, moved[0].tolist())


def load_samples(images: str, img_size: int, classes: Sequence[str], max_images: int = 8) -> list[Sample]:
    """Up to ``max_images`` images: ``builtin:cluttered`` / ``builtin:digits`` test images (true classes; boxes
    for cluttered digits), images spread evenly over the validation split of a zip dataset (true classes, e.g.
    the CIFAR-10 zip), or an image file / folder (true class when the parent folder is a class name)."""
    if images.startswith("builtin:"):
        return _builtin_samples(images, img_size, max_images)
    if images.endswith(".zip") and Path(images).is_file():
        return _zip_samples(images, img_size, classes, max_images)
    samples = []
    for path in image_files(images)[:max_images]:
        image = read_rgb(path)
        label = list(classes).index(path.parent.name) if path.parent.name in classes else None
        samples.append(_sample(image, img_size, path.name, label, None))
    return samples


def _builtin_samples(images: str, img_size: int, max_images: int) -> list[Sample]:

    name = images.removeprefix("builtin:")
    if name not in BUILTIN_DATASETS:
        raise ValueError(f"unknown built-in dataset {images!r}; use builtin:cluttered or builtin:digits.")
    data = BUILTIN_DATASETS[name]("test")
    count = min(max_images, len(data))
    boxes = data.boxes if data.boxes is not None else [None] * count
    return [
        _sample(
            Image.fromarray(data.images[i]).convert("RGB"),
            img_size,
            f"{name} {i}",
            int(data.labels[i]),
            None if boxes[i] is None else boxes[i].tolist(),
        )
        for i in range(count)
    ]


def _zip_samples(images: str, img_size: int, classes: Sequence[str], max_images: int) -> list[Sample]:
    """Validation images of a zip dataset at evenly spaced indices (a class-sorted split shows several classes)."""

    data = open_dataset(images, "val")
    picks = np.unique(np.linspace(0, len(data) - 1, min(max_images, len(data))).round().astype(int))
    samples = []
    for index in picks.tolist():
        name = data.classes[data.samples[index][1]]
        label = list(classes).index(name) if name in classes else None
        samples.append(_sample(data.load_image(index), img_size, Path(data.samples[index][0]).name, label, None))
    return samples
