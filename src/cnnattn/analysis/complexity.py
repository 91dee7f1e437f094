"""Parameter and multiply-accumulate (MAC) counts, as torchvision and timm report them.

Built on ``torch.utils.flop_counter.FlopCounterMode`` (convolutions, matrix products, attention), with
formulas registered for what it misses: bilinear ``grid_sample`` (4 MACs per sampled value) and
torchvision's deformable convolution (its GEMM plus 4 MACs per sampled value, plus the mask product).
Modules count the algorithm's products, not their fast kernels' extra ones (see
``cnnattn.fast_paths.reference_arithmetic``). Norms, activations and element-wise gates count zero, as in the
published ResNet figures
(ResNet-50 at 224²: 4.09 GMACs). GFLOPs in some papers are 2 × MACs.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import prod

import torch
import torchvision  # noqa: F401  (registers torch.ops.torchvision)
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..fast_paths import reference_arithmetic

__all__ = ["card_stats", "complexity_table", "count_macs", "count_params", "counted_forward"]

BILINEAR_MACS = 4


def _grid_sampler_flops(input_shape: Sequence[int], grid_shape: Sequence[int], *args: object, **kwargs: object) -> int:
    batch, channels = input_shape[:2]
    return 2 * BILINEAR_MACS * batch * channels * grid_shape[1] * grid_shape[2]


def _deform_conv2d_flops(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    offset_shape: Sequence[int],
    *args: object,
    out_shape: Sequence[int],
    **kwargs: object,
) -> int:
    batch, in_channels = input_shape[:2]
    out_channels, group_channels, kh, kw = weight_shape
    samples = batch * in_channels * kh * kw * prod(out_shape[2:])
    use_mask = bool(args[-1]) if args else False
    gemm = batch * out_channels * group_channels * kh * kw * prod(out_shape[2:])
    return 2 * (gemm + samples * (BILINEAR_MACS + int(use_mask)))


CUSTOM_FLOPS = {
    torch.ops.aten.grid_sampler_2d: _grid_sampler_flops,
    torch.ops.torchvision.deform_conv2d: _deform_conv2d_flops,
}


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def counted_forward(
    model: nn.Module, input_size: Sequence[int] = (3, 224, 224), batch_size: int = 1
) -> FlopCounterMode:
    """Run one eval-mode forward of random (batch_size, *input_size) input under a FLOP counter that also
    counts cnnattn's custom ops; the model's train/eval mode is restored. Returns the counter."""
    param = next(model.parameters(), None)
    x = torch.randn(
        batch_size,
        *input_size,
        device=param.device if param is not None else None,
        dtype=param.dtype if param is not None else None,
    )
    was_training = model.training
    try:
        with reference_arithmetic(), FlopCounterMode(display=False, custom_mapping=CUSTOM_FLOPS) as counter:
            model.eval()(x)
    finally:
        model.train(was_training)
    return counter


def count_macs(model: nn.Module, input_size: Sequence[int] = (3, 224, 224), batch_size: int = 1) -> int:
    """MACs of one forward pass of ``batch_size`` images of ``input_size`` (C, H, W), in eval mode."""
    return counted_forward(model, input_size, batch_size).get_total_flops() // 2


def card_stats(model: nn.Module, img_size: int) -> dict[str, str]:
    """Params (millions) and GMACs per image at ``img_size``² of a classifier, as a model card lists them."""
    channels = (getattr(model, "pretrained_cfg", None) or {}).get("input_size", (3,))[0]
    macs = count_macs(model, (channels, img_size, img_size))
    return {"Params (M)": f"{count_params(model) / 1e6:.2f}", f"GMACs at {img_size}²": f"{macs / 1e9:.3f}"}


def complexity_table(
    models: dict[str, nn.Module], input_size: Sequence[int] = (3, 224, 224), baseline: str | None = None
) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """Headers and rows of params and MACs for named models, with differences to ``baseline`` (default: first)."""
    counts = {name: (count_params(m), count_macs(m, input_size)) for name, m in models.items()}
    base_params, base_macs = counts[baseline or next(iter(counts))]
    rows = [
        (name, f"{p / 1e6:.2f}", f"{(p - base_params) / 1e6:+.2f}", f"{m / 1e9:.3f}", f"{(m - base_macs) / 1e9:+.3f}")
        for name, (p, m) in counts.items()
    ]
    return ("model", "params (M)", "Δ params (M)", "GMACs", "Δ GMACs"), rows
