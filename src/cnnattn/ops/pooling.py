"""Pooling pieces: the maximum along one dim with a cheap backward, and adaptive average pooling as two matrix
products, for export with symbolic spatial sizes.

``max_along`` is ``x.amax(dim)`` whose gradient goes to one maximum (as ``max_pool2d``'s does) instead of being
shared among ties: its backward is a scatter into the input's shape, where ``amax``'s builds an equality mask, counts
and divides (several full-size passes). Outputs are equal; gradients are equal wherever the maximum is unique.
Without autograd it is plain ``amax`` (finding the indices is what makes ``max(dim)`` slow).

``zpools`` is Z-pooling (max and mean) of one tensor along several dims, as triplet attention does along C, H and
W, with one backward for all of them: where autograd gives each of the six reductions its own full-size gradient
(a zero fill and scatter per maximum, a broadcast division per mean) and then adds the six together, it forms the
three means' gradients in one full-size buffer and scatters the maxima into it in place: two passes over the input's
size instead of about twelve. Outputs and gradients equal the six reductions' (up to the order of float sums).

``torch.onnx`` lowers ``adaptive_avg_pool2d`` to gathers whose indices are fixed at the example size, so an
artefact exported with a dynamic height and width reads out of range at any other size. Here the pooling
windows are built from the input's (possibly symbolic) size, with PyTorch's own window rule: output cell ``i`` of
``k`` averages rows ``floor(i·n/k)`` to ``ceil((i+1)·n/k)`` (exclusive).
"""

from __future__ import annotations

import torch

from ..fast_paths import fast_paths_enabled

__all__ = ["adaptive_avg_pool2d_matmul", "max_along", "pooling_matrix", "spatial_max", "zpools"]


def max_along(x: torch.Tensor, dim: int, keepdim: bool = False) -> torch.Tensor:
    """The maximum of ``x`` along ``dim`` (``x.amax(dim)``), differentiated as ``max_pool2d`` is: the whole
    gradient to one maximum. Where no gradient is recorded it is ``amax`` itself, which finds no indices and is
    2-3× faster on CPU (docs/benchmarks.md). With fast paths off (:mod:`cnnattn.fast_paths`) it is ``amax``, whose
    gradient is shared among tied maxima."""
    if fast_paths_enabled() and torch.is_grad_enabled() and x.requires_grad:
        return torch.max(x, dim=dim, keepdim=keepdim)[0]
    return x.amax(dim=dim, keepdim=keepdim)


def spatial_max(x: torch.Tensor) -> torch.Tensor:
    """The maximum of (B, C, H, W) ``x`` over H and W, (B, C, 1, 1): :func:`max_along` over W, then H, where a
    gradient is recorded (the gradient to one maximum, no flattened copy of a channels-last ``x``), else one
    ``amax`` over both dims."""
    if fast_paths_enabled() and torch.is_grad_enabled() and x.requires_grad:
        return max_along(max_along(x, 3, keepdim=True), 2, keepdim=True)
    return x.amax(dim=(2, 3), keepdim=True)


class _ZPools(torch.autograd.Function):
    """Forward: for each dim d, max and mean of x along d stacked as (B, 2, …x's other dims); backward: see zpools."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, dims: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
        pooled, indices = [], []
        for dim in dims:
            peak, index = torch.max(x, dim=dim)
            pooled.append(torch.stack([peak, x.mean(dim=dim)], dim=1))
            indices.append(index)
        ctx.save_for_backward(*indices)
        channels_last = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        ctx.layout = torch.channels_last if channels_last else torch.contiguous_format
        ctx.dims, ctx.shape, ctx.dtype, ctx.device = dims, x.shape, x.dtype, x.device
        return tuple(pooled)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grads: torch.Tensor) -> tuple[torch.Tensor, None]:
        grad_x = torch.empty(ctx.shape, dtype=ctx.dtype, device=ctx.device, memory_format=ctx.layout)
        means = [(grad[:, 1] / ctx.shape[dim]).unsqueeze(dim) for grad, dim in zip(grads, ctx.dims, strict=True)]
        if len(means) == 1:
            grad_x.copy_(means[0])
        else:
            torch.add(means[0], means[1], out=grad_x)
            for mean in means[2:]:
                grad_x.add_(mean)
        for grad, dim, index in zip(grads, ctx.dims, ctx.saved_tensors, strict=True):
            grad_x.scatter_add_(dim, index.unsqueeze(dim), grad[:, 0].unsqueeze(dim))
        return grad_x, None


def zpools(x: torch.Tensor, dims: tuple[int, ...]) -> list[torch.Tensor]:
    """Z-pools of ``x`` (B, D1, D2, …) along each of ``dims`` (each ≥ 1): per dim d, ``torch.stack([max, mean],
    dim=1)`` of ``x`` along d, (B, 2, …the other dims…). The maxima are differentiated as :func:`max_along`'s (the
    gradient to one maximum); the backward of all of them writes the input's gradient once (module docstring).

    An autograd function: where no gradient is recorded, or where a graph is captured (export, tracing, compile)
    call ``max_along`` and ``mean`` instead, as :class:`cnnattn.attention.triplet.TripletAttention` does."""
    if not dims or any(not 1 <= dim < x.dim() for dim in dims):
        raise ValueError(f"zpools pools along dims 1..{x.dim() - 1} of a {x.dim()}-d tensor; got dims {dims}.")
    return list(_ZPools.apply(x, tuple(dims)))


def pooling_matrix(length: int | torch.SymInt, size: int, like: torch.Tensor) -> torch.Tensor:
    """(size, length) averaging matrix of adaptive average pooling of ``length`` values into ``size`` cells."""
    cells = torch.arange(size, device=like.device).unsqueeze(1)
    positions = torch.arange(length, device=like.device).unsqueeze(0)
    start, end = (cells * length) // size, ((cells + 1) * length + size - 1) // size
    window = ((positions >= start) & (positions < end)).to(like.dtype)
    return window / window.sum(1, keepdim=True)


def adaptive_avg_pool2d_matmul(x: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(x, output_size)`` for (B, C, H, W) ``x`` as P_h · x · P_wᵀ: (B, C, *output_size)."""
    rows = pooling_matrix(x.shape[-2], output_size[0], x)
    cols = pooling_matrix(x.shape[-1], output_size[1], x)
    return rows @ x @ cols.transpose(0, 1)
