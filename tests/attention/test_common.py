"""The pieces gates share: the fused gate-and-shortcut product, and when a module may overwrite its temporaries."""

from __future__ import annotations

import pytest
import torch

from cnnattn.attention.common import gated, may_overwrite_temporaries, spatial_conv_input


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
