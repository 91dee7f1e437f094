"""Where a deformable convolution samples: the k×k locations of an output position, in input or image pixels.

Offsets follow ``torchvision.ops.deform_conv2d``: (B, 2·G·k_h·k_w, H_out, W_out), for offset group g and tap
t = a·k_w + b (row-major over the kernel) channel 2·(g·k_h·k_w + t) holds dy and the next one dx. Tap (a, b) of
output (i, j) samples input location

    y = i·s_h − p_h + a·d_h + dy,    x = j·s_w − p_w + b·d_w + dx        (input pixels)

which is exactly where the bilinear sample is taken. ``trace`` follows these points through stacked layers
(e.g. the DAS gates of stages 4, 3, 2, 1), as the DCN papers draw them: each point of a deeper layer becomes
the query of the layer before it, so a trace over L layers ends with (k_h·k_w)^L points in image pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["DeformLayer", "deform_layers", "sampling_points", "to_grid", "to_image", "trace"]


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def sampling_points(
    offsets: torch.Tensor,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
) -> torch.Tensor:
    """Sampling locations of every output position: (B, G, k_h·k_w, H_out, W_out, 2) as (y, x) input pixels.

    Args:
        offsets: (B, 2·G·k_h·k_w, H_out, W_out), torchvision's layout (see the module docs).
        kernel_size, stride, padding, dilation: The deformable convolution's (ints or (h, w) pairs).
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = map(_pair, (kernel_size, stride, padding, dilation))
    batch, channels, height, width = offsets.shape
    if channels % (2 * kh * kw):
        raise ValueError(f"offsets have {channels} channels, not a multiple of 2·k_h·k_w = {2 * kh * kw}.")
    delta = offsets.view(batch, -1, kh * kw, 2, height, width).permute(0, 1, 2, 4, 5, 3)  # (..., H, W, (dy, dx))
    taps_y = torch.arange(kh, dtype=offsets.dtype, device=offsets.device).repeat_interleave(kw) * dh
    taps_x = torch.arange(kw, dtype=offsets.dtype, device=offsets.device).repeat(kh) * dw
    rows = torch.arange(height, dtype=offsets.dtype, device=offsets.device) * sh - ph
    cols = torch.arange(width, dtype=offsets.dtype, device=offsets.device) * sw - pw
    base_y = rows.view(1, height, 1) + taps_y.view(-1, 1, 1)  # (k², H, 1)
    base_x = cols.view(1, 1, width) + taps_x.view(-1, 1, 1)  # (k², 1, W)
    base = torch.stack(torch.broadcast_tensors(base_y, base_x), dim=-1)  # (k², H, W, 2)
    return base + delta


@dataclass(frozen=True)
class DeformLayer:
    """One deformable layer of a trace: its offsets (1, 2·G·k², H, W) for one image, geometry, and how many
    image pixels one step of its input grid spans (``input_stride``, e.g. 16 for a gate after ResNet stage 3);
    ``mask`` (1, G·k², H, W), the DCNv2 modulation, colours the points when given."""

    offsets: torch.Tensor
    kernel_size: int | tuple[int, int]
    input_stride: float
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int] = 0
    dilation: int | tuple[int, int] = 1
    mask: torch.Tensor | None = None


def _nearest_output(point: torch.Tensor, layer: DeformLayer, size: tuple[int, int]) -> tuple[int, int]:
    """The output position of ``layer`` whose sampling centre is nearest to ``point`` (y, x image pixels)."""
    (sh, sw), (ph, pw) = _pair(layer.stride), _pair(layer.padding)
    (kh, kw), (dh, dw) = _pair(layer.kernel_size), _pair(layer.dilation)
    y, x = (to_grid(float(v), layer.input_stride) for v in point)
    i, j = (y + ph - (kh - 1) * dh / 2) / sh, (x + pw - (kw - 1) * dw / 2) / sw
    return min(max(round(i), 0), size[0] - 1), min(max(round(j), 0), size[1] - 1)


def to_image(grid: torch.Tensor | float, stride: float) -> torch.Tensor | float:
    """Feature-grid pixel coordinates → image pixels: grid pixel p covers image pixels [p·s, (p + 1)·s)."""
    return (grid + 0.5) * stride - 0.5


def to_grid(image: torch.Tensor | float, stride: float) -> torch.Tensor | float:
    """Image pixels → feature-grid pixel coordinates (the inverse of :func:`to_image`)."""
    return (image + 0.5) / stride - 0.5


def trace(layers: Sequence[DeformLayer], start: tuple[float, float], group: int = 0) -> list[dict[str, torch.Tensor]]:
    """Sampling points through stacked deformable layers, deepest first, in image pixels.

    Args:
        layers: From the deepest layer to the shallowest (e.g. DAS of stage 4, then 3, 2, 1).
        start: (y, x) image pixels of the activation to explain; the deepest layer's nearest output is used.
        group: The offset group whose points are followed.

    Returns:
        One dict per layer: ``points`` (N, 2) (y, x) image pixels, N = (k²)^(level+1), and ``weights`` (N,),
        the DCNv2 mask of each point (ones without a mask).
    """
    queries, levels = torch.tensor([start], dtype=torch.float64), []
    for layer in layers:
        grid = sampling_points(layer.offsets, layer.kernel_size, layer.stride, layer.padding, layer.dilation)
        grid = grid[0, group].double().cpu()  # (k², H, W, 2)
        masks = layer.mask[0].cpu().view(-1, *grid.shape[:3])[group] if layer.mask is not None else None
        points, weights = [], []
        for query in queries:
            i, j = _nearest_output(query, layer, grid.shape[1:3])
            points.append(to_image(grid[:, i, j], layer.input_stride))
            weights.append(masks[:, i, j].double() if masks is not None else torch.ones(grid.shape[0]))
        queries = torch.cat(points)
        levels.append({"points": queries, "weights": torch.cat(weights)})
    return levels


def deform_layers(model: nn.Module, maps: dict[str, dict[str, torch.Tensor]], image_size: tuple[int, int],
                  index: int = 0) -> list[DeformLayer]:  # fmt: skip
    """The captured deformable gates of ``model`` (modules with ``offsets`` in ``maps`` from :func:`capture`) as
    :class:`DeformLayer` for image ``index`` of the batch, deepest first; ``image_size`` (H, W) is the input
    size in pixels, from which each layer's ``input_stride`` follows."""
    layers = []
    for name, parts in maps.items():
        if "offsets" not in parts:
            continue
        conv = model.get_submodule(name).dc
        offsets = parts["offsets"][index : index + 1]
        mask = parts.get("mask")
        stride = image_size[0] / offsets.shape[-2] / conv.stride[0]
        mask = None if mask is None else mask[index : index + 1]
        layers.append(DeformLayer(offsets, conv.kernel_size, stride, conv.stride, conv.padding, conv.dilation, mask))
    return sorted(layers, key=lambda layer: -layer.input_stride)
