from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnattn.attention import BAM, create_attention


def test_branch_shapes_and_combination() -> None:
    bam = BAM(64).eval()
    x = torch.randn(2, 64, 12, 10)
    assert bam.channel_gate(x).shape == (2, 64, 1, 1)
    assert bam.spatial_gate(x).shape == (2, 1, 12, 10)
    expected = x * (1 + torch.sigmoid(bam.channel_gate(x) + bam.spatial_gate(x)))
    torch.testing.assert_close(bam(x), expected)


def test_gate_lies_between_one_and_two() -> None:
    bam = BAM(32)
    x = torch.rand(4, 32, 8, 8) + 0.1
    ratio = bam(x) / x
    assert ratio.min() > 1 and ratio.max() < 2


def test_paper_defaults_reduction_16_dilation_4_two_dilated_convs() -> None:
    bam = BAM(256)
    dilated = [m for m in bam.spatial_gate.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(dilated) == 2
    assert all(m.dilation == (4, 4) and m.padding == (4, 4) for m in dilated)
    hidden = [m.out_channels for m in bam.modules() if isinstance(m, nn.Conv2d)]
    assert hidden == [16, 256, 16, 16, 16, 1]


@pytest.mark.parametrize("size", [(1, 1), (2, 2), (3, 5), (7, 7)])
def test_small_maps_keep_their_size(size: tuple[int, int]) -> None:
    bam = BAM(32, dilation=4).train()
    x = torch.randn(2, 32, *size)
    assert bam(x).shape == x.shape


def test_batch_of_one() -> None:
    x = torch.randn(1, 32, 6, 6)
    assert BAM(32).eval()(x).shape == x.shape
    with pytest.raises(ValueError, match="batch of 1"):
        BAM(32).train()(x)
    assert BAM(32, channel_norm_layer=None).train()(x).shape == x.shape


def test_registry_default_placement_is_stage_boundaries() -> None:
    from cnnattn.attention import get_attention_info

    info = get_attention_info("bam")
    assert (info.position, info.stages) == ("stage", (1, 2, 3))
    assert isinstance(create_attention("bam", 64, rd_ratio=1 / 8), BAM)
