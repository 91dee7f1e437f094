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

from ..data.samples import load_samples
from .capture import capture, default_layer, spatial_attention
from .show import Subject

__all__ = ["LOCALIZATION_KEYS", "LocalizationScore", "box_masks", "localization_scores",
           "subject_localization"]  # fmt: skip


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


LOCALIZATION_KEYS = ("pointing_attention", "energy_attention", "pointing_gradcam", "energy_gradcam", "chance")


def subject_localization(subject: Subject, images: str, max_images: int = 256, batch_size: int = 64
                         ) -> dict[str, float | None]:  # fmt: skip
    """Localisation of a trained classifier (``subject``) on images with known boxes (e.g. ``builtin:cluttered``'s
    test split): pointing game and energy in the box (fractions) of its attention map (the default layer of
    ``cnnattn show``; None without a spatial map that depends on the image: EAM's Gaussian is the same for every
    image) and of Grad-CAM for the true class (None without the viz extra); ``chance``, the mean box share of the
    image."""
    samples = load_samples(images, subject.img_size, subject.classes, max_images)
    if any(s.box is None or s.label is None for s in samples):
        raise ValueError(f"{images}: localisation needs images with known classes and boxes, e.g. builtin:cluttered.")
    attention, cams = [], []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        batch = torch.stack([s.tensor for s in chunk])
        with torch.no_grad(), capture(subject.model) as maps:
            subject.model(batch)
        layer = default_layer(maps, len(chunk))
        fixed = layer is not None and "radius" in maps[layer]  # EAM: a map independent of the image
        attention.append(spatial_attention(maps[layer], len(chunk)) if layer and not fixed else None)
        cams.append(_gradcam(subject.model, batch, [s.label for s in chunk]))
    boxes, size = [s.box for s in samples], tuple(samples[0].tensor.shape[-2:])
    scores: dict[str, float | None] = dict.fromkeys(LOCALIZATION_KEYS)
    scores["chance"] = float(box_masks(torch.as_tensor(boxes), size).float().mean())
    for name, parts in (("attention", attention), ("gradcam", cams)):
        if all(p is not None for p in parts):
            found = localization_scores(torch.cat(parts), boxes, size)
            scores[f"pointing_{name}"], scores[f"energy_{name}"] = found.pointing, found.energy
    return scores


def _gradcam(model: torch.nn.Module, batch: torch.Tensor, classes: list[int]) -> torch.Tensor | None:
    try:
        from .cam import class_activation_maps

        return torch.from_numpy(class_activation_maps(model, batch, "gradcam", classes).maps)
    except ImportError:
        return None
