"""Triplet attention (Misra, Nalamada, Arasanipalai, Hou, WACV 2021)."""

from __future__ import annotations

from functools import partial

import torch
from timm.layers import ConvNormAct
from torch import nn

from ..fast_paths import compiling, fast_paths_enabled, spatial_conv_input
from ..ops.pooling import max_along, zpools
from .common import gated, to_factory
from .registry import register_attention

torch.fx.wrap("gated")  # a leaf of torch.fx tracing: the in-place choice is made when the graph runs


class ZPool(nn.Module):
    """Concatenate max and mean over dim 1: (B, D, P, Q) -> (B, 2, P, Q)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([max_along(x, 1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)


class ZPoolGate(nn.Module):
    """Z-pool over dim 1 → k×k conv 2→1 → BN → sigmoid, multiplied into the input (B, D, P, Q)."""

    def __init__(
        self,
        kernel_size: int = 7,
        bn_momentum: float = 0.01,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.pool = ZPool()
        norm = partial(nn.BatchNorm2d, momentum=bn_momentum)
        self.conv = ConvNormAct(2, 1, kernel_size, norm_layer=norm, apply_act=False)
        to_factory(self, device, dtype)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The sigmoid map, (B, 1, P, Q) in (0, 1)."""
        return self.gate_pooled(self.pool(x))

    def gate_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        """The sigmoid map of an already Z-pooled input (B, 2, P, Q): (B, 1, P, Q) in (0, 1), contiguous."""
        return torch.sigmoid(self.conv(spatial_conv_input(pooled)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


@register_attention("triplet")
class TripletAttention(nn.Module):
    """Triplet attention: three rotated Z-pool gates over (C,W), (H,C), (H,W), averaged (Misra et al. 2021).

    Branch ``cw`` pools over H and gates each (C, W) position; ``hc`` pools over W and gates (H, C);
    ``hw`` pools over C and gates (H, W) (dropped with ``no_spatial=True``, the paper's ablation). No
    parameter depends on the channel count; ``channels`` is accepted for the registry contract. The mean of
    the three gated tensors is X ⊙ mean(gates), computed that way: one full-size product instead of three.

    Args:
        channels: Input channels (unused).
        kernel_size: Size of each branch's conv (paper: 7).
        no_spatial: Average only the two cross-dimension branches.
        bn_momentum: BatchNorm momentum of the branches (the official code uses 0.01).
        device, dtype: Where and in which precision to create the parameters (timm's factory keywords).
    """

    def __init__(
        self,
        channels: int | None = None,
        kernel_size: int = 7,
        no_spatial: bool = False,
        bn_momentum: float = 0.01,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.cw = ZPoolGate(kernel_size, bn_momentum, **dd)
        self.hc = ZPoolGate(kernel_size, bn_momentum, **dd)
        self.hw = None if no_spatial else ZPoolGate(kernel_size, bn_momentum, **dd)

    def _pools(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Z-pools of (B, C, H, W) ``x`` over H (B, 2, C, W), over W (B, 2, C, H) and, unless dropped, over C
        (B, 2, H, W): in training eager through :func:`~cnnattn.ops.pooling.zpools`, whose one backward writes
        X's gradient once; elsewhere (no autograd, fast paths off, TorchScript, export, tracing, compile) as six
        reductions."""
        dims = (2, 3) if self.hw is None else (2, 3, 1)
        if torch.jit.is_scripting():
            return [torch.stack([max_along(x, d), x.mean(dim=d)], dim=1) for d in dims]
        return self._pools_eager(x, dims)

    @torch.jit.unused
    def _pools_eager(self, x: torch.Tensor, dims: tuple[int, ...]) -> list[torch.Tensor]:
        if fast_paths_enabled() and not compiling() and torch.is_grad_enabled() and x.requires_grad:
            return zpools(x, dims)
        return [torch.stack([max_along(x, d), x.mean(dim=d)], dim=1) for d in dims]

    def _gates(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each branch's gate, contiguous: ``cw`` (B, C, 1, W), ``hc`` (B, C, H, 1), ``hw`` (B, 1, H, W) unless
        dropped. No permuted copy of X: the H- and W-pooled maps are gated as (C, W) and (H, C) images."""
        pools = self._pools(x)
        batch, channels, height = x.shape[0], x.shape[1], x.shape[2]
        gates = [
            self.cw.gate_pooled(pools[0]).transpose(1, 2),  # (B, 1, C, W) → (B, C, 1, W), the same memory
            self.hc.gate_pooled(pools[1].transpose(2, 3)).transpose(2, 3).reshape(batch, channels, height, 1),
        ]
        if self.hw is not None:
            gates.append(self.hw.gate_pooled(pools[2]))  # (B, 1, H, W)
        return gates

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """The multiplier ``forward`` applies: the mean of the branches' gates, (B, C, H, W) in (0, 1).

        The 1/n of the mean is taken on the small gates (an ``alpha`` of ``add`` would scale the full-size
        gradient in backward), and the full-size sum is formed once and added to in place: two passes over
        (B, C, H, W) instead of three, and every gate contiguous, so the sum and the product with X keep X's
        layout."""
        gates = self._gates(x)
        weight = 1.0 / len(gates)
        gates = [gate * weight for gate in gates]
        total = torch.add(gates[0], gates[1])  # (B, C, 1, W) + (B, C, H, 1): the one full-size sum
        if len(gates) == 3:
            total = total.add_(gates[2])
        return total

    @torch.jit.unused
    def attention_parts(self, x: torch.Tensor, query: tuple[float, float] = (0.5, 0.5)) -> dict[str, torch.Tensor]:
        """For pictures, each branch's gate in (0, 1): ``cw`` (B, C, 1, W), ``hc`` (B, C, H, 1), ``hw``
        (B, 1, H, W) unless dropped, and ``map`` (B, C, H, W), the mean ``forward`` applies; ``query`` is unused."""
        gates = self._gates(x)
        parts = dict(zip(("cw", "hc", "hw"), gates, strict=False))
        return {**parts, "map": sum(gates[1:], gates[0]) / len(gates)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gated(x, self.attention_map(x), scratch="multiplier")  # the map is this call's own
