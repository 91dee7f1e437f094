from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from cnnattn.analysis import count_macs, count_params, time_fn
from cnnattn.attention import DASGate
from cnnattn.ops import DeformConv2d


@pytest.mark.parametrize(
    ("builder", "params", "gmacs"),
    [
        (torchvision.models.resnet50, 25_557_032, 4.089),
        (torchvision.models.resnet18, 11_689_512, 1.814),
        (torchvision.models.mobilenet_v2, 3_504_872, 0.301),
    ],
)
def test_torchvision_reference_figures(builder: type, params: int, gmacs: float) -> None:
    model = builder()
    assert count_params(model) == params
    assert count_macs(model) / 1e9 == pytest.approx(gmacs, rel=5e-3)


class _Deform(nn.Module):
    def __init__(self, impl: str) -> None:
        super().__init__()
        self.offset = nn.Conv2d(8, 18, 3, padding=1, bias=False)
        self.dc = DeformConv2d(8, 16, 3, padding=1, impl=impl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dc(x, self.offset(x))


@pytest.mark.parametrize("impl", ["sampled", "torchvision"])
def test_deformable_conv_is_counted_by_hand(impl: str) -> None:
    pixels = 10 * 12
    offset = 8 * 18 * 9 * pixels
    gemm = 16 * 8 * 9 * pixels
    bilinear = 4 * 8 * 9 * pixels
    assert count_macs(_Deform(impl), (8, 10, 12)) == offset + gemm + bilinear


def test_das_gate_by_hand() -> None:
    c, h, pixels = 256, 64, 56 * 56
    dsc = c * 9 * pixels + c * h * pixels
    offsets = h * 18 * 9 * pixels
    dc = c * h * 9 * pixels + 4 * h * 9 * pixels
    assert count_macs(DASGate(c, rd_ratio=1 / 4), (c, 56, 56)) == dsc + offsets + dc


def test_count_macs_keeps_training_mode() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    assert count_macs(model, (3, 8, 8)) == 3 * 4 * 9 * 36
    assert model.training


def test_time_fn_reports_median_and_quartiles() -> None:
    calls = []
    timing = time_fn(lambda: calls.append(1), warmup=2, repeats=5)
    assert len(calls) == 7
    assert 0 <= timing.p25 <= timing.median <= timing.p75
    assert "ms" in str(timing)
