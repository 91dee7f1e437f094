"""Localisation scores of maps against known object boxes: the pointing game and the energy inside the box.

Maps of any resolution are resized (bilinear) to the image before scoring; boxes are (x1, y1, x2, y2) in
image pixels, x2/y2 exclusive. Pointing game (Zhang et al. 2016): a hit when the map's maximum lies in the
box; energy: the share of the map's (non-negative) mass inside the box. A uniform random map scores about
the box's share of the image on both, which is the chance level to compare against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["LocalizationScore", "box_masks", "localization_scores", "spatial_map"]


@dataclass(frozen=True)
class LocalizationScore:
    """Means over images, in [0, 1]: ``pointing`` hits, ``energy`` inside the box, and ``chance``, the mean box
    share of the image (what a map without information scores)."""

    pointing: float
    energy: float
    chance: float
    images: int


def box_masks(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Boxes (N, 4) x1, y1, x2, y2 in pixels → boolean masks (N, H, W) of ``size`` = (H, W)."""
    height, width = size
    ys = torch.arange(height, device=boxes.device).view(1, -1, 1)
    xs = torch.arange(width, device=boxes.device).view(1, 1, -1)
    x1, y1, x2, y2 = (boxes[:, i].view(-1, 1, 1) for i in range(4))
    return (ys >= y1) & (ys < y2) & (xs >= x1) & (xs < x2)


def spatial_map(part: torch.Tensor) -> torch.Tensor | None:
    """A captured part as one spatial map per image (B, H, W): channel mean of (B, C, H, W) or (B, 1, H, W)
    parts; None for parts without a spatial extent (channel gates (B, C, 1, 1), statistics)."""
    if part.ndim == 4 and min(part.shape[-2:]) > 1:
        return part.float().mean(dim=1)
    if part.ndim == 3 and min(part.shape[-2:]) > 1:
        return part.float()
    return None


def localization_scores(maps: torch.Tensor, boxes: torch.Tensor | Sequence[Sequence[float]],
                        image_size: tuple[int, int]) -> LocalizationScore:  # fmt: skip
    """Pointing game and energy inside the box of ``maps`` (N, h, w), one box per map, on images of ``image_size``.

    Negative map values are clipped to zero for the energy (CAMs and gates are non-negative already).
    """
    boxes = torch.as_tensor(boxes, dtype=torch.float32, device=maps.device)
    if maps.ndim != 3 or boxes.shape != (maps.shape[0], 4):
        raise ValueError(f"need maps (N, h, w) and boxes (N, 4); got {tuple(maps.shape)} and {tuple(boxes.shape)}.")
    resized = F.interpolate(maps.float()[:, None], size=image_size, mode="bilinear", align_corners=False)[:, 0]
    inside = box_masks(boxes, image_size)
    flat = resized.flatten(1)
    hits = inside.flatten(1).gather(1, flat.argmax(dim=1, keepdim=True)).float()
    mass = resized.clamp(min=0)
    energy = (mass * inside).flatten(1).sum(1) / mass.flatten(1).sum(1).clamp(min=1e-12)
    chance = inside.flatten(1).float().mean(1)
    return LocalizationScore(float(hits.mean()), float(energy.mean()), float(chance.mean()), maps.shape[0])
