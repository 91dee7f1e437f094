"""cnnattn.fast_paths: its predicates, the gate product's in-place write, and the one switch under which every module
runs its reference formula with the same outputs."""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import pytest
import torch

import cnnattn
from cnnattn.attention import create_attention, get_attention_info, list_attention
from cnnattn.attention.common import gated
from cnnattn.fast_paths import (
    fast_paths,
    fast_paths_enabled,
    may_overwrite_temporaries,
    residual_in_place,
    samples_per_call,
    spatial_conv_input,
)
from cnnattn.ops import deform_conv2d


@pytest.mark.filterwarnings("ignore:`torch.jit.trace` is deprecated")
def test_may_overwrite_temporaries_only_in_eager_inference() -> None:
    assert not may_overwrite_temporaries()
    with torch.no_grad():
        assert may_overwrite_temporaries()
    seen = []

    def record(x: torch.Tensor) -> torch.Tensor:
        seen.append(may_overwrite_temporaries())
        return x * 2

    with torch.no_grad():
        torch.jit.trace(record, torch.randn(2), check_trace=False)
    assert seen == [False]


@pytest.mark.parametrize("scratch", ["x", "multiplier"])
def test_gated_writes_the_product_into_the_named_temporary_in_inference_only(scratch: str) -> None:
    x, multiplier = torch.randn(2, 3, 4, 5), torch.rand(2, 3, 4, 5)
    expected = x * multiplier
    owned = {"x": x, "multiplier": multiplier}[scratch]
    with torch.no_grad():
        out = gated(x, multiplier, scratch=scratch)
    assert out.data_ptr() == owned.data_ptr()
    torch.testing.assert_close(out, expected)
    with torch.no_grad(), fast_paths(False):
        assert gated(x, multiplier, scratch=scratch).data_ptr() not in (x.data_ptr(), multiplier.data_ptr())
    x.requires_grad_()
    assert gated(x, multiplier, scratch="x").data_ptr() != x.data_ptr()  # autograd records: nothing is overwritten


def test_spatial_conv_input_is_channels_last_only_when_training_on_cpu() -> None:
    pooled = torch.randn(2, 2, 6, 7)
    assert spatial_conv_input(pooled) is pooled
    trained = spatial_conv_input(pooled.requires_grad_())
    assert trained.is_contiguous(memory_format=torch.channels_last) and torch.equal(trained, pooled)
    with torch.no_grad():
        assert spatial_conv_input(pooled) is pooled


@pytest.mark.filterwarnings("ignore:`torch.jit.trace` is deprecated")
def test_samples_per_call_fits_the_budget_on_cpu_and_takes_the_whole_batch_when_traced() -> None:
    x = torch.randn(7, 3)
    assert samples_per_call(x, 100, 350) == 3
    assert samples_per_call(x, 100, 50) == 1  # at least one sample, however large
    assert samples_per_call(x, 100, 10_000) == 7
    assert samples_per_call(x, 100, None) == 7
    assert samples_per_call(x, 100, 600) == 4  # 6 fit: two calls of equal size, 4 + 3
    assert samples_per_call(x, 100, None, most=2) == 2
    assert samples_per_call(x, 100, 10_000, most=5) == 4
    seen = []

    def record(t: torch.Tensor) -> torch.Tensor:
        seen.append(samples_per_call(t, 100, 350))
        return t * 2

    torch.jit.trace(record, x, check_trace=False)
    assert seen == [7]


def assert_close_to_reference(fast: torch.Tensor, reference: torch.Tensor) -> None:
    """Equal up to float32 rounding: within 1e-5 relative, and 1e-5 of the tensor's largest magnitude absolute (a
    gradient summed over B·H·W in another order, e.g. channels-last, differs in its last digits)."""
    scale = max(1.0, float(reference.detach().abs().max())) if reference.numel() else 1.0
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-5 * scale)


def _live(module: torch.nn.Module) -> torch.nn.Module:
    """The module with every parameter moved off its initialisation (zero-initialised offsets and attention
    generators included), so that each path computes something."""
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return module


