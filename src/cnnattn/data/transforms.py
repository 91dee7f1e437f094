"""Standard train and eval transforms (torchvision v2), sized by ``img_size``.

Train: ``'crop'`` (resize, pad by 1/8 and random crop; the CIFAR recipe, used below 96 px) or ``'rrc'``
(random-resized crop, the ImageNet recipe, from 96 px), optional horizontal flip, then tensor and
ImageNet normalisation. Eval: resize the short side to ``⌊img_size / crop_pct⌋`` and centre crop (from
96 px; below it a plain resize, as small sets are stored at their size), bilinear: timm's eval transform of
:func:`eval_data_config`, which ``cnnattn export --format hf`` writes into the model's ``pretrained_cfg``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torchvision.transforms import v2

__all__ = ["build_transform", "eval_data_config"]

Augment = Literal["auto", "crop", "rrc", "none"]
SMALL_IMAGE = 96


def _to_tensor() -> list[v2.Transform]:
    return [
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD),
    ]


def build_transform(
    img_size: int, train: bool, *, augment: Augment = "auto", hflip: float = 0.5, crop_pct: float = 0.875
) -> v2.Compose:
    """PIL image → normalised float tensor (3, img_size, img_size)."""
    if img_size < 8:
        raise ValueError(f"img_size must be at least 8 pixels; got {img_size}.")
    if augment not in ("auto", "crop", "rrc", "none"):
        raise ValueError(f"augment must be 'auto', 'crop', 'rrc' or 'none'; got {augment!r}.")
    small = img_size < SMALL_IMAGE
    if not train or augment == "none":
        resize = (
            [v2.Resize((img_size, img_size), antialias=True)]
            if small
            else [v2.Resize(math.floor(img_size / crop_pct), antialias=True), v2.CenterCrop(img_size)]
        )
        return v2.Compose([*resize, *_to_tensor()])
    if augment == "rrc" or (augment == "auto" and not small):
        geometric = [v2.RandomResizedCrop(img_size, antialias=True)]
    else:
        geometric = [v2.Resize((img_size, img_size), antialias=True), v2.RandomCrop(img_size, padding=img_size // 8)]
    flip = [v2.RandomHorizontalFlip(hflip)] if hflip > 0 else []
    return v2.Compose([*geometric, *flip, *_to_tensor()])


def eval_data_config(img_size: int, crop_pct: float = 0.875) -> dict[str, Any]:
    """The eval transform of :func:`build_transform` in timm's data-config terms (``timm.data.create_transform``
    builds the same resize, crop and normalisation from it)."""
    small = img_size < SMALL_IMAGE
    return {
        "input_size": (3, img_size, img_size),
        "interpolation": "bilinear",
        "crop_pct": 1.0 if small else crop_pct,
        "crop_mode": "squash" if small else "center",
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
    }
