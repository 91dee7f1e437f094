"""Explicitly modeled attention maps (Tan, Nguyen, Dax, Nießner, Brox, AAAI 2021, arXiv 2006.07872).

Known: self-attention whose map is not computed from the content but is a simple function of the distance
between positions with a single learnable parameter (the radius); no query, key or positional encoding;
the map averages a value tensor. Assumed here (docs/eam.md), each an argument: softmax normalisation over all
positions, the AA layout (a k×k conv of C_out − d_v channels concatenated with d_v = υ·C_out attention
channels, υ = 0.1), one radius per layer (per head as an option), distances in feature-map pixels, the
initial radius, and the distance functions beyond the Gaussian.

Exact fast path: every distance function here has separable logits, l(p, q) = l_y(p_y, q_y) + l_x(p_x, q_x), so the
softmax over all positions factorises, A = A_y ⊗ A_x, and out[c] = A_y · V[c] · A_xᵀ costs
O(C·H·W·(H + W)) time and O(H² + W²) memory instead of O(C·(H·W)²) and O((H·W)²).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.shapes import ceil_div
from .augmented_conv import AugmentedConv2d, attention_channels, query_positions
from .common import Query, to_factory
from .registry import register_attention

__all__ = ["DISTANCE_FNS", "ExplicitAttentionConv2d", "axis_logits"]

DistanceFn = Literal["gaussian", "laplacian", "box"]
DISTANCE_FNS: tuple[str, ...] = ("gaussian", "laplacian", "box")


def axis_logits(
    distance_fn: str, queries: torch.Tensor, keys: torch.Tensor, radius: torch.Tensor, box_temperature: float = 0.1
) -> torch.Tensor:
    """Per-axis logits (R, N_q, N_k) for radii (R,) between query and key coordinates (pixels).

    gaussian: −d²/(2σ²) (L2 distance overall); laplacian: −|d|/σ (L1 overall); box: log σ((σ + ½ − |d|)/τ),
    a box of half-width σ + ½ in L∞ distance whose edges are smoothed over τ pixels so σ gets gradients.
    """
    d = (queries[:, None] - keys[None, :]).abs().unsqueeze(0)  # (1, N_q, N_k)
    r = radius.view(-1, 1, 1)
    if distance_fn == "gaussian":
        return -(d * d) / (2 * r * r)
    if distance_fn == "laplacian":
        return -d / r
    return F.logsigmoid((r + 0.5 - d) / box_temperature)


@register_attention(
    "eam",
    kind="conv",
    description="Explicit (Gaussian) attention map, one learnable radius, exact separable path (Tan et al. 2021).",
    stages=(2, 3, 4),
    grouped=False,
)
class ExplicitAttentionConv2d(AugmentedConv2d):
    """k×k conv (C_out − d_v) ∥ explicit-attention branch (d_v), (B, C_in, H, W) -> (B, C_out, H', W').

    The branch: V = 1×1 conv (d_v), split into ``num_heads`` heads; out = A · V with A the softmax over all
    H·W positions of distance logits with radius σ; then a 1×1 projection d_v → d_v.

    Args:
        in_channels, out_channels, kernel_size, stride: As the convolution it replaces.
        distance_fn: How the map falls off with distance: ``'gaussian'`` (default), ``'laplacian'`` (L1
            distance) or ``'box'`` (L∞ distance).
        value_ratio: υ = d_v / C_out (0.1), the attention branch's share of the output channels (as in AA).
        num_heads: Heads of the value tensor.
        per_head_radius: One radius per head instead of one per layer.
        init_radius: Initial σ in feature-map pixels (assumed 2.0).
        box_temperature: Edge width τ of the box kernel, in pixels.
        impl: ``'separable'`` (exact, linear cost) or ``'dense'`` (the full (H'W' × HW) map; reference).
        device, dtype: Where and in which precision to create the parameters (timm's factory keywords).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        *,
        distance_fn: DistanceFn = "gaussian",
        value_ratio: float = 0.1,
        num_heads: int = 1,
        per_head_radius: bool = False,
        init_radius: float = 2.0,
        box_temperature: float = 0.1,
        impl: Literal["separable", "dense"] = "separable",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if distance_fn not in DISTANCE_FNS:
            raise ValueError(
                f"ExplicitAttentionConv2d: distance_fn must be one of {DISTANCE_FNS}; got {distance_fn!r}."
            )
        if impl not in ("separable", "dense"):
            raise ValueError(f"ExplicitAttentionConv2d: impl must be 'separable' or 'dense'; got {impl!r}.")
        if init_radius <= 0:
            raise ValueError(f"ExplicitAttentionConv2d: init_radius must be > 0 pixels; got {init_radius}.")
        super().__init__(
            in_channels, out_channels, kernel_size, stride, attention_channels(out_channels, value_ratio, num_heads)
        )
        self.distance_fn, self.num_heads, self.box_temperature = distance_fn, num_heads, box_temperature
        self.impl = impl
        self.log_radius = nn.Parameter(torch.full((num_heads if per_head_radius else 1,), math.log(init_radius)))
        to_factory(self, device, dtype)

    @property
    def radius(self) -> torch.Tensor:
        """σ in pixels, (1,) or (num_heads,); positive by construction (exp of a free parameter)."""
        return self.log_radius.exp()

    def axis_maps(
        self, height: int, width: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A_y (R, H', H) and A_x (R, W', W): row-stochastic per-axis maps."""
        return tuple(torch.softmax(self._logits(size, device, dtype), dim=-1) for size in (height, width))

    def _logits(self, size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        keys = torch.arange(size, device=device, dtype=dtype)
        queries = query_positions(size, self.stride, device, dtype)
        return axis_logits(self.distance_fn, queries, keys, self.radius.to(dtype), self.box_temperature)

    def dense_map(self, height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """The full map A (R, H'·W', H·W): softmax over all positions of the summed per-axis logits."""
        ly, lx = self._logits(height, device, dtype), self._logits(width, device, dtype)
        logits = ly[:, :, None, :, None] + lx[:, None, :, None, :]  # (R, H', W', H, W)
        rows = ly.shape[1] * lx.shape[1]
        return torch.softmax(logits.reshape(-1, rows, height * width), dim=-1)

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """The map the branch applies at ``x``'s size, (R, H'·W', H·W) with R radii; rows sum to 1. It does not
        depend on the content of ``x``."""
        return self.dense_map(x.shape[-2], x.shape[-1], x.device, x.dtype)

    def attention_parts(self, x: torch.Tensor, query: Query = (0.5, 0.5)) -> dict[str, torch.Tensor]:
        """``rows`` (R, H, W), the Gaussian (or box) map of the output position at ``query``, and ``radius`` (R,),
        the learned σ in pixels of this layer's input."""
        return {**super().attention_parts(x, query), "radius": self.radius.detach()}

    def attend(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = v.shape
        heads = v.unflatten(1, (self.num_heads, -1))
        radii = self.log_radius.shape[0]
        if self.impl == "dense":
            attn = self.dense_map(height, width, v.device, v.dtype)  # (R, H'W', HW)
            out = heads.flatten(3) @ attn.transpose(-1, -2).unsqueeze(0)  # (B, h, c, H'W')
            return out.view(batch, self.d_v, ceil_div(height, self.stride), ceil_div(width, self.stride))
        a_y, a_x = self.axis_maps(height, width, v.device, v.dtype)
        rows = a_y.view(1, radii, 1, *a_y.shape[1:]) @ heads  # (B, h, c, H', W)
        out = rows @ a_x.view(1, radii, 1, *a_x.shape[1:]).transpose(-1, -2)  # (B, h, c, H', W')
        return out.reshape(batch, self.d_v, *out.shape[-2:])

    def dense_equivalent_macs(self, input: torch.Tensor, output: torch.Tensor) -> int:
        """MACs of this layer with the map applied densely (the paper-table convention): conv + value +
        projection + A·V over all H'W' × HW position pairs."""
        batch, _, height, width = input.shape
        out_pixels = output.shape[-2] * output.shape[-1]
        conv = (self.out_channels - self.d_v) * self.in_channels * self.kernel_size**2 * out_pixels
        value = self.d_v * self.in_channels * height * width
        proj = self.d_v * self.d_v * out_pixels
        return batch * (conv + value + proj + self.d_v * out_pixels * height * width)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"d_v={self.d_v}, distance_fn={self.distance_fn!r}, heads={self.num_heads}, impl={self.impl!r}"
        )
