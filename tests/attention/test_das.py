from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from timm.layers import LayerNorm2d
from torch import nn

import cnnattn
from cnnattn.attention import DASGate, create_attention, get_attention_info
from cnnattn.fast_paths import CPU
from cnnattn.models import BACKBONES


def _with_random_offsets(gate: DASGate) -> DASGate:
    """Give the (zero-initialised) offset predictor weights so the deformable conv really deforms."""
    with torch.no_grad():
        gate.offset.weight.normal_(0, 0.5)
        gate.offset.bias.normal_(0, 1.0)
    return gate


def test_structure_follows_the_known_formula() -> None:
    gate = DASGate(64, rd_ratio=1 / 4)
    dw, pw = gate.dsc
    assert (dw.groups, dw.in_channels, dw.out_channels, dw.kernel_size) == (64, 64, 64, (3, 3))
    assert (pw.in_channels, pw.out_channels, pw.kernel_size) == (64, 16, (1, 1))
    assert isinstance(gate.norm, nn.InstanceNorm2d) and gate.norm.affine
    assert gate.dc.weight.shape == (64, 16, 3, 3)  # C/α -> C, so A has the full C×H×W shape
    assert gate.offset.out_channels == 18 and gate.offset.kernel_size == (3, 3)
    assert isinstance(gate.gate_norm, LayerNorm2d)


def _reference(gate: DASGate, x: torch.Tensor) -> torch.Tensor:
    """The known formula composed from the gate's own layers and torchvision's deformable conv."""
    hidden = gate.norm(gate.dsc(x))
    offsets = gate.offset(hidden)
    dc = torchvision.ops.deform_conv2d(hidden, offsets, gate.dc.weight, gate.dc.bias, padding=1)
    return x * torch.sigmoid(gate.gate_norm(dc))


