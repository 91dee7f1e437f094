"""Deformable convolution (DCNv1, and DCNv2 with a mask) equal to ``torchvision.ops.deform_conv2d``.

Two implementations with one signature:

* ``"sampled"``: bilinear sampling of every kernel tap with ``F.grid_sample`` (zeros outside the image,
  exactly torchvision's rule), then one batched matrix product with the weight (without groups on large maps,
  its output is in channels-last memory). Built from ops with fast
  CPU forward and backward kernels; the batch is processed in chunks in no-grad mode so the sampled
  columns (B·C_in·k²·H_out·W_out values) stay under ``max_chunk_bytes``.
* ``"torchvision"``: ``torchvision.ops.deform_conv2d``.

``impl="auto"`` picks per device from measurements (``benchmarks/deform_conv.py``, docs/benchmarks.md):
``"sampled"`` on CPU, where it is faster for inference and much faster for training, and
``"torchvision"`` on other devices, whose dedicated kernel is the reference there (not yet measured
by this project on a GPU).
"""

from __future__ import annotations

import math
import warnings
from typing import Literal

import torch
import torch.nn.functional as F
import torchvision.ops
from torch import nn
from torch.nn.modules.utils import _pair

from ..fast_paths import compiling, fast_paths_enabled, tuning
from .shapes import conv_output_size

__all__ = ["DeformConv2d", "deform_conv2d"]

Impl = Literal["auto", "sampled", "torchvision"]
IMPLS: tuple[str, ...] = ("auto", "sampled", "torchvision")


