from __future__ import annotations

import itertools

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

import cnnattn
from cnnattn.attention import AWConv2d, create_attention, get_attention_info

from helpers import assert_rel_close


def _randomise_generator(layer: AWConv2d) -> AWConv2d:
    """Leave the identity initialisation so the attention is not zero."""
    with torch.no_grad():
        for p in (layer.fc1.weight, layer.fc2.weight, layer.fc2.bias):
            p.normal_(0, 0.3)
    return layer


def _naive(layer: AWConv2d, x: torch.Tensor) -> torch.Tensor:
    """Per-sample reference: rebuild A from the formula and run F.conv2d one sample at a time."""
    gate = {"none": lambda a: a, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[layer.gate]
    k = layer.kernel_size[0]
    cin_g, outs = layer.in_channels // layer.groups, []
    for sample in x.split(1):
        pooled = F.adaptive_avg_pool2d(sample, k)
        logits = F.conv2d(F.relu(F.conv2d(pooled, layer.fc1.weight, layer.fc1.bias)), layer.fc2.weight, layer.fc2.bias)[
            0
        ]
        if layer.attention_shape == "shared":
            a = gate(logits)  # (C_in, k, k): input channel g·cin_g + c of output o's group
            group_of = torch.arange(layer.out_channels) // (layer.out_channels // layer.groups)
            idx = group_of[:, None] * cin_g + torch.arange(cin_g)[None, :]
            a = a[idx]  # (C_out, cin_g, k, k)
        elif layer.rank is None:
            a = gate(logits.view(layer.out_channels, cin_g, k, k))
        else:
            r = layer.rank
            u = gate(logits[: r * layer.out_channels].view(r, layer.out_channels, k, k))
            v = gate(logits[r * layer.out_channels :].view(r, cin_g, k, k))
            a = torch.einsum("rokl,rckl->ockl", u, v) / r  # factorised: the gate acts on each factor
        outs.append(
            F.conv2d(
                sample, layer.weight * (1 + a), layer.bias, layer.stride, layer.padding, layer.dilation, layer.groups
            )
        )
    return torch.cat(outs)


CASES = [
    (*case, impl)
    for case in itertools.product([1, 2], [1, 2], [1, 4], ["full", "shared"])
    for impl in ("modulated", "factored")
    if impl == "modulated" or case[2:] == (1, "full")  # the factored path: factorised full attention, groups=1
]


@pytest.mark.parametrize(("stride", "dilation", "groups", "shape", "impl"), CASES)
@pytest.mark.parametrize("batch", [1, 16])
def test_equals_naive_per_sample_loop(
    stride: int, dilation: int, groups: int, shape: str, impl: str, batch: int
) -> None:
    layer = _randomise_generator(
        AWConv2d(
            8,
            12,
            3,
            stride,
            dilation=dilation,
            groups=groups,
            bias=True,
            attention_shape=shape,
            rd_ratio=1 / 2,
            impl=impl,
        )
    )
    x = torch.randn(batch, 8, 11, 9, requires_grad=True)
    out, ref = layer(x), _naive(layer, x)
    small = torch.randn(batch, 8, 5, 5)  # few output pixels: the unfold + bmm path
    assert_rel_close(layer(small), _naive(layer, small), 1e-5, "small-map output")
    assert_rel_close(out, ref, 1e-5, "output")
    grads = torch.autograd.grad(out.square().sum(), [x, *layer.parameters()])
    ref_grads = torch.autograd.grad(ref.square().sum(), [x, *layer.parameters()])
    for (name, _), g, r in zip([("input", x), *layer.named_parameters()], grads, ref_grads, strict=True):
        assert_rel_close(g, r, 1e-5, f"grad {name}")


@pytest.mark.parametrize(("rank", "gate"), [(None, "none"), (1, "sigmoid"), (4, "tanh")])
def test_full_generators_and_gates_equal_naive(rank: int | None, gate: str) -> None:
    layer = _randomise_generator(AWConv2d(8, 6, 3, rank=rank, gate=gate, rd_ratio=1 / 2))
    x = torch.randn(3, 8, 7, 7)
    assert_rel_close(layer(x), _naive(layer, x), 1e-5, "output")
    if rank is not None:
        layer.impl = "factored"
        assert_rel_close(layer(x), _naive(layer, x), 1e-5, "factored output")


@pytest.mark.parametrize(("kernel", "padding", "size"), [(1, 0, (4, 6)), (5, 2, (6, 5)), (3, 0, (5, 5))])
def test_factored_path_equals_modulated_for_other_kernels_and_padding(
    kernel: int, padding: int, size: tuple[int, int]
) -> None:
    layer = _randomise_generator(AWConv2d(6, 10, kernel, padding=padding, bias=True, rd_ratio=1 / 2, impl="factored"))
    x = torch.randn(5, 6, *size, requires_grad=True)
    out = layer(x)
    layer.impl = "modulated"
    ref = layer(x)
    assert_rel_close(out, ref, 1e-5, "output")
    grads = torch.autograd.grad(out.square().sum(), [x, *layer.parameters()])
    ref_grads = torch.autograd.grad(ref.square().sum(), [x, *layer.parameters()])
    for (name, _), g, r in zip([("input", x), *layer.named_parameters()], grads, ref_grads, strict=True):
        assert_rel_close(g, r, 1e-5, f"grad {name}")
    assert layer(torch.randn(0, 6, *size)).shape[0] == 0


def test_auto_takes_the_factored_path_where_it_was_measured_faster() -> None:
    def factored(layer: AWConv2d, side: int, grad: bool = True, batch: int = 1) -> bool:
        with torch.set_grad_enabled(grad):
            return layer.uses_factored(torch.randn(batch, layer.in_channels, side, side))

    narrow, wide, widest = AWConv2d(64, 64), AWConv2d(256, 256), AWConv2d(512, 512)
    assert factored(narrow, 3) and not factored(narrow, 4) and not factored(narrow, 10)
    assert factored(narrow, 1, grad=False) and not factored(narrow, 2, grad=False)
    assert factored(AWConv2d(128, 128), 3, grad=False) and not factored(AWConv2d(128, 128), 4)
    assert factored(wide, 4) and factored(wide, 4, grad=False) and not factored(wide, 5)
    assert factored(widest, 5, grad=True) and not factored(widest, 5, grad=False) and not factored(widest, 7)
    assert factored(widest, 7, batch=2) and not factored(widest, 8, batch=2) and not factored(widest, 5, False, 2)
    assert not factored(AWConv2d(64, 64, attention_shape="shared"), 2)
    assert not factored(AWConv2d(64, 64, groups=4), 2) and not factored(AWConv2d(64, 64, rank=None), 2)
    assert not factored(AWConv2d(512, 512, impl="modulated"), 2) and factored(AWConv2d(8, 8, impl="factored"), 9)
    assert "impl='auto'" in repr(narrow)


@pytest.mark.parametrize("shape", ["full", "shared"])
@pytest.mark.parametrize("rank", [None, 4])
def test_identity_at_initialisation(shape: str, rank: int | None) -> None:
    layer = AWConv2d(16, 32, 3, stride=2, groups=2, bias=True, attention_shape=shape, rank=rank)
    conv = nn.Conv2d(16, 32, 3, stride=2, padding=1, groups=2, bias=True)
    conv.load_state_dict({"weight": layer.weight, "bias": layer.bias})
    x = torch.randn(4, 16, 12, 12)
    torch.testing.assert_close(layer(x), conv(x), rtol=0, atol=1e-6)
    layer(x).sum().backward()
    assert layer.fc2.weight.grad.abs().sum() > 0, "the zero-initialised generator must still learn"


def test_chunked_batches_equal_one_call() -> None:
    layer = _randomise_generator(AWConv2d(8, 12, 3, rd_ratio=1 / 2))
    x = torch.randn(7, 8, 9, 9)
    assert layer.chunk_size(x) == 4  # with autograd, at most 4 samples per call on CPU: 4 + 3
    with torch.no_grad():
        assert layer.chunk_size(x) == 7
        whole = layer(x)
    layer.max_kernel_bytes = 3 * layer.weight.numel() * 4  # three samples' kernels per call
    assert layer.chunk_size(x) == 3
    assert_rel_close(layer(x), whole, 1e-6, "chunked")
    layer.max_kernel_bytes = None
    assert layer.chunk_size(x) == 7


def test_factored_path_trains_in_chunks_of_its_product_budget() -> None:
    layer = _randomise_generator(AWConv2d(512, 512, 3, impl="factored"))
    x = torch.randn(16, 512, 7, 7, requires_grad=True)
    assert layer.factored_chunk_size(x) == 8  # 3.6 MB of products per sample, 32 MiB per call on CPU
    with torch.no_grad():
        assert layer.factored_chunk_size(x) == 16
    chunked = layer(x)
    (grad_x,) = torch.autograd.grad(chunked.square().sum(), x)
    layer.max_kernel_bytes = None
    assert layer.factored_chunk_size(x) == 16
    whole = layer(x)
    assert_rel_close(chunked, whole, 1e-6, "chunked factored output")
    assert_rel_close(grad_x, torch.autograd.grad(whole.square().sum(), x)[0], 1e-5, "chunked factored input gradient")


def test_conv2d_interface_and_padding_default() -> None:
    layer = AWConv2d(8, 16, 5, dilation=2)
    assert isinstance(layer, nn.Conv2d) and layer.padding == (4, 4) and layer.bias is None
    assert layer(torch.randn(2, 8, 10, 10)).shape == (2, 16, 10, 10)
    assert "attention_shape='full'" in repr(layer)


def test_parameter_costs_of_the_generators() -> None:
    count = lambda m: sum(p.numel() for p in m.parameters()) - m.weight.numel()  # noqa: E731
    hidden = 32  # 512 / 16
    assert count(AWConv2d(512, 512, attention_shape="shared")) == 512 * hidden + hidden + hidden * 512 + 512
    assert count(AWConv2d(512, 512, rank=4)) == 512 * hidden + hidden + (hidden + 1) * 4 * (512 + 512)
    assert count(AWConv2d(512, 512, rank=None)) == 512 * hidden + hidden + (hidden + 1) * 512 * 512


def test_bad_arguments_and_inputs() -> None:
    with pytest.raises(ValueError, match="attention_shape must be"):
        AWConv2d(8, 8, attention_shape="spatial")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gate must be one of"):
        AWConv2d(8, 8, gate="relu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rank must be"):
        AWConv2d(8, 8, rank=0)
    with pytest.raises(ValueError, match="impl must be one of"):
        AWConv2d(8, 8, impl="loop")  # type: ignore[arg-type]
    for kwargs in ({"attention_shape": "shared"}, {"rank": None}, {"groups": 2}):
        with pytest.raises(ValueError, match=r"impl='factored' needs .* Use impl='modulated' or 'auto'"):
            AWConv2d(8, 8, impl="factored", **kwargs)
    with pytest.raises(ValueError, match=r"expects input of shape \(B, 8, H, W\); got \(2, 4, 5, 5\)"):
        AWConv2d(8, 8)(torch.randn(2, 4, 5, 5))


def test_registry_placement_and_stacking_with_gates() -> None:
    info = get_attention_info("aw")
    assert (info.kind, info.position) == ("conv", "conv")
    assert isinstance(create_attention("aw", 16, 32, 3, 2), AWConv2d)
    for name in (
        "resnet50_aw",
        "resnet101_aw",
        "resnet50_aw_se",
        "resnet101_aw_se",
        "resnet50_aw_cbam",
        "resnet101_aw_cbam",
    ):
        assert name in cnnattn.list_models() and name in timm.list_models(name)
    model = timm.create_model("resnet50_aw_cbam", num_classes=5)
    assert isinstance(model.layer3[0].conv2, AWConv2d) and hasattr(model.layer3[0], "attn")
    assert [p.attention for p in model.cnnattn_placements] == ["aw", "cbam"]
    out = model(torch.randn(2, 3, 64, 64))
    out.sum().backward()
    assert model.layer3[0].conv2.fc2.weight.grad is not None


def test_plain_checkpoint_keeps_conv_weights_under_their_names() -> None:
    plain = timm.create_model("resnet50")
    model = cnnattn.create_model("resnet50_aw")
    result = model.load_state_dict(plain.state_dict(), strict=False)
    assert not result.unexpected_keys
    assert all(".conv2.fc" in k for k in result.missing_keys)
    torch.testing.assert_close(model.layer2[1].conv2.weight, plain.layer2[1].conv2.weight)


@pytest.mark.parametrize("size", [4, 12])  # the unfold + bmm path and the batch-grouped conv
def test_channels_last_model_gives_the_same_output(size: int) -> None:
    """``model.to(memory_format=torch.channels_last)`` makes the conv weight channels-last; the per-sample kernels
    formed from it are still laid out as the batched paths read them."""
    layer = AWConv2d(8, 16, 3).double()
    with torch.no_grad():
        layer.fc2.weight.normal_(0, 0.1)
    x = torch.randn(3, 8, size, size, dtype=torch.float64)
    expected = layer(x)
    layer = layer.to(memory_format=torch.channels_last)
    assert layer.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(layer(x.contiguous(memory_format=torch.channels_last)), expected)


@pytest.mark.parametrize("attention_shape, rank", [("full", 4), ("full", None), ("shared", 4)])
def test_per_sample_formulation_equals_the_reference(attention_shape: str, rank: int | None) -> None:
    """Wide layers convolve sample by sample on CPU (each kernel formed just before its convolution, in reused
    buffers without autograd): outputs and gradients equal the batch-grouped reference with fast paths off."""
    from cnnattn.fast_paths import fast_paths

    layer = AWConv2d(256, 512, 3, stride=2, attention_shape=attention_shape, rank=rank, bias=True).double()
    with torch.no_grad():
        layer.fc2.weight.normal_(0, 0.1)
        layer.fc2.bias.normal_(0, 0.1)
    x = torch.randn(3, 256, 5, 5, dtype=torch.float64, requires_grad=True)
    assert layer.weight.numel() * 8 >= 8 * 2**20  # the training threshold on CPU (float64: 9.4 MB)
    with torch.no_grad():
        assert layer.uses_per_sample(x)
        fast = layer(x)
    assert fast.is_contiguous()
    with fast_paths(False), torch.no_grad():
        assert not layer.uses_per_sample(x)
        torch.testing.assert_close(fast, layer(x))
    assert layer.uses_per_sample(x)  # with autograd too, at this size
    grads = torch.autograd.grad(layer(x).square().sum(), [x, layer.weight, layer.fc2.weight])
    with fast_paths(False):
        expected = torch.autograd.grad(layer(x).square().sum(), [x, layer.weight, layer.fc2.weight])
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("groups, channels_last", [(1, True), (4, False), (4, True)])
def test_per_sample_inference_with_groups_and_channels_last_weights(groups: int, channels_last: bool) -> None:
    """Without autograd the factorised per-sample path forms each kernel laid out channels-last: grouped layers and
    channels-last models give the reference output, in the contiguous layout."""
    from cnnattn.fast_paths import fast_paths

    layer = AWConv2d(256, 512, 3, groups=groups, bias=True).double()  # kernels of at least 1 MiB
    with torch.no_grad():
        layer.fc2.weight.normal_(0, 0.1)
    x = torch.randn(3, 256, 6, 7, dtype=torch.float64)
    with fast_paths(False), torch.no_grad():
        expected = layer(x)
    if channels_last:
        layer, x = layer.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert layer.uses_per_sample(x)
        out = layer(x)
    assert out.is_contiguous()
    torch.testing.assert_close(out, expected)
