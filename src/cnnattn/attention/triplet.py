"""Triplet attention (Misra, Nalamada, Arasanipalai, Hou, WACV 2021)."""

from __future__ import annotations

from functools import partial

import torch
from timm.layers import ConvNormAct
from torch import nn

from .common import to_factory
from .registry import register_attention


class ZPool(nn.Module):
    """Concatenate max and mean over dim 1: (B, D, P, Q) -> (B, 2, P, Q)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)


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
        return torch.sigmoid(self.conv(self.pool(x)))

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

    def _cw(self, x: torch.Tensor) -> torch.Tensor:
        return self.cw.gate(x.permute(0, 2, 1, 3)).permute(0, 2, 1, 3)  # (B, C, 1, W)

    def _hc(self, x: torch.Tensor) -> torch.Tensor:
        return self.hc.gate(x.permute(0, 3, 2, 1)).permute(0, 3, 2, 1)  # (B, C, H, 1)

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """The multiplier ``forward`` applies: the mean of the branches' gates, (B, C, H, W) in (0, 1)."""
        gates = self._cw(x) + self._hc(x)
        if self.hw is not None:
            return (gates + self.hw.gate(x)) / 3  # + (B, 1, H, W)
        return gates / 2

    @torch.jit.unused
    def attention_parts(self, x: torch.Tensor, query: tuple[float, float] = (0.5, 0.5)) -> dict[str, torch.Tensor]:
        """For pictures, each branch's gate in (0, 1): ``cw`` (B, C, 1, W), ``hc`` (B, C, H, 1), ``hw``
        (B, 1, H, W) unless dropped, and ``map`` (B, C, H, W), the mean ``forward`` applies; ``query`` is unused."""
        parts = {"cw": self._cw(x), "hc": self._hc(x)}
        if self.hw is not None:
            parts["hw"] = self.hw.gate(x)
        gates = list(parts.values())  # the mean as attention_map forms it, without running the branches again
        return {**parts, "map": sum(gates[1:], gates[0]) / len(gates)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention_map(x)