def _pair_int(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    pair = _pair(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise ValueError(f"deform_conv2d: {name} must be an int or a pair of ints; got {value!r}.")
    return pair


def _check_shapes(
    input: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    mask: torch.Tensor | None,
    out_size: tuple[int, int],
) -> tuple[int, int]:
    """Validate torchvision's shape contract; return (weight groups, offset groups)."""
    batch, in_channels = input.shape[:2]
    out_channels, group_channels, kh, kw = weight.shape
    taps = kh * kw
    if in_channels % group_channels or out_channels % (in_channels // group_channels):
        raise ValueError(
            f"deform_conv2d: weight {tuple(weight.shape)} does not divide input channels {in_channels} "
            "into groups (weight.shape[1] must divide C_in, and C_in/weight.shape[1] divide C_out)."
        )
    groups = in_channels // group_channels
    if offset.shape[1] % (2 * taps) or in_channels % max(offset.shape[1] // (2 * taps), 1):
        raise ValueError(
            f"deform_conv2d: offset has {offset.shape[1]} channels; expected 2·offset_groups·kh·kw "
            f"= 2·G·{taps} with G dividing C_in={in_channels}."
        )
    offset_groups = offset.shape[1] // (2 * taps)
    expected = (batch, 2 * offset_groups * taps, *out_size)
    if tuple(offset.shape) != expected:
        raise ValueError(
            f"deform_conv2d: offset shape {tuple(offset.shape)}, expected {expected} for this input, "
            "kernel, stride, padding and dilation."
        )
    if mask is not None and tuple(mask.shape) != (batch, offset_groups * taps, *out_size):
        raise ValueError(
            f"deform_conv2d: mask shape {tuple(mask.shape)}, expected {(batch, offset_groups * taps, *out_size)}."
        )
    return groups, offset_groups


def _sampling_grid(
    offset: torch.Tensor,
    in_size: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    offset_groups: int,
) -> torch.Tensor:
    """Normalised ``grid_sample`` grid (B·G, k²·H_out, W_out, 2) of every tap's sampling position."""
    batch, _, h_out, w_out = offset.shape
    (kh, kw), (height, width) = kernel, in_size
    arange = lambda n, step, start: torch.arange(n, device=offset.device, dtype=offset.dtype) * step + start  # noqa: E731
    tap_y = arange(kh, dilation[0], 0).view(kh, 1, 1, 1)
    tap_x = arange(kw, dilation[1], 0).view(1, kw, 1, 1)
    base_y = (tap_y + arange(h_out, stride[0], -padding[0]).view(1, 1, h_out, 1)).expand(kh, kw, h_out, w_out)
    base_x = (tap_x + arange(w_out, stride[1], -padding[1]).view(1, 1, 1, w_out)).expand(kh, kw, h_out, w_out)
    off = offset.reshape(batch, offset_groups, kh * kw, 2, h_out, w_out)  # reshape: any strides
    pos_y = base_y.reshape(kh * kw, h_out, w_out) + off[:, :, :, 0]
    pos_x = base_x.reshape(kh * kw, h_out, w_out) + off[:, :, :, 1]
    # align_corners=False maps pixel p to (2p + 1) / size - 1, so sizes of 1 need no special case.
    grid = torch.stack(((2 * pos_x + 1) / width - 1, (2 * pos_y + 1) / height - 1), dim=-1)
    return grid.view(batch * offset_groups, kh * kw * h_out, w_out, 2)


def _sampled_chunk(
    input: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    mask: torch.Tensor | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
    offset_groups: int,
) -> torch.Tensor:
    batch, in_channels, height, width = input.shape
    out_channels, group_channels, kh, kw = weight.shape
    h_out, w_out = offset.shape[-2:]
    taps, pixels = kh * kw, h_out * w_out
    grid = _sampling_grid(offset, (height, width), (kh, kw), stride, padding, dilation, offset_groups)
    columns = F.grid_sample(
        input.reshape(batch * offset_groups, in_channels // offset_groups, height, width),
        grid,
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )
    columns = columns.view(batch, offset_groups, in_channels // offset_groups, taps, pixels)
    if mask is not None:
        columns = columns * mask.reshape(batch, offset_groups, 1, taps, pixels)
    columns = columns.reshape(batch, groups, group_channels * taps, pixels)
    kernel = weight.reshape(groups, out_channels // groups, group_channels * taps)
    if not fast_paths_enabled():  # the reference: one GEMM per sample and group, output contiguous
        return torch.matmul(kernel, columns).view(batch, out_channels, h_out, w_out)
    per_sample = batch == 1 or pixels > tuning(input.device).deform_single_gemm_max_pixels
    if groups == 1 and per_sample:
        # Columnsᵀ · kernelᵀ: the same GEMM written (B, H_out·W_out, C_out), channels-last memory, which a norm over
        # channels after it (DAS's LayerNorm2d) reads without a permuted copy.
        out = torch.matmul(columns.transpose(-1, -2), kernel.transpose(-1, -2))  # (B, 1, H_out·W_out, C_out)
        return out.view(batch, h_out, w_out, out_channels).permute(0, 3, 1, 2)
    if per_sample:
        return torch.matmul(kernel, columns).view(batch, out_channels, h_out, w_out)
    # Small maps: one GEMM over B·H_out·W_out columns beats B skinny ones (docs/benchmarks.md).
    columns = columns.permute(1, 2, 0, 3).reshape(groups, group_channels * taps, batch * pixels)
    out = torch.matmul(kernel, columns).view(groups, out_channels // groups, batch, pixels)
    return out.permute(2, 0, 1, 3).reshape(batch, out_channels, h_out, w_out)


def _deform_conv2d_sampled(
    input: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    mask: torch.Tensor | None,
    groups: int,
    offset_groups: int,
    max_chunk_bytes: int | Literal["auto"] | None,
) -> torch.Tensor:
    geometry = (stride, padding, dilation, groups, offset_groups)
    if max_chunk_bytes == "auto":
        max_chunk_bytes = tuning(input.device).deform_max_chunk_bytes
    if torch.is_grad_enabled() or compiling() or max_chunk_bytes is None or not fast_paths_enabled():
        # One call: training keeps one graph, and tracing/export must not loop over a (symbolic) batch size.
        return _add_bias_(_sampled_chunk(input, offset, weight, mask, *geometry), bias)
    batch = input.shape[0]
    per_sample = input.shape[1] * weight.shape[2] * weight.shape[3] * offset[0, 0].numel() * input.element_size()
    chunk = max(1, min(batch, max_chunk_bytes // max(per_sample, 1)))
    outs = [
        _sampled_chunk(
            input[i : i + chunk],
            offset[i : i + chunk],
            weight,
            None if mask is None else mask[i : i + chunk],
            *geometry,
        )
        for i in range(0, batch, chunk)
    ]
    return _add_bias_(outs[0] if len(outs) == 1 else torch.cat(outs), bias)


def _add_bias_(out: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``out + bias`` per channel, written into ``out`` (a fresh GEMM result that autograd does not keep): no second
    (B, C_out, H_out, W_out) tensor, whose fresh memory costs more than the addition on CPU (docs/benchmarks.md)."""
    if bias is None:
        return out
    if compiling() or not fast_paths_enabled():
        return out + bias.view(1, -1, 1, 1)  # graphs for export and compilers stay free of in-place writes
    return out.add_(bias.view(1, -1, 1, 1))


def default_impl(device: torch.device) -> str:
    """The implementation ``impl='auto'`` uses on ``device`` (see module docs for the measurements).

    On CPU both passes of ``"sampled"`` are deterministic (``grid_sample``'s CPU backward writes each sample's
    gradient by itself). On CUDA neither path is: torchvision's kernel and ``grid_sample``'s backward accumulate
    with atomics. Under ``torch.use_deterministic_algorithms(True)`` a warning says so, once.
    """
    if device.type == "cpu":
        return "sampled"
    if torch.are_deterministic_algorithms_enabled():
        warnings.warn(
            "deformable convolution on CUDA has no deterministic backward (torchvision's kernel accumulates "
            "gradients with atomics): runs with DAS are not bit-identical on this device; they are on CPU.",
            stacklevel=3,
        )
    return "torchvision"


def deform_conv2d(
    input: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    mask: torch.Tensor | None = None,
    *,
    impl: Impl = "auto",
    max_chunk_bytes: int | Literal["auto"] | None = "auto",
) -> torch.Tensor:
    """Deformable convolution with ``torchvision.ops.deform_conv2d``'s signature and semantics.

    Args:
        input: (B, C_in, H, W).
        offset: (B, 2·G·kh·kw, H_out, W_out); for offset group g and tap t = i·kw + j, channel
            g·2·kh·kw + 2t is the row (y) offset and 2t + 1 the column (x) offset, in input pixels.
        weight: (C_out, C_in / groups, kh, kw); ``groups`` is inferred from the shapes.
        bias: (C_out,) or None.
        stride, padding, dilation: As for ``nn.Conv2d``.
        mask: (B, G·kh·kw, H_out, W_out) modulation (DCNv2) or None.
        impl: ``"auto"`` (per device, see module docs), ``"sampled"`` or ``"torchvision"``.
        max_chunk_bytes: Sampled path without grad: largest sampled-column buffer per chunk of the batch;
            ``'auto'``: the device's ``deform_max_chunk_bytes`` (:mod:`cnnattn.fast_paths`); None: one call.

    Returns:
        (B, C_out, H_out, W_out). Positions outside the input sample zero.
    """
    if impl not in IMPLS:
        raise ValueError(f"deform_conv2d: impl must be one of {IMPLS}; got {impl!r}.")
    if input.ndim != 4 or weight.ndim != 4 or offset.ndim != 4:
        raise ValueError(
            f"deform_conv2d: input, offset and weight must be 4-D; got {tuple(input.shape)}, "
            f"{tuple(offset.shape)}, {tuple(weight.shape)}."
        )
    stride, padding, dilation = (
        _pair_int(v, n) for v, n in ((stride, "stride"), (padding, "padding"), (dilation, "dilation"))
    )
    kh, kw = weight.shape[-2:]
    out_size = conv_output_size(input.shape[2:], (kh, kw), stride, padding, dilation)
    groups, offset_groups = _check_shapes(input, offset, weight, mask, out_size)
    if (impl if impl != "auto" else default_impl(input.device)) == "torchvision":
        return torchvision.ops.deform_conv2d(input, offset, weight, bias, stride, padding, dilation, mask)
    return _deform_conv2d_sampled(
        input, offset, weight, bias, stride, padding, dilation, mask, groups, offset_groups, max_chunk_bytes
    )


torch.fx.wrap("deform_conv2d")  # a leaf of torch.fx tracing: its shape-dependent paths run with the graph


class DeformConv2d(nn.Module):
    """Deformable convolution layer, a drop-in for ``torchvision.ops.DeformConv2d`` with a selectable ``impl``.

    ``forward(input, offset, mask=None)``: input (B, C_in, H, W), offset (B, 2·G·k², H_out, W_out),
    mask (B, G·k², H_out, W_out) or None; returns (B, C_out, H_out, W_out). Under ``torch.jit.script`` the
    layer runs ``torchvision.ops.deform_conv2d`` (equal in output and gradients to every ``impl``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        impl: Impl = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"DeformConv2d: in_channels ({in_channels}) and out_channels ({out_channels}) must "
                f"be divisible by groups ({groups})."
            )
        if impl not in IMPLS:
            raise ValueError(f"DeformConv2d: impl must be one of {IMPLS}; got {impl!r}.")
        self.in_channels, self.out_channels, self.groups, self.impl = in_channels, out_channels, groups, impl
        self.kernel_size = _pair_int(kernel_size, "kernel_size")
        self.stride, self.padding, self.dilation = _pair(stride), _pair(padding), _pair(dilation)
        dd = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size, **dd))
        self.bias = nn.Parameter(torch.empty(out_channels, **dd)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The initialisation of ``nn.Conv2d`` and torchvision's ``DeformConv2d``."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight[0].numel()
            nn.init.uniform_(self.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))

    def forward(self, input: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if torch.jit.is_scripting():  # TorchScript runs torchvision's kernel: the same numbers (tests), scriptable
            return torchvision.ops.deform_conv2d(
                input, offset, self.weight, self.bias, self.stride, self.padding, self.dilation, mask
            )
        return self._forward_eager(input, offset, mask)

    @torch.jit.unused
    def _forward_eager(self, input: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return deform_conv2d(
            input, offset, self.weight, self.bias, self.stride, self.padding, self.dilation, mask, impl=self.impl
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
            f"bias={self.bias is not None}, impl={self.impl!r}"
        )