def _run(module: torch.nn.Module, x: torch.Tensor, train: bool) -> list[torch.Tensor]:
    """Output and, in training, the input's gradient and every parameter's, of a fresh copy of ``module``."""
    module = copy.deepcopy(module).train(train)
    x = x.clone().requires_grad_(train)
    with torch.set_grad_enabled(train):
        out = module(x)
    if not train:
        return [out]
    weight = torch.linspace(-1, 1, out.numel()).view_as(out)
    grads = torch.autograd.grad((out * weight).sum(), [x, *module.parameters()], allow_unused=True)
    return [out, *(g for g in grads if g is not None)]


# Sizes on which the fast paths are taken on CPU: DAS's channels-last DSC from 32×32, AW's batched matmul and factored
# path on small maps, the chunked batch with a budget of one sample; the rest at one size.
CASES = [
    pytest.param(info.name, size, kwargs, id=f"{info.name}-{size}{'-chunked' if kwargs else ''}")
    for info in list_attention()
    for size, kwargs in (
        [(2, {}), (6, {}), (12, {}), (12, {"max_kernel_bytes": 1})] if info.name == "aw"
        else [(12, {}), (12, {"max_attention_bytes": 1})] if info.name == "aa"
        else [(12, {})] if info.kind == "conv"
        else [(32, {})]
    )
]  # fmt: skip


@pytest.mark.parametrize("train", [False, True], ids=["infer", "train"])
@pytest.mark.parametrize(("name", "size", "kwargs"), CASES)
def test_every_attention_gives_the_fast_paths_outputs_with_fast_paths_off(
    name: str, size: int, kwargs: dict, train: bool
) -> None:
    info = get_attention_info(name)
    channels = 32
    args = (channels, channels) if info.kind == "conv" else (channels,)
    module = _live(create_attention(name, *args, **kwargs))
    x = torch.randn(3, channels, size, size + 1)
    fast = _run(module, x, train)
    with fast_paths(False):
        reference = _run(module, x, train)
    assert len(fast) == len(reference)
    for a, b in zip(fast, reference, strict=True):
        assert_close_to_reference(a, b)


@pytest.mark.parametrize("train", [False, True], ids=["infer", "train"])
@pytest.mark.parametrize(("groups", "size"), [(1, 6), (1, 16), (2, 6)])
def test_the_deformable_op_gives_the_fast_paths_outputs_with_fast_paths_off(
    groups: int, size: int, train: bool
) -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 8, size, size, requires_grad=train)
    weight = torch.randn(6, 8 // groups, 3, 3, requires_grad=train)
    offset = torch.randn(3, 18, size, size, requires_grad=train)
    mask, bias = torch.rand(3, 9, size, size), torch.randn(6, requires_grad=train)
    inputs = [x, weight, offset, bias]

    def run() -> list[torch.Tensor]:
        with torch.set_grad_enabled(train):
            out = deform_conv2d(x, offset, weight, bias, 1, 1, 1, mask, impl="sampled", max_chunk_bytes=1)
        return [out, *torch.autograd.grad(out.square().sum(), inputs)] if train else [out]

    fast = run()
    with fast_paths(False):
        reference = run()
    for a, b in zip(fast, reference, strict=True):
        assert_close_to_reference(a, b)


def test_set_fast_paths_and_the_environment_variable_switch_every_module() -> None:
    x = torch.randn(2, 2, 6, 7, requires_grad=True)
    try:
        cnnattn.set_fast_paths(False)
        assert not fast_paths_enabled() and spatial_conv_input(x) is x
        with fast_paths(True):
            assert fast_paths_enabled()
    finally:
        cnnattn.set_fast_paths(True)
    assert fast_paths_enabled()
    code = "import cnnattn.fast_paths as f; print(f.fast_paths_enabled())"
    env = {**os.environ, "CNNATTN_FAST_PATHS": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_residual_in_place_only_where_autograd_does_not_read_the_output() -> None:
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    norm = torch.nn.BatchNorm2d(3)
    assert residual_in_place(x * torch.rand(2, 3, 1, 1))  # a gate's product
    assert residual_in_place(norm(x))  # torchvision's out += identity
    assert not residual_in_place(torch.sigmoid(x))  # sigmoid's backward reads its output
    assert not residual_in_place(x)  # a leaf
    with torch.no_grad():
        assert residual_in_place(torch.sigmoid(x))
    with fast_paths(False):
        assert not residual_in_place(x * 2)
