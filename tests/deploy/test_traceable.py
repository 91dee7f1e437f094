"""Every model cnnattn names traces: torch.fx (and torchvision's create_feature_extractor) and torch.jit.trace."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.feature_extraction import create_feature_extractor

import cnnattn

FAST = ("resnet18", "mobilenetv2")  # every attention on one ResNet (Basic blocks) and on MobileNetV2 by default
NAMES = [
    name if name.split("_")[0] in FAST else pytest.param(name, marks=pytest.mark.slow) for name in cnnattn.list_models()
]


@pytest.mark.parametrize("name", NAMES)
def test_fx_and_jit_trace_equal_eager(name: str) -> None:
    model = cnnattn.create_model(name, num_classes=5).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        graph = torch.fx.symbolic_trace(model)
        traced = torch.jit.trace(model, x)
        other = torch.randn(3, 3, 96, 80)  # the FX graph is not fixed to the traced size
        assert torch.allclose(graph(x), expected, atol=1e-5) and torch.allclose(traced(x), expected, atol=1e-5)
        assert torch.allclose(graph(other), model(other), atol=1e-5)
    large = torch.randn(1, 3, 128, 128)  # timm's FX test size: 32² maps in stage 1, where DAS's DSC runs channels-last
    with torch.inference_mode():
        assert torch.equal(graph(large), model(large)), "timm's test_model_forward_fx asks for bitwise equality"


@pytest.mark.parametrize("name", ["resnet18_das", "resnet18_aw", "resnet18_eam", "resnet18_aa", "resnet18_bam"])
def test_create_feature_extractor_returns_every_stage(name: str) -> None:
    model = cnnattn.create_model(name, num_classes=5).eval()
    nodes = {f"layer{i}": f"c{i + 1}" for i in range(1, 5)}
    extractor = create_feature_extractor(model, return_nodes=nodes)
    with torch.no_grad():
        features = extractor(torch.randn(1, 3, 64, 64))
    assert [f.shape[1] for f in features.values()] == [64, 128, 256, 512]
