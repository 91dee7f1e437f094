"""Shape arithmetic shared by the convolution-like operators."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ceil_div", "conv_output_size"]


def conv_output_size(
    size: Sequence[int], kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int]
) -> tuple[int, int]:
    """(H_out, W_out) of a 2-D convolution over a (H, W) input, as ``nn.Conv2d`` computes it."""
    return tuple(  # type: ignore[return-value]
        (size[d] + 2 * padding[d] - dilation[d] * (kernel[d] - 1) - 1) // stride[d] + 1 for d in (0, 1)
    )


def ceil_div(size: int, stride: int) -> int:
    """⌈size / stride⌉ without negative operands: ONNX's integer division truncates toward zero, so the exported
    form of ``-(-size // stride)`` rounds down where PyTorch's rounds up."""
    return (size + stride - 1) // stride
