"""Pooling pieces: the maximum along one dim with a cheap backward, and adaptive average pooling as two matrix
products, for export with symbolic spatial sizes.

``max_along`` is ``x.amax(dim)`` whose gradient goes to one maximum (as ``max_pool2d``'s does) instead of being
shared among ties: its backward is a scatter into the input's shape, where ``amax``'s builds an equality mask, counts
and divides (several full-size passes). Outputs are equal; gradients are equal wherever the maximum is unique.
Without autograd it is plain ``amax`` (finding the indices is what makes ``max(dim)`` slow).

``torch.onnx`` lowers ``adaptive_avg_pool2d`` to gathers whose indices are fixed at the example size, so an
artefact exported with a dynamic height and width reads out of range at any other size. Here the pooling
windows are built from the input's (possibly symbolic) size, with PyTorch's own window rule: output cell ``i`` of
``k`` averages rows ``floor(i·n/k)`` to ``ceil((i+1)·n/k)`` (exclusive).
"""

from __future__ import annotations

import torch

__all__ = ["adaptive_avg_pool2d_matmul", "max_along", "pooling_matrix"]


def max_along(x: torch.Tensor, dim: int, keepdim: bool = False) -> torch.Tensor:
    """The maximum of ``x`` along ``dim`` (``x.amax(dim)``), differentiated as ``max_pool2d`` is: the whole
    gradient to one maximum. Where no gradient is recorded it is ``amax`` itself, which finds no indices and is
    2-3× faster on CPU (docs/benchmarks.md)."""
    if torch.is_grad_enabled() and x.requires_grad:
        return torch.max(x, dim=dim, keepdim=keepdim)[0]
    return x.amax(dim=dim, keepdim=keepdim)


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
