"""The deformable convolution against a direct loop over its definition, on torchvision's own ``TestDeformConv``
configuration (6→2 channels, weight groups 2, offset groups 3, kernel 3×2, stride (2, 1), padding (1, 0), dilation
(2, 1), input 5×4), contiguous or not (inputs made by permutes), batch 0 and 33, with and without a mask."""

from __future__ import annotations

import math

import pytest
import torch

from cnnattn.ops import deform_conv2d

C_IN, C_OUT, GROUPS, OFFSET_GROUPS = 6, 2, 2, 3
KERNEL, STRIDE, PADDING, DILATION = (3, 2), (2, 1), (1, 0), (2, 1)
HEIGHT, WIDTH = 5, 4
H_OUT = (HEIGHT + 2 * PADDING[0] - DILATION[0] * (KERNEL[0] - 1) - 1) // STRIDE[0] + 1
W_OUT = (WIDTH + 2 * PADDING[1] - DILATION[1] * (KERNEL[1] - 1) - 1) // STRIDE[1] + 1
TAPS = KERNEL[0] * KERNEL[1]


def _bilinear(image: torch.Tensor, y: float, x: float) -> torch.Tensor:
    """torchvision's bilinear sample of one (H, W) map: zero outside (-1, H) × (-1, W), corners outside are zero."""
    height, width = image.shape
    if not (-1 < y < height and -1 < x < width):
        return image.new_zeros(())
    y0, x0 = math.floor(y), math.floor(x)
    total = image.new_zeros(())
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < height and 0 <= xx < width:
                total = total + wy * wx * image[yy, xx]
    return total


def direct_loop(x, offset, weight, bias, mask) -> torch.Tensor:
    """out[b, o, i, j] = bias[o] + Σ_{c in o's group, taps (a, t)} m · bilinear(x[b, c], p + Δp) · w[o, c, a, t]."""
    out = x.new_zeros(x.shape[0], C_OUT, H_OUT, W_OUT)
    per_group_in, per_group_out = C_IN // GROUPS, C_OUT // GROUPS
    for b in range(x.shape[0]):
        for o in range(C_OUT):
            for i in range(H_OUT):
                for j in range(W_OUT):
                    total = bias[o].clone()
                    for k in range(per_group_in):
                        c = (o // per_group_out) * per_group_in + k
                        g = c // (C_IN // OFFSET_GROUPS)
                        for a in range(KERNEL[0]):
                            for t in range(KERNEL[1]):
                                tap = a * KERNEL[1] + t
                                dy = offset[b, 2 * (g * TAPS + tap), i, j]
                                dx = offset[b, 2 * (g * TAPS + tap) + 1, i, j]
                                y = i * STRIDE[0] - PADDING[0] + a * DILATION[0] + dy
                                xx = j * STRIDE[1] - PADDING[1] + t * DILATION[1] + dx
                                m = 1.0 if mask is None else mask[b, g * TAPS + tap, i, j]
                                total = total + m * _bilinear(x[b, c], float(y), float(xx)) * weight[o, k, a, t]
                    out[b, o, i, j] = total
    return out


def _non_contiguous(t: torch.Tensor) -> torch.Tensor:
    """The same values, laid out by a permute (torchvision's test does the same)."""
    return t.permute(0, 1, 3, 2).contiguous().permute(0, 1, 3, 2)


def _inputs(batch: int, contiguous: bool, with_mask: bool, dtype=torch.float64):
    g = torch.Generator().manual_seed(batch)
    x = torch.rand(batch, C_IN, HEIGHT, WIDTH, generator=g, dtype=dtype)
    offset = torch.randn(batch, 2 * OFFSET_GROUPS * TAPS, H_OUT, W_OUT, generator=g, dtype=dtype)
    mask = torch.rand(batch, OFFSET_GROUPS * TAPS, H_OUT, W_OUT, generator=g, dtype=dtype) if with_mask else None
    weight = torch.randn(C_OUT, C_IN // GROUPS, *KERNEL, generator=g, dtype=dtype)
    bias = torch.randn(C_OUT, generator=g, dtype=dtype)
    if not contiguous:
        x, offset, weight = _non_contiguous(x), _non_contiguous(offset), _non_contiguous(weight)
        mask = None if mask is None else _non_contiguous(mask)
        assert not weight.is_contiguous() and (batch == 0 or not x.is_contiguous())
    return x, offset, weight, bias, mask


@pytest.mark.parametrize("impl", ["sampled", "torchvision"])
@pytest.mark.parametrize("with_mask", [True, False])
@pytest.mark.parametrize("contiguous", [True, False])
@pytest.mark.parametrize("batch", [0, 33])
def test_equals_the_definition(batch: int, contiguous: bool, with_mask: bool, impl: str) -> None:
    x, offset, weight, bias, mask = _inputs(batch, contiguous, with_mask)
    out = deform_conv2d(x, offset, weight, bias, STRIDE, PADDING, DILATION, mask, impl=impl)
    assert out.shape == (batch, C_OUT, H_OUT, W_OUT)
    torch.testing.assert_close(out, direct_loop(x, offset, weight, bias, mask))


@pytest.mark.parametrize("with_mask", [True, False])
@pytest.mark.parametrize("contiguous", [True, False])
def test_gradcheck_on_every_input(contiguous: bool, with_mask: bool) -> None:
    x, offset, weight, bias, mask = _inputs(2, contiguous, with_mask)
    tensors = [t.requires_grad_() for t in (x, offset, weight, bias, mask) if t is not None]

    def run(*args: torch.Tensor) -> torch.Tensor:
        x_, offset_, weight_, bias_, *rest = args
        return deform_conv2d(x_, offset_, weight_, bias_, STRIDE, PADDING, DILATION, rest[0] if rest else None,
                             impl="sampled")  # fmt: skip

    assert torch.autograd.gradcheck(run, tensors, nondet_tol=1e-9)
