"""Deformable sampling points: by hand, against what torchvision's deform_conv2d samples, and traced."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import deform_conv2d

from cnnattn.visualize.sampling import DeformLayer, sampling_points, to_grid, to_image, trace


def test_a_hand_built_offset_field_lands_where_computed_by_hand() -> None:
    offsets = torch.zeros(1, 2 * 9, 5, 6)  # k = 3, one group: (dy, dx) for taps 0..8
    offsets[0, 0, 2, 3], offsets[0, 1, 2, 3] = 0.5, -1.25  # tap (0, 0) of output (2, 3)
    offsets[0, 2 * 5, 2, 3] = 2.0  # dy of tap 5 = (1, 2)
    points = sampling_points(offsets, 3, stride=1, padding=1)
    assert points.shape == (1, 1, 9, 5, 6, 2)
    assert points[0, 0, 0, 2, 3].tolist() == [2 - 1 + 0 + 0.5, 3 - 1 + 0 - 1.25]
    assert points[0, 0, 5, 2, 3].tolist() == [2 - 1 + 1 + 2.0, 3 - 1 + 2]
    assert points[0, 0, 4, 0, 0].tolist() == [0.0, 0.0]  # the centre tap of output (0, 0), no offset
    strided = sampling_points(torch.zeros(1, 2 * 9, 3, 3), 3, stride=2, padding=1, dilation=2)
    assert strided[0, 0, 8, 1, 1].tolist() == [1 * 2 - 1 + 2 * 2, 1 * 2 - 1 + 2 * 2]


@pytest.mark.parametrize(("stride", "padding", "dilation"), [(1, 1, 1), (2, 1, 1), (1, 2, 2)])
def test_points_are_where_torchvision_samples(stride: int, padding: int, dilation: int) -> None:
    height, width = 12, 14
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                            indexing="ij")  # fmt: skip
    image = torch.stack([ys, xs])[None]  # channel 0 holds y, channel 1 holds x: bilinear samples return the point
    out_h, out_w = (
        (height + 2 * padding - dilation * 2 - 1) // stride + 1,
        (width + 2 * padding - dilation * 2 - 1) // stride + 1,
    )
    offsets = torch.rand(1, 18, out_h, out_w, dtype=torch.float64) * 1.5 - 0.75
    points = sampling_points(offsets, 3, stride, padding, dilation)[0, 0]  # (9, H', W', 2)
    for tap in range(9):
        weight = torch.zeros(2, 2, 3, 3, dtype=torch.float64)
        weight[0, 0].view(-1)[tap] = weight[1, 1].view(-1)[tap] = 1.0
        sampled = deform_conv2d(image, offsets, weight, stride=stride, padding=padding, dilation=dilation)[0]
        inside = (points[tap, ..., 0] >= 0) & (points[tap, ..., 0] <= height - 1)
        inside &= (points[tap, ..., 1] >= 0) & (points[tap, ..., 1] <= width - 1)
        assert inside.any()
        for axis in (0, 1):
            assert torch.allclose(sampled[axis][inside], points[tap, ..., axis][inside], atol=1e-9)


def test_trace_follows_points_through_two_layers() -> None:
    zeros = torch.zeros(1, 18, 4, 4)
    deep = DeformLayer(zeros, 3, input_stride=8, padding=1)  # a 4×4 map at stride 8
    shallow_offsets = torch.zeros(1, 18, 8, 8)
    shallow_offsets[:, 0::2] = 1.0  # every tap of the stride-4 layer shifted one grid pixel down
    mask = torch.full((1, 9, 8, 8), 0.25)
    shallow = DeformLayer(shallow_offsets, 3, input_stride=4, padding=1, mask=mask)
    levels = trace([deep, shallow], start=(to_image(1.0, 8), to_image(2.0, 8)))
    assert [tuple(level["points"].shape) for level in levels] == [(9, 2), (81, 2)]
    grid = levels[0]["points"].view(3, 3, 2)
    assert grid[1, 1].tolist() == [to_image(1.0, 8), to_image(2.0, 8)]  # the centre tap of the start position
    assert torch.equal(levels[0]["weights"], torch.ones(9)) and torch.equal(
        levels[1]["weights"], torch.full((81,), 0.25)
    )
    centre_of_centre = levels[1]["points"].view(9, 9, 2)[4, 4]  # shallow layer's centre tap of the deep centre
    expected_y = to_image(round(to_grid(to_image(1.0, 8), 4)) + 1.0, 4)
    assert centre_of_centre[0].item() == pytest.approx(expected_y)


def test_bad_offsets_are_named() -> None:
    with pytest.raises(ValueError, match="not a multiple of 2·k_h·k_w = 18"):
        sampling_points(torch.zeros(1, 10, 2, 2), 3)
