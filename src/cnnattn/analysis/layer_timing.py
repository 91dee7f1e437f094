"""A batched layer against the same layer called on each sample, and against a plain convolution.

``batched_vs_own_calls`` is the measurement behind AW-convolution's per-device rules
(:mod:`cnnattn.fast_paths`): the strongest honest reference for a per-sample layer is the layer itself called one
sample at a time. Run it in a fresh process (:func:`cnnattn.analysis.isolated.run_isolated`) to see the allocator
as a user's first calls meet it, or in-process after other work to see it warm.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..attention import AWConv2d
from .timing import time_interleaved

__all__ = ["batched_vs_own_calls", "live_aw_layer", "timed_step"]


def live_aw_layer(channels: int, seed: int = 0, **kwargs: object) -> AWConv2d:
    """A 3×3 ``AWConv2d(channels, channels)`` whose generator's last layer is perturbed away from its zero
    initialisation, so the attention is live (not the plain conv it starts as)."""
    torch.manual_seed(seed)
    layer = AWConv2d(channels, channels, 3, **kwargs)
    with torch.no_grad():
        layer.fc2.weight.normal_(0, 0.05)
        layer.fc2.bias.normal_(0, 0.05)
    return layer


def timed_step(fn: Callable[[], torch.Tensor], train: bool) -> Callable[[], None]:
    """``fn`` as one timed step: its forward and the backward of its sum (``train``), or its forward without
    autograd."""
    if train:
        return lambda: fn().sum().backward()

    def infer() -> None:
        with torch.no_grad():
            fn()

    return infer


def batched_vs_own_calls(
    channels: int,
    size: int,
    batch: int,
    mode: str = "infer",
    *,
    repeats: int = 5,
    warmup: int = 1,
    device: str = "cpu",
    dtype: str = "float32",
) -> dict[str, float]:
    """Median milliseconds of AW on (batch, channels, size, size): the batched layer (``batched``), the same layer
    called on each sample (``own_calls``) and a plain 3×3 conv (``plain``), interleaved; ``mode`` is ``'infer'``
    (no autograd) or ``'train'`` (forward and backward). Also the ratios ``own_calls / batched`` (≥ 1: batching
    pays) and ``batched / plain``."""
    dev, kind = torch.device(device), getattr(torch, dtype)
    layer = live_aw_layer(channels).to(dev, kind)
    plain: nn.Module = nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(dev, kind)
    x = torch.randn(batch, channels, size, size, device=dev, dtype=kind, requires_grad=mode == "train")
    fns = {
        "batched": lambda: layer(x),
        "own_calls": lambda: torch.cat([layer(sample) for sample in x.split(1)]),
        "plain": lambda: plain(x),
    }
    timings = time_interleaved({k: timed_step(f, mode == "train") for k, f in fns.items()}, warmup=warmup,
                               repeats=repeats, device=dev)  # fmt: skip
    ms = {name: t.median * 1e3 for name, t in timings.items()}
    return {**ms, "own_calls/batched": ms["own_calls"] / ms["batched"], "batched/plain": ms["batched"] / ms["plain"]}