def _assert_equals_reference(gate: DASGate, x: torch.Tensor) -> None:
    """Outputs and the gradients of the input and every parameter, and the output without autograd."""
    weights, inputs = torch.randn_like(x), [x, *gate.parameters()]
    got, expected = gate(x), _reference(gate, x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    for ours, theirs in zip(torch.autograd.grad(got, inputs, weights), torch.autograd.grad(expected, inputs, weights),
                            strict=True):  # fmt: skip
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        torch.testing.assert_close(gate(x), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("train", [False, True])
def test_output_and_gradients_equal_reference_composition_with_torchvision_dc(train: bool) -> None:
    gate = _with_random_offsets(DASGate(32, rd_ratio=1 / 4)).train(train)
    _assert_equals_reference(gate, torch.randn(2, 32, 9, 11, requires_grad=True))


@pytest.mark.parametrize("channels_last_dsc", [None, False, True])
def test_channels_last_dsc_changes_no_number(channels_last_dsc: bool | None) -> None:
    """32×33 is above CPU.dsc_channels_last_min_pixels, so None takes the channels-last copy on CPU. In float64: a
    weight gradient sums 2·32·33 products, whose float32 rounding depends on the layout and the thread count (one
    entry of the depthwise weight's gradient once differed by 3e-4 with one thread), not on the formulation."""
    gate = _with_random_offsets(DASGate(16, rd_ratio=1 / 4, channels_last_dsc=channels_last_dsc)).double()
    _assert_equals_reference(gate, torch.randn(2, 16, 32, 33, dtype=torch.float64, requires_grad=True))
    with torch.no_grad():  # a channels-last input keeps the output in x's layout
        x = torch.randn(2, 16, 32, 33, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(gate(x), _reference(gate, x), rtol=1e-4, atol=1e-5)


def test_channels_last_dsc_auto_rule() -> None:
    gate, big = DASGate(16, rd_ratio=1 / 4), CPU.dsc_channels_last_min_pixels

    def channels_last(module: DASGate, width: int) -> bool:
        x = torch.randn(1, 16, 2, width)
        return module._dsc_input(x).is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous(
            memory_format=torch.channels_last
        )

    assert channels_last(gate, big // 2) and not channels_last(gate, big // 2 - 1)
    assert not channels_last(DASGate(16, rd_ratio=1 / 4, channels_last_dsc=False), big)
    assert channels_last(DASGate(16, rd_ratio=1 / 4, channels_last_dsc=True), 4)


def test_zero_initialised_offsets_make_dc_a_plain_conv() -> None:
    gate = DASGate(32, rd_ratio=1 / 8).eval()
    x = torch.randn(1, 32, 8, 8)
    attention, offsets = gate.gate_and_offsets(x)
    assert torch.count_nonzero(offsets) == 0
    hidden = gate.norm(gate.dsc(x))
    plain = F.conv2d(hidden, gate.dc.weight, gate.dc.bias, padding=1)
    torch.testing.assert_close(attention, torch.sigmoid(gate.gate_norm(plain)), rtol=1e-5, atol=1e-6)


def test_gate_multiplies_input_without_residual() -> None:
    gate = _with_random_offsets(DASGate(16, rd_ratio=1 / 4))
    x = torch.rand(2, 16, 7, 7) + 0.1
    ratio = gate(x) / x
    assert ratio.min() > 0 and ratio.max() < 1
    torch.testing.assert_close(gate(torch.zeros_like(x)), torch.zeros_like(x))


def test_offset_predictor_learns_from_zero_init() -> None:
    gate = DASGate(16, rd_ratio=1 / 4)
    gate(torch.randn(2, 16, 6, 6)).square().sum().backward()
    assert gate.offset.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in gate.parameters())


def test_modulated_mask_starts_at_half() -> None:
    gate = DASGate(16, rd_ratio=1 / 4, modulated=True).eval()
    assert gate.offset.out_channels == 27
    x = torch.randn(1, 16, 5, 5)
    hidden = gate.norm(gate.dsc(x))
    half_conv = 0.5 * F.conv2d(hidden, gate.dc.weight, None, padding=1) + gate.dc.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(gate.attention_map(x), torch.sigmoid(gate.gate_norm(half_conv)), rtol=1e-5, atol=1e-6)


def test_keep_maps_only_when_asked() -> None:
    x = torch.randn(2, 16, 6, 5)
    quiet = DASGate(16, rd_ratio=1 / 4)
    quiet(x)
    assert quiet.last_attention is None and quiet.last_offsets is None
    keeper = DASGate(16, rd_ratio=1 / 4, keep_maps=True, offset_groups=2)
    keeper(x)
    assert keeper.last_attention.shape == (2, 16, 6, 5) and not keeper.last_attention.requires_grad
    assert keeper.last_offsets.shape == (2, 36, 6, 5)


def test_options_kernel_sizes_norms_and_impls() -> None:
    gate = DASGate(
        32,
        rd_ratio=1 / 2,
        dw_kernel_size=5,
        kernel_size=5,
        offset_kernel_size=1,
        offset_groups=4,
        norm_layer=nn.BatchNorm2d,
        gate_norm_layer=nn.Identity,
        impl="sampled",
    )
    x = torch.randn(2, 32, 9, 9)
    assert gate(x).shape == x.shape
    _with_random_offsets(gate).eval()
    reference = gate(x)
    gate.dc.impl = "torchvision"
    torch.testing.assert_close(gate(x), reference, rtol=1e-4, atol=1e-5)


def test_bad_inputs_name_expected_and_received_shapes() -> None:
    gate = DASGate(16, rd_ratio=1 / 4)
    with pytest.raises(ValueError, match=r"expects input of shape \(B, 16, H, W\); got \(2, 8, 5, 5\)"):
        gate(torch.randn(2, 8, 5, 5))
    with pytest.raises(ValueError, match=r"got \(16, 5, 5\)"):
        gate(torch.randn(16, 5, 5))
    with pytest.raises(ValueError, match="1×1 feature map"):
        gate(torch.randn(2, 16, 1, 1))
    group_norm = DASGate(16, rd_ratio=1 / 4, norm_layer=lambda c: nn.GroupNorm(1, c))
    assert group_norm(torch.randn(2, 16, 1, 1)).shape == (2, 16, 1, 1)
    with pytest.raises(ValueError, match="divisible by offset_groups"):
        DASGate(16, rd_ratio=1 / 4, offset_groups=3)


def test_registry_and_models() -> None:
    info = get_attention_info("das")
    assert (info.kind, info.position, info.stages) == ("gate", "stage", (1, 2, 3, 4))  # docs/das.md ablation
    assert DASGate(256).hidden == 16
    assert isinstance(create_attention("das", 64), DASGate)
    assert cnnattn.list_models("*_das") == sorted(f"{b}_das" for b in BACKBONES)  # every base, grouped ones too
    for name in ("resnet18_das", "mobilenetv2_das"):
        model = timm.create_model(name, num_classes=4)
        out = model(torch.randn(2, 3, 64, 64))
        assert out.shape == (2, 4)
        out.sum().backward()
