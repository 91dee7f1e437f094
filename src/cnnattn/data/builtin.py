"""Built-in datasets that need no files: scikit-learn's handwritten digits, plain and cluttered.

``digits``: the 1,797 real 8×8 digits of ``sklearn.datasets.load_digits`` (UCI optdigits test set), as
grayscale images. ``cluttered``: each digit scaled and placed at a random position of a larger canvas
strewn with fragments of other digits, a saliency task where a model must find the digit before reading
it (in the spirit of cluttered MNIST). Both are deterministic: the train/test split of the 1,797 digits is
fixed (stratified, 80/20, seed 0) and cluttered images are drawn from their own seed, so every run and
every process sees the same pixels.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from PIL import Image

__all__ = ["BUILTIN_DATASETS", "ArrayImageDataset", "cluttered_digits", "digits"]

DIGITS_TEST_FRACTION = 0.2
SPLIT_SEED = 0


class ArrayImageDataset(torch.utils.data.Dataset):
    """uint8 images (N, H, W) or (N, H, W, 3) and labels (N,) in memory; items are ``(transform(PIL RGB), label)``.
    ``boxes`` (N, 4), where known: the object's (x1, y1, x2, y2) in pixels of the stored image."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        classes: list[str],
        transform=None,
        boxes: np.ndarray | None = None,
    ) -> None:
        self.images, self.labels, self.classes, self.transform, self.boxes = images, labels, classes, transform, boxes
        self.targets = labels.tolist()

    def __len__(self) -> int:
        return len(self.labels)

    def describe(self, index: int) -> str:
        return f"image {index}"

    def __getitem__(self, index: int) -> tuple[object, int]:
        image = Image.fromarray(self.images[index]).convert("RGB")
        return (self.transform(image) if self.transform else image), int(self.labels[index])


@lru_cache(maxsize=1)
def _digit_split() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The 8×8 digits as uint8 (0–255), split once into stratified train/test parts."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = np.round(data.images * (255 / 16)).astype(np.uint8)
    rng = np.random.default_rng(SPLIT_SEED)
    test = np.zeros(len(images), dtype=bool)
    for label in range(10):
        idx = np.flatnonzero(data.target == label)
        test[rng.choice(idx, round(len(idx) * DIGITS_TEST_FRACTION), replace=False)] = True
    return {"train": (images[~test], data.target[~test]), "test": (images[test], data.target[test])}


CLASSES = [str(d) for d in range(10)]


def digits(split: str, transform=None) -> ArrayImageDataset:
    """The real 8×8 handwritten digits (train: 1,438, test: 359), 10 classes."""
    images, labels = _digit_split()[_check_split(split)]
    return ArrayImageDataset(images, labels, CLASSES, transform)


def _check_split(split: str) -> str:
    if split not in ("train", "test"):
        raise ValueError(f"built-in datasets have splits 'train' and 'test'; got {split!r}.")
    return split


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


def _paste_max(canvas: np.ndarray, patch: np.ndarray, top: int, left: int) -> None:
    h, w = patch.shape
    region = canvas[top : top + h, left : left + w]
    np.maximum(region, patch[: region.shape[0], : region.shape[1]], out=region)


def _cluttered_image(
    rng: np.random.Generator,
    digit: np.ndarray,
    pool: np.ndarray,
    canvas_size: int,
    scale: tuple[int, int],
    fragments: int,
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """One canvas: ``fragments`` 2×2–3×3 crops of random pool digits (at digit scale), the digit on top; and the
    digit's box (x1, y1, x2, y2) in canvas pixels."""
    canvas = np.zeros((canvas_size, canvas_size), dtype=np.uint8)
    for _ in range(fragments):
        other = pool[rng.integers(len(pool))]
        side = int(rng.integers(2, 4))
        y, x = rng.integers(0, 9 - side, size=2)
        patch = _resize(other[y : y + side, x : x + side], round(side * rng.integers(*scale) / 8))
        top, left = rng.integers(0, canvas_size - patch.shape[0] + 1, size=2)
        _paste_max(canvas, patch, int(top), int(left))
    size = int(rng.integers(scale[0], scale[1] + 1))
    top, left = rng.integers(0, canvas_size - size + 1, size=2)
    _paste_max(canvas, _resize(digit, size), int(top), int(left))
    return canvas, (int(left), int(top), int(left) + size, int(top) + size)


@lru_cache(maxsize=4)
def _cluttered_arrays(split: str, size: int, canvas_size: int, fragments: int, seed: int):
    images, labels = _digit_split()[split]
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    picks = rng.integers(len(images), size=size)
    scale = (round(canvas_size * 0.45), round(canvas_size * 0.7))
    drawn = [_cluttered_image(rng, images[i], images, canvas_size, scale, fragments) for i in picks]
    canvases, boxes = np.stack([c for c, _ in drawn]), np.array([b for _, b in drawn], dtype=np.int64)
    canvases.setflags(write=False)
    boxes.setflags(write=False)
    return canvases, labels[picks], boxes


def cluttered_digits(
    split: str,
    transform=None,
    *,
    size: int | None = None,
    canvas_size: int = 40,
    fragments: int = 4,
    seed: int = 0,
) -> ArrayImageDataset:
    """Digits at random positions and scales (45–70 % of the canvas side) among clutter fragments; the dataset's
    ``boxes`` (N, 4) hold each digit's square (x1, y1, x2, y2) in canvas pixels.

    Args:
        split: ``'train'`` (digits drawn from the 1,438 training digits) or ``'test'`` (from the other 359).
        size: Number of canvases; default 6,000 (train) / 1,500 (test).
        canvas_size: Side of the square canvas in pixels.
        fragments: Clutter fragments per canvas.
        seed: Seed of the placement; the same arguments always give the same images.
    """
    split = _check_split(split)
    size = size or (6000 if split == "train" else 1500)
    images, labels, boxes = _cluttered_arrays(split, size, canvas_size, fragments, seed)
    return ArrayImageDataset(images, labels, CLASSES, transform, boxes)


BUILTIN_DATASETS = {"digits": digits, "cluttered": cluttered_digits}
