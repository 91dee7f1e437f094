"""The pieces gates share: the fused gate-and-shortcut product, and when a module may overwrite its temporaries."""

from __future__ import annotations

import pytest
import torch

from cnnattn.attention.common import gated, may_overwrite_temporaries, samples_per_call, spatial_conv_input


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
@pytest.mark.parametrize("with_shortcut", [False, True])
def test_gated_writes_the_product_alone_into_the_named_temporary_in_inference(
    scratch: str, with_shortcut: bool
) -> None:
    x, multiplier = torch.randn(2, 3, 4, 5), torch.rand(2, 3, 4, 5)
    shortcut = torch.randn(2, 3, 4, 5) if with_shortcut else None
    expected = x * multiplier + (shortcut if with_shortcut else 0)
    owned = {"x": x, "multiplier": multiplier}[scratch]
    with torch.no_grad():
        out = gated(x, multiplier, shortcut, scratch=scratch)
    assert (out.data_ptr() == owned.data_ptr()) == (not with_shortcut)  # with a shortcut: addcmul, fresh
    torch.testing.assert_close(out, expected)


def test_gated_with_autograd_equals_the_product_plus_shortcut_in_value_and_gradient() -> None:
    x, multiplier = torch.randn(2, 3, 4, 5, requires_grad=True), torch.rand(2, 3, 1, 1, requires_grad=True)
    shortcut = torch.randn(2, 3, 4, 5, requires_grad=True)
    out = gated(x, multiplier, shortcut, scratch="x")  # autograd records: nothing is overwritten
    expected = x * multiplier + shortcut
    torch.testing.assert_close(out, expected)
    grad = torch.randn_like(out)
    for a, b in zip(torch.autograd.grad(out, [x, multiplier, shortcut], grad),
                    torch.autograd.grad(expected, [x, multiplier, shortcut], grad), strict=True):  # fmt: skip
        torch.testing.assert_close(a, b)


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
    seen = []

    def record(t: torch.Tensor) -> torch.Tensor:
        seen.append(samples_per_call(t, 100, 350))
        return t * 2

    torch.jit.trace(record, x, check_trace=False)
    assert seen == [7]
