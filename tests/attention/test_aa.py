from __future__ import annotations

import pytest
import torch

import cnnattn
from cnnattn.attention import AttentionAugmentedConv2d
from cnnattn.fast_paths import reference_arithmetic

from helpers import assert_trains


def test_layout_and_paper_ratios() -> None:
    layer = AttentionAugmentedConv2d(128, 320, 3, 1)
    assert (layer.num_heads, layer.d_k, layer.d_v) == (8, 64, 32)  # 0.2·F and 0.1·F, multiples of N_h
    assert layer.conv.out_channels == 320 - 32
    out = layer(torch.randn(2, 128, 7, 9))
    assert out.shape == (2, 320, 7, 9)
    assert AttentionAugmentedConv2d(16, 80, 3, 2)(torch.randn(1, 16, 9, 8)).shape == (1, 80, 5, 4)


def _naive_attention(layer: AttentionAugmentedConv2d, x: torch.Tensor) -> torch.Tensor:
    """Loop-based reference of the attention branch (before projection) for stride 1."""
    _, _, height, width = x.shape
    q, k = layer.qk(x).chunk(2, dim=1)
    v = layer.value(x)
    heads, d = layer.num_heads, layer.d_k // layer.num_heads
    dv = layer.d_v // heads
    out = torch.zeros(1, layer.d_v, height, width)
    positions = [(y, xx) for y in range(height) for xx in range(width)]
    for h in range(heads):
        qh, kh, vh = q[0, h * d : (h + 1) * d], k[0, h * d : (h + 1) * d], v[0, h * dv : (h + 1) * dv]
        for yi, xi in positions:
            logits = (
                torch.stack(
                    [
                        (qh[:, yi, xi] * (kh[:, yj, xj] + layer.rel_h[yj - yi + 63] + layer.rel_w[xj - xi + 63])).sum()
                        for (yj, xj) in positions
                    ]
                )
                / d**0.5
            )
            weights = logits.softmax(0)
            out[0, h * dv : (h + 1) * dv, yi, xi] = (vh.flatten(1) * weights).sum(1)
    return out


def test_relative_logits_match_the_definition() -> None:
    torch.manual_seed(0)
    layer = AttentionAugmentedConv2d(8, 40, 3, 1, num_heads=2)
    x = torch.randn(1, 8, 4, 5)
    torch.testing.assert_close(layer.attend(x, layer.value(x)), _naive_attention(layer, x), rtol=1e-4, atol=1e-5)


def test_offsets_beyond_the_table_are_clipped() -> None:
    layer = AttentionAugmentedConv2d(8, 40, max_rel_dist=3)
    assert layer(torch.randn(1, 8, 9, 9)).shape == (1, 40, 9, 9)


def test_models_build_and_train() -> None:
    dense = [f"resnet{d}" for d in (101, 152, 18, 34, 50)] + ["densenet121", "vgg16_bn", "wide_resnet50_2"]
    assert cnnattn.list_models("*_aa") == sorted(f"{b}_aa" for b in dense)  # bases with dense 3×3 convs
    model = cnnattn.create_model("resnet18_aa", num_classes=4)
    assert isinstance(model.layer3[1].conv2, AttentionAugmentedConv2d)
    assert_trains(model)


def test_macs_count_every_attention_product() -> None:
    layer = AttentionAugmentedConv2d(8, 40, 3, 1, num_heads=2)  # d_k = 8, d_v = 4
    n = 4 * 5
    expected = (
        36 * 8 * 9 * n
        + 4 * 8 * n
        + 4 * 4 * n
        + 16 * 8 * n  # conv, value, proj, q and k
        + 8 * n * n  # q·kᵀ
        + 2 * n * (4 + 5) * 4  # relative logits: heads × queries × (H + W) offsets × head depth
        + 4 * n * n
    )  # attention · v
    assert cnnattn.profile(layer, (8, 4, 5)).macs == expected


def _assert_same_values_and_gradients(
    out: torch.Tensor, expected: torch.Tensor, inputs: list[torch.Tensor], grad: torch.Tensor
) -> None:
    torch.testing.assert_close(out, expected)
    for a, b in zip(torch.autograd.grad(out, inputs, grad, allow_unused=True),
                    torch.autograd.grad(expected, inputs, grad, allow_unused=True), strict=True):  # fmt: skip
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize(("stride", "relative", "size"), [(1, True, (5, 7)), (2, True, (7, 6)), (1, False, (4, 4))])
def test_fused_attention_equals_the_explicit_softmax_in_outputs_and_gradients(stride, relative, size) -> None:
    torch.manual_seed(0)
    layer = AttentionAugmentedConv2d(8, 40, 3, stride, num_heads=2, relative=relative).double()
    x = torch.randn(2, 8, *size, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(2, layer.d_v, *layer.conv(x).shape[-2:], dtype=torch.float64)
    fused = layer.attend(x, layer.value(x))
    with reference_arithmetic():  # the explicit (H'W' × HW) softmax
        explicit = layer.attend(x, layer.value(x))
    _assert_same_values_and_gradients(fused, explicit, [x, *layer.parameters()], grad)


def test_batch_chunks_on_cpu_equal_one_call_in_outputs_and_gradients(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    layer = AttentionAugmentedConv2d(8, 40, 3, 2, num_heads=2).double()
    x = torch.randn(5, 8, 7, 6, dtype=torch.float64, requires_grad=True)
    calls = []
    fused = layer._fused_attention
    monkeypatch.setattr(layer, "_fused_attention", lambda q, *rest: calls.append(q.shape[0]) or fused(q, *rest))
    layer.max_attention_bytes = None
    whole = layer.attend(x, layer.value(x))
    layer.max_attention_bytes = 1  # one sample per call
    chunked = layer.attend(x, layer.value(x))
    assert calls == [5, 1, 1, 1, 1, 1]
    _assert_same_values_and_gradients(chunked, whole, [x, *layer.parameters()], torch.randn_like(whole))
