"""timm's checks on its own models, run on every cnnattn model: forward at the default and a smaller size,
backward with a finite gradient on every parameter, pretrained config that resolves, reset_classifier(0),
features_only against feature_info, FX forward and backward. MobileNetV2 (the backbone given timm's interface
here) and ResNet-18, plain and with the three seed modules, run by default; every other name is marked slow (the
same checks; `pytest -m slow`)."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.fx
from torch import nn

import cnnattn

SMALL = 96  # px: every stage keeps ≥ 3×3 maps
FAST = {f"{backbone}{seed}" for backbone in ("resnet18", "mobilenetv2") for seed in ("", "_das", "_eam", "_aw")}
NAMES = [pytest.param(n, marks=[] if n in FAST else [pytest.mark.slow]) for n in cnnattn.list_models()]


def _loss_and_grads(model: nn.Module, x: torch.Tensor) -> None:
    model.train()
    model.zero_grad()
    out = model(x)
    out.float().square().mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{name} gets no gradient"
        assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient"


@pytest.mark.parametrize("name", NAMES)
def test_model_passes_timms_checks(name: str) -> None:
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=10).eval()
    cfg = model.pretrained_cfg
    with torch.no_grad():
        assert model(torch.randn(1, *cfg["input_size"])).shape == (1, 10)  # default size
    x = torch.randn(2, 3, SMALL, SMALL)
    _loss_and_grads(model, x)  # smaller size, training mode

    classifier, first_conv = model.get_submodule(cfg["classifier"]), model.get_submodule(cfg["first_conv"])
    assert isinstance(classifier, nn.Linear) and classifier.out_features == model.num_classes == 10
    assert model.get_classifier() is classifier
    assert isinstance(first_conv, nn.Conv2d) and first_conv.in_channels == cfg["input_size"][0]
    model.eval()
    with torch.no_grad():
        logits = model(x)
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        model.reset_classifier(0)
        assert model(x).shape == pooled.shape == (2, model.num_features)
        assert torch.allclose(model(x), pooled, atol=1e-5)
        model.reset_classifier(7)
        assert model(x).shape == (2, 7) and logits.shape == (2, 10)

    traced = torch.fx.symbolic_trace(timm.create_model(name, num_classes=10))
    _loss_and_grads(traced, x)


@pytest.mark.parametrize("name", [n for n in cnnattn.list_models() if n.startswith(("resnet18", "mobilenetv2"))][::3])
def test_features_only_matches_feature_info(name: str) -> None:
    features = timm.create_model(name, features_only=True).eval()
    with torch.no_grad():
        maps = features(torch.randn(1, 3, SMALL, SMALL))
    assert [m.shape[1] for m in maps] == features.feature_info.channels()
    assert [SMALL // m.shape[-1] for m in maps] == features.feature_info.reduction()


def test_mobilenetv2_keeps_torchvisions_keys_and_outputs() -> None:
    import torchvision

    reference = torchvision.models.mobilenet_v2(num_classes=10).eval()
    ours = cnnattn.create_model("mobilenetv2", num_classes=10).eval()
    ours.load_state_dict(reference.state_dict())  # strict: the same keys and shapes
    x = torch.randn(2, 3, SMALL, SMALL)
    with torch.no_grad():
        assert torch.equal(ours(x), reference(x))
        final, intermediates = ours.forward_intermediates(x)
        assert torch.equal(final, ours.forward_features(x))
        assert [t.shape[1] for t in intermediates] == [i["num_chs"] for i in ours.feature_info]
        last_two = ours.forward_intermediates(x, indices=2, intermediates_only=True, stop_early=True)
        assert [torch.equal(a, b) for a, b in zip(last_two, intermediates[-2:], strict=True)] == [True, True]
    ours.set_grad_checkpointing()
    _loss_and_grads(ours, x)  # checkpointed blocks still give every gradient
    with pytest.raises(ValueError, match="by average"):
        ours.reset_classifier(5, global_pool="max")


def test_mobilenetv2_without_pooling_gives_the_unpooled_maps_timm_asks_for() -> None:
    """timm's test_model_default_cfgs: ``reset_classifier(0, '')`` and ``num_classes=0`` as timm defines them."""
    model = cnnattn.create_model("mobilenetv2_se", num_classes=10).eval()
    x = torch.randn(1, 3, SMALL, SMALL)
    model.reset_classifier(0, "")
    with torch.no_grad():
        assert model(x).shape == (1, 1280, SMALL // 32, SMALL // 32)
        assert timm.create_model("mobilenetv2_se", num_classes=0)(x).shape == (1, 1280)
    with pytest.raises(ValueError, match="num_classes=0"):
        model.reset_classifier(5, "")
