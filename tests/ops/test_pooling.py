"""Adaptive average pooling by matrix products equals PyTorch's, at every size (the exported AW path uses it)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnattn.ops.pooling import adaptive_avg_pool2d_matmul, max_along, pooling_matrix, zpools


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 7), st.integers(1, 7))
def test_equals_adaptive_avg_pool2d(height: int, width: int, out_h: int, out_w: int) -> None:
    x = torch.randn(2, 3, height, width, dtype=torch.float64)
    expected = F.adaptive_avg_pool2d(x, (out_h, out_w))
    torch.testing.assert_close(adaptive_avg_pool2d_matmul(x, (out_h, out_w)), expected, rtol=1e-12, atol=1e-12)


def test_windows_overlap_as_pytorchs_do() -> None:
    # 5 values into 3 cells: [0, 2), [1, 4), [3, 5) — rows 1 and 3 are shared.
    matrix = pooling_matrix(5, 3, torch.empty(0))
    expected = torch.tensor([[1 / 2, 1 / 2, 0, 0, 0], [0, 1 / 3, 1 / 3, 1 / 3, 0], [0, 0, 0, 1 / 2, 1 / 2]])
    torch.testing.assert_close(matrix, expected)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_max_along_equals_amax_in_value_and_gradient_where_the_maximum_is_unique(dim: int) -> None:
    x = torch.randn(2, 5, 4, 6, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(x.amax(dim).shape, dtype=torch.float64)
    ours = torch.autograd.grad((max_along(x, dim) * weights).sum(), x)[0]
    reference = torch.autograd.grad((x.amax(dim) * weights).sum(), x)[0]
    assert torch.equal(max_along(x, dim), x.amax(dim)) and torch.equal(ours, reference)
    assert max_along(x, dim, keepdim=True).shape == x.amax(dim, keepdim=True).shape


def test_max_along_gives_a_tie_the_whole_gradient_on_one_maximum_as_max_pool2d() -> None:
    x = torch.zeros(1, 3, 1, 1, requires_grad=True)  # a three-way tie along dim 1
    grad = torch.autograd.grad(max_along(x, 1).sum(), x)[0]
    assert grad.sum() == 1 and grad.count_nonzero() == 1


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_max_along_without_autograd_is_amax(dim: int) -> None:
    x = torch.randn(2, 5, 4, 6, requires_grad=True)
    with torch.no_grad():
        assert torch.equal(max_along(x, dim), x.amax(dim))
        assert torch.equal(max_along(x, dim, keepdim=True), x.amax(dim, keepdim=True))
    assert torch.equal(max_along(x.detach(), dim), x.amax(dim))


def _six_reductions(x: torch.Tensor, dims: tuple[int, ...]) -> list[torch.Tensor]:
    return [torch.stack([max_along(x, d), x.mean(dim=d)], dim=1) for d in dims]


@pytest.mark.parametrize("dims", [(1,), (2, 3), (2, 3, 1)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_zpools_equals_max_and_mean_per_dim_in_values_and_gradients(dims: tuple[int, ...], channels_last: bool) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 5, 4, 6, dtype=torch.float64)
    x = x.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format).requires_grad_()
    ours, reference = zpools(x, dims), _six_reductions(x, dims)
    grads = [torch.randn_like(r) for r in reference]
    (ours_grad,) = torch.autograd.grad(ours, x, grads)
    (reference_grad,) = torch.autograd.grad(reference, x, grads)
    for got, want in zip(ours, reference, strict=True):
        assert torch.equal(got, want)
    torch.testing.assert_close(ours_grad, reference_grad, rtol=1e-12, atol=1e-12)
    assert ours_grad.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    assert ours[0].grad_fn is not None and type(ours[0].grad_fn).__name__ == "_ZPoolsBackward"


def test_zpools_passes_gradcheck_and_names_bad_dims() -> None:
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: zpools(t, (2, 3, 1)), (x,))
    with pytest.raises(ValueError, match="dims 1..3"):
        zpools(x, (0,))
