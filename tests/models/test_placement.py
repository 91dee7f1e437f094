from __future__ import annotations

import copy
import io
import pickle
from collections.abc import Callable

import pytest
import timm
import torch
import torchvision.models as tvm
from torch import nn

import cnnattn
from cnnattn.attention import registry
from cnnattn.attention.registry import list_attention, register_attention
from cnnattn.models import backbone_stages
from cnnattn.models.adapters.base import BLOCK_POSITIONS

GATE_POSITIONS = tuple(p for p in BLOCK_POSITIONS if p != "conv")  # ResNets' and MobileNetV2's

GATES = [i.name for i in list_attention("gate")]
MODELS: dict[str, Callable[[], nn.Module]] = {
    "resnet18": lambda: tvm.resnet18(num_classes=10),
    "resnet50": lambda: tvm.resnet50(num_classes=10),
    "mobilenet_v2": lambda: tvm.mobilenet_v2(num_classes=10),
}
EXPECTED_SITES = {  # blocks per stage (block/after_block) and k×k convs per stage
    "resnet18": ([2, 2, 2, 2], [4, 4, 4, 4]),
    "resnet50": ([3, 4, 6, 3], [3, 4, 6, 3]),
    "mobilenet_v2": ([2, 3, 7, 4], [2, 3, 7, 4]),
}


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_originals_kept(before: dict[str, torch.Tensor], model: nn.Module) -> None:
    after = model.state_dict()
    for key, value in before.items():
        assert key in after, f"original key {key} disappeared"
        torch.testing.assert_close(after[key], value, rtol=0, atol=0)


def _count_calls(modules: list[nn.Module]) -> list[int]:
    calls = [0]
    for m in modules:
        m.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.mark.parametrize("position", GATE_POSITIONS)
@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("gate", GATES)
def test_gate_forward_backward_shape_and_originals(gate: str, model_name: str, position: str) -> None:
    model = MODELS[model_name]()
    before = _snapshot(model)
    cnnattn.attach(model, gate, position=position)
    _assert_originals_kept(before, model)

    placed = model.cnnattn_placements[-1].modules
    blocks = EXPECTED_SITES[model_name][0]
    assert len(placed) == (4 if position == "stage" else sum(blocks))
    attn_modules = [model.get_submodule(name) for name in placed]
    calls = _count_calls(attn_modules)

    x = torch.randn(2, 3, 64, 64)
    out = model.train()(x)
    assert out.shape == (2, 10)
    assert calls[0] == len(placed), "every attached module must run once per forward"
    out.square().mean().backward()
    attn_params = [p for m in attn_modules for p in m.parameters()]
    assert all(p.grad is not None for p in attn_params)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("model_name", list(MODELS))
def test_block_position_sits_before_the_residual_add(model_name: str) -> None:
    """A gate that zeroes its input at 'block' leaves only the shortcut: output equals the block input."""
    model = MODELS[model_name]().eval()
    site = backbone_stages(model)[1][1]  # a stride-1 block with an identity shortcut
    snapshot = dict(registry._REGISTRY)
    try:
        register_attention("zerogate")(lambda channels: _Zero())
        cnnattn.attach(model, "zerogate", stages=(2,), position="block")
    finally:
        registry._REGISTRY.clear()
        registry._REGISTRY.update(snapshot)
    x = torch.randn(2, site.channels, 8, 8)
    expected = x.relu() if model_name != "mobilenet_v2" else x  # ResNet applies ReLU after the add
    torch.testing.assert_close(site.block(x), expected)


class _Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def test_timm_resnet_gets_same_sites_and_keeps_weights() -> None:
    model = timm.create_model("resnet50", num_classes=10)
    before = _snapshot(model)
    cnnattn.attach(model, "cbam", stages=(2, 3))
    cnnattn.attach(model, "bam", stages=(1,), position="stage")
    _assert_originals_kept(before, model)
    assert isinstance(model.layer2[0].attn, nn.Module) and not hasattr(model.layer1[0], "attn")
    assert hasattr(model.layer1[2], "attn_stage")
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)


def test_all_resnet_depths_supported() -> None:
    for depth, blocks in ((34, [3, 4, 6, 3]), (101, [3, 4, 23, 3]), (152, [3, 8, 36, 3])):
        model = getattr(tvm, f"resnet{depth}")()
        assert [len(s) for s in backbone_stages(model)] == blocks
        cnnattn.attach(model, "se", stages=(4,))
        assert len(model.cnnattn_placements[0].modules) == blocks[3]


