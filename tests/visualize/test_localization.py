"""Localisation scores: perfect for the box indicator, chance for a uniform random map; digits know their box."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnattn.data import cluttered_digits
from cnnattn.visualize.capture import spatial_map
from cnnattn.visualize.localization import box_masks, localization_scores


def test_box_indicator_scores_one_and_random_maps_score_chance() -> None:
    generator = torch.Generator().manual_seed(0)
    corners = torch.randint(0, 40, (400, 2), generator=generator).float()
    boxes = torch.cat([corners, corners + torch.randint(8, 24, (400, 2), generator=generator)], dim=1).clamp(max=64)
    perfect = localization_scores(box_masks(boxes, (64, 64)).float(), boxes, (64, 64))
    assert perfect.pointing == 1.0 and perfect.energy == pytest.approx(1.0)
    random = localization_scores(torch.rand(400, 64, 64, generator=generator), boxes, (64, 64))
    assert random.chance == pytest.approx(perfect.chance)
    assert random.energy == pytest.approx(random.chance, abs=0.01)  # mass spreads like the area
    assert random.pointing == pytest.approx(random.chance, abs=0.06)  # 400 draws: about 3 standard errors


def test_low_resolution_maps_are_resized_to_the_image() -> None:
    coarse = torch.zeros(1, 4, 4)
    coarse[0, 0, 3] = 1.0  # the top-right cell of a 4×4 grid on a 32×32 image
    score = localization_scores(coarse, [[24, 0, 32, 8]], (32, 32))
    assert score.pointing == 1.0 and score.energy > 0.5


def test_spatial_parts_and_bad_shapes() -> None:
    assert spatial_map(torch.rand(2, 8, 5, 5)).shape == (2, 5, 5) and spatial_map(torch.rand(2, 8, 1, 1)) is None
    assert spatial_map(torch.rand(2, 6, 6)).shape == (2, 6, 6) and spatial_map(torch.rand(2, 4)) is None
    with pytest.raises(ValueError, match=r"need maps \(N, h, w\) and boxes \(N, 4\)"):
        localization_scores(torch.rand(2, 4, 4), [[0, 0, 1, 1]], (4, 4))


def test_cluttered_digits_know_where_each_digit_is() -> None:
    data = cluttered_digits("test", size=20)
    assert data.boxes.shape == (20, 4)
    for image, (x1, y1, x2, y2) in zip(data.images, data.boxes, strict=True):
        assert 0 <= x1 < x2 <= 40 and 0 <= y1 < y2 <= 40 and x2 - x1 == y2 - y1
        inside = image[y1:y2, x1:x2]
        assert inside.max() > 0 and np.count_nonzero(inside) > 0.15 * inside.size  # the digit's strokes are there
