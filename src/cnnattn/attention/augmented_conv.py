"""The attention-augmented convolution layout shared by AA (Bello et al. 2019) and explicit attention maps.

A k×k convolution gives C_out − d_v channels; an attention branch gives d_v: value projection (1×1 conv),
attention over all H·W input positions, output projection (1×1 conv d_v → d_v); the two are concatenated.

Stride: the attention branch places its queries on the convolution's output grid, so query (i, j) sits
at input pixel (i·s, j·s), the centre of the conv's receptive field for padding (k − 1)/2; keys and
values stay at every input pixel. The branch therefore returns the strided size with no pooling.
"""

from __future__ import annotations

import abc
import math

import torch
from torch import nn

from ..ops.shapes import ceil_div
from .common import NotScriptable, Query, query_rows

__all__ = ["AugmentedConv2d", "attention_channels", "query_positions"]


def attention_channels(out_channels: int, ratio: float, num_heads: int) -> int:
    """d_v = round(ratio · C_out), at least one channel per head, a multiple of ``num_heads``, < C_out."""
    d_v = max(num_heads, round(ratio * out_channels / num_heads) * num_heads)
    if d_v >= out_channels:
        raise ValueError(
            f"attention branch of {d_v} channels leaves no conv channels of {out_channels}; "
            "lower the ratio or num_heads."
        )
    return d_v


def query_positions(size: int, stride: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Input-pixel coordinates of the strided output grid along one axis: 0, s, 2s, ... (ceil(size/s) of them)."""
    return torch.arange(0, size, stride, device=device, dtype=dtype)


def augmented_forward(module: AugmentedConv2d, x: torch.Tensor) -> torch.Tensor:
    """conv(x) ∥ proj(attend(x, value(x))), after checking the input. A leaf of ``torch.fx`` tracing: the branch's
    shape arithmetic runs when the traced graph runs, so FX and ``create_feature_extractor`` trace the model."""
    if x.ndim != 4 or x.shape[1] != module.in_channels:
        raise ValueError(
            f"{type(module).__name__} expects input of shape (B, {module.in_channels}, H, W); got {tuple(x.shape)}."
        )
    conv_out = module.conv(x)
    attn_out = module.proj(module.attend(x, module.value(x)))
    return torch.cat([conv_out, attn_out], dim=1)


torch.fx.wrap("augmented_forward")


class AugmentedConv2d(NotScriptable, nn.Module, abc.ABC):
    """conv(x) (C_out − d_v channels) ∥ proj(attend(value(x))) (d_v channels), (B, C_in, H, W) -> (B, C_out, H', W').

    Subclasses implement ``attend(x, v) -> (B, d_v, H', W')`` given the input and its value projection, and
    ``attention_map(x)``, the map the branch applies. ``torch.jit.script`` refuses these layers with a message
    naming tracing and ``torch.export``, which work.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int, d_v: int, padding: int | None = None
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"{type(self).__name__} needs an odd kernel_size (centred queries); got {kernel_size}.")
        self.in_channels, self.out_channels, self.stride, self.d_v = in_channels, out_channels, stride, d_v
        self.kernel_size = kernel_size
        padding = (kernel_size - 1) // 2 if padding is None else padding
        self.conv = nn.Conv2d(in_channels, out_channels - d_v, kernel_size, stride, padding, bias=False)
        self.value = nn.Conv2d(in_channels, d_v, 1, bias=False)
        self.proj = nn.Conv2d(d_v, d_v, 1, bias=False)
        nn.init.kaiming_uniform_(self.proj.weight, a=math.sqrt(5))

    @abc.abstractmethod
    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """The attention the branch applies for input ``x`` (each subclass documents its shape)."""

    def attention_parts(self, x: torch.Tensor, query: Query = (0.5, 0.5)) -> dict[str, torch.Tensor]:
        """What the branch applied, for pictures: ``rows``, the attention of the output position at ``query``
        ((y, x) fractions of the output grid) over the input, (..., H, W) summing to 1 (AA: (B, heads, H, W);
        EAM: (R, H, W), the same for every sample)."""
        out_size = (ceil_div(x.shape[-2], self.stride), ceil_div(x.shape[-1], self.stride))
        return {"rows": query_rows(self.attention_map(x), out_size, tuple(x.shape[-2:]), query)}

    @abc.abstractmethod
    def attend(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The attention branch before its output projection: (B, d_v, H', W')."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return augmented_forward(self, x)