def test_plain_checkpoint_loads_into_attached_model() -> None:
    plain = tvm.resnet18()
    model = cnnattn.attach(copy.deepcopy(plain), "se")
    result = model.load_state_dict(plain.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert result.missing_keys and all(".attn." in k for k in result.missing_keys)


def test_deepcopy_and_pickle_keep_attention_bound_to_its_own_copy() -> None:
    model = cnnattn.attach(tvm.resnet18(num_classes=4), "se").eval()
    x = torch.randn(1, 3, 32, 32)
    reference = model(x)
    clone = copy.deepcopy(model)
    with torch.no_grad():
        for p in clone.layer1[0].attn.parameters():
            p.zero_()
    torch.testing.assert_close(model(x), reference)
    assert not torch.allclose(clone(x), reference)
    restored = pickle.loads(pickle.dumps(model))
    torch.testing.assert_close(restored(x), reference)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = cnnattn.attach(tvm.resnet18(num_classes=4), "se").eval()
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    torch.testing.assert_close(fresh(x), reference)


def test_attach_matches_device_dtype_and_mode() -> None:
    model = tvm.resnet18().double().eval()
    cnnattn.attach(model, "cbam", stages=(1,))
    attn = model.layer1[0].attn
    assert next(attn.parameters()).dtype == torch.float64 and not attn.training
    assert model(torch.randn(1, 3, 32, 32, dtype=torch.float64)).dtype == torch.float64


@pytest.fixture
def conv_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register two conv-kind stand-ins: one nn.Conv2d subclass, one that refuses groups."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register_attention("gainconv", kind="conv")
    class GainConv(nn.Conv2d):
        """Conv with a learned output gain (same weight shape as the conv it replaces)."""

        def __init__(
            self,
            in_channels: int,
            out_channels: int,
            kernel_size: int = 3,
            stride: int = 1,
            dilation: int = 1,
            groups: int = 1,
        ) -> None:
            super().__init__(
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding=dilation * (kernel_size // 2),
                dilation=dilation,
                groups=groups,
                bias=False,
            )
            self.gain = nn.Parameter(torch.ones(out_channels, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) * self.gain

    @register_attention("densecconv", kind="conv")
    def dense_only(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> nn.Module:
        """A conv-kind factory without ``groups``."""
        return nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False)


@pytest.mark.parametrize("model_name", list(MODELS))
def test_conv_position_replaces_kxk_convs_and_keeps_weights(model_name: str, conv_kinds: None) -> None:
    model = MODELS[model_name]()
    before = _snapshot(model)
    cnnattn.attach(model, "gainconv", position="conv", stages=(2, 3, 4))
    _assert_originals_kept(before, model)
    replaced = model.cnnattn_placements[0].modules
    assert len(replaced) == sum(EXPECTED_SITES[model_name][1][1:])
    assert all(type(model.get_submodule(n)).__name__ == "GainConv" for n in replaced)
    out = model.train()(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 10)
    out.sum().backward()
    assert model.get_submodule(replaced[0]).gain.grad is not None


def test_conv_position_reports_unsupported_grouped_conv(conv_kinds: None) -> None:
    with pytest.raises(ValueError, match="does not accept.*groups"):
        cnnattn.attach(tvm.mobilenet_v2(), "densecconv", position="conv")


def test_gate_at_conv_and_conv_at_gate_position_are_rejected(conv_kinds: None) -> None:
    with pytest.raises(ValueError, match="'se' is a gate.*'block', 'after_block', 'stage'"):
        cnnattn.attach(tvm.resnet18(), "se", position="conv")
    with pytest.raises(ValueError, match="conv-kind attention.*position='conv'"):
        cnnattn.attach(tvm.resnet18(), "gainconv", position="block")


@pytest.mark.parametrize("stages", [(0,), (5,), (), (2, 2), ("x",)])
def test_stage_out_of_range_is_rejected(stages: tuple) -> None:
    with pytest.raises(ValueError, match="stages must be"):
        cnnattn.attach(tvm.resnet18(), "se", stages=stages)


def test_unknown_position_and_unsupported_model_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown position 'head'"):
        cnnattn.attach(tvm.resnet18(), "se", position="head")
    families = r"cannot place attention in .*Sequential.*supported backbone families:.*torchvision_resnet"
    with pytest.raises(ValueError, match=families):
        cnnattn.attach(nn.Sequential(nn.Conv2d(3, 8, 3)), "se")


def test_second_gate_at_same_position_is_rejected_but_other_positions_stack() -> None:
    model = cnnattn.attach(tvm.resnet18(), "se")
    with pytest.raises(ValueError, match="already has attention at position 'block'"):
        cnnattn.attach(model, "eca")
    cnnattn.attach(model, "eca", position="after_block")
    assert [p.attention for p in model.cnnattn_placements] == ["se", "eca"]
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 1000)


def test_detector_body_and_frozen_norm_resnet_take_attention_at_every_position() -> None:
    """A torchvision ResNet built with FrozenBatchNorm2d (as detectors build it), cut by IntermediateLayerGetter."""
    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.ops import FrozenBatchNorm2d

    for position in GATE_POSITIONS:
        resnet = tvm.resnet18(norm_layer=FrozenBatchNorm2d)
        body = IntermediateLayerGetter(resnet, {"layer2": "0", "layer4": "1"})
        cnnattn.attach(body, "se", position=position)
        modules = [body.get_submodule(n) for n in body.cnnattn_placements[0].modules]
        calls = _count_calls(modules)
        features = body(torch.randn(1, 3, 64, 64))
        assert [f.shape[1] for f in features.values()] == [128, 512]
        assert calls[0] == len(modules) == (4 if position == "stage" else 8)
