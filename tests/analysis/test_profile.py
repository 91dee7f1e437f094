from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import cnnattn


@pytest.mark.parametrize(
    ("builder", "params", "gmacs"),
    [
        (torchvision.models.resnet50, 25_557_032, 4.089),
        (torchvision.models.resnet18, 11_689_512, 1.814),
        (torchvision.models.mobilenet_v2, 3_504_872, 0.301),
    ],
)
def test_reference_figures(builder: type, params: int, gmacs: float) -> None:
    result = cnnattn.profile(builder())
    assert result.params == params
    assert result.macs / 1e9 == pytest.approx(gmacs, rel=5e-3)
    assert result.dense_macs == result.macs


def test_per_module_breakdown_and_attention_totals() -> None:
    model = cnnattn.create_model("resnet18_se", num_classes=10)
    result = cnnattn.profile(model, (3, 64, 64))
    conv = result.module("layer1.0.conv1")
    assert conv.macs == 64 * 64 * 9 * 16 * 16 and conv.params == 64 * 64 * 9
    layer_sum = sum(result.module(f"layer{i}").macs for i in range(1, 5))
    assert layer_sum + result.module("conv1").macs + result.module("fc").macs == result.macs
    assert len(result.attention) == 8 and result.attention[0] == "layer1.0.attn"
    se = result.module("layer1.0.attn")
    assert result.attention_params == sum(result.module(n).params for n in result.attention) > 0
    assert se.macs == 2 * 64 * 8  # two 1×1 convs on the pooled vector (64 -> 8 -> 64)
    assert "attention (8 modules)" in result.table()
    assert result.to_dict()["macs"] == result.macs


class _Separable(nn.Module):
    """Executes 10 MACs' worth of matmul but declares a dense equivalent of 1000 MACs."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(2, 5, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.mean((2, 3))[:, :2])

    def dense_equivalent_macs(self, input: torch.Tensor, output: torch.Tensor) -> int:
        return 1000 * input.shape[0]


def test_dense_equivalent_protocol() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), _Separable())
    result = cnnattn.profile(model, (3, 2, 2), batch_size=2)
    conv_macs = 2 * 3 * 4 * 4
    assert result.macs == conv_macs + 2 * 10
    assert result.dense_macs == conv_macs + 2000
    assert result.module("1").dense_macs == 2000 and result.module("1").macs == 20
    assert result.module("1.proj").dense_macs == 20


def test_bad_input_size() -> None:
    with pytest.raises(ValueError, match=r"input_size must be \(C, H, W\)"):
        cnnattn.profile(nn.Conv2d(3, 3, 1), (224, 224))
