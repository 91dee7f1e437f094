"""Triplet attention and CBAM, this formulation against the previous one, per layer and in ResNet-50 (CPU).

    python benchmarks/spatial_gates.py layer [--repeats 7]
    python benchmarks/spatial_gates.py model [--repeats 5] [--backbone resnet50]

Two levers of the training step, each A/B in one interleaved run (``cnnattn.analysis.time_interleaved``):

* ``zpools`` (``cnnattn.ops.pooling.zpools``): triplet's six max/mean reductions with one backward that writes the
  input's gradient once, against autograd's six gradients added together ("triplet before" pools with
  ``max_along`` and ``mean``, as up to session 13).
* ``spatial_conv_input`` (``cnnattn.attention.common``): the 2→1-channel 7×7 conv of triplet's branches and CBAM's
  spatial gate reads its pooled maps channels-last while training on CPU.

and ``gated`` (``cnnattn.attention.common``), which in training forms the product and adds the shortcut into it,
avoiding ``addcmul``'s backward ("triplet before" and "triplet zpools" use ``addcmul`` in training too; inference
is ``addcmul`` in all three). The 1/3 of triplet's mean, now taken on the small gates, is not reverted in "before".

CBAM's "before" is timm's ``CbamModule`` with the same weights and the shortcut added after it (what
``resnet50_cbam`` ran up to session 13); "now" is cnnattn's subclass, which also fuses the shortcut and takes its
maxima with ``max_along``. ``layer`` times one gate with its shortcut at ResNet-50's stage shapes: training at
batch 8 and 160² (forward + backward), inference at batch 16 and 224². ``model`` times the whole network against
the plain one (``cnnattn.analysis.ab_rows``).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator

import torch
from timm.layers.cbam import CbamModule as TimmCbam
from torch import nn

import cnnattn
import cnnattn.attention.triplet as triplet
from cnnattn.analysis import ab_benchmark_main, ab_rows, time_interleaved
from cnnattn.attention import create_attention
from cnnattn.attention.timm_baselines import CbamModule
from cnnattn.ops.pooling import max_along
from cnnattn.utils import format_table

STAGES = ((256, 56, 40), (512, 28, 20), (1024, 14, 10), (2048, 7, 5))  # channels, side at 224², side at 160²


def _six_reductions(x: torch.Tensor, dims: tuple[int, ...]) -> list[torch.Tensor]:
    return [torch.stack([max_along(x, d), x.mean(dim=d)], dim=1) for d in dims]


def _gated_before(x: torch.Tensor, multiplier: torch.Tensor, shortcut: torch.Tensor | None = None, scratch: str = ""):
    """``gated`` up to session 13: ``addcmul`` with and without autograd, never in place."""
    return x * multiplier if shortcut is None else torch.addcmul(shortcut, x, multiplier)


def _unchanged_layout(pooled: torch.Tensor) -> torch.Tensor:
    return pooled


TRIPLET_LEVERS = {  # the names TripletAttention looks up at call time, per variant
    "triplet before": {"zpools": _six_reductions, "spatial_conv_input": _unchanged_layout, "gated": _gated_before},
    "triplet zpools": {"zpools": triplet.zpools, "spatial_conv_input": _unchanged_layout, "gated": _gated_before},
    "triplet now": {"zpools": triplet.zpools, "spatial_conv_input": triplet.spatial_conv_input, "gated": triplet.gated},
}


@contextlib.contextmanager
def _triplet_levers(variant: str) -> Iterator[None]:
    saved = {name: getattr(triplet, name) for name in TRIPLET_LEVERS[variant]}
    for name, value in TRIPLET_LEVERS[variant].items():
        setattr(triplet, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(triplet, name, value)


class _WithLevers(nn.Module):
    """A model whose forward runs with one variant's triplet levers (the backward follows the graph it built)."""

    def __init__(self, model: nn.Module, variant: str) -> None:
        super().__init__()
        self.model, self.variant = model, variant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with _triplet_levers(self.variant):
            return self.model(x)


def _timm_cbam(ours: nn.Module) -> nn.Module:
    reference = TimmCbam(ours.channel.fc1.in_channels, rd_ratio=1 / 16)
    reference.load_state_dict(ours.state_dict())
    return reference


def _gate_fns(channels: int, x: torch.Tensor, train: bool) -> dict[str, Callable[[], None]]:
    """Each variant's gate with the shortcut, run forward (and backward when ``train``)."""
    torch.manual_seed(0)
    tri, cbam = create_attention("triplet", channels).train(train), create_attention("cbam", channels).train(train)
    timm_cbam = _timm_cbam(cbam).train(train)
    shortcut = torch.randn_like(x)

    def run(forward: Callable[[], torch.Tensor]) -> Callable[[], None]:
        return (lambda: forward().sum().backward()) if train else (lambda: forward())

    def triplet_with(variant: str) -> Callable[[], torch.Tensor]:
        def forward() -> torch.Tensor:
            with _triplet_levers(variant):
                return tri(x, shortcut)

        return forward

    fns = {variant: run(triplet_with(variant)) for variant in TRIPLET_LEVERS}
    fns["cbam before"] = run(lambda: timm_cbam(x) + shortcut)
    fns["cbam now"] = run(lambda: cbam(x, shortcut))
    return fns


def layer(args: argparse.Namespace) -> None:
    rows = []
    for channels, infer_side, train_side in STAGES:
        for mode, batch, side in (("train, batch 8", 8, train_side), ("infer, batch 16", 16, infer_side)):
            train = mode.startswith("train")
            x = torch.randn(batch, channels, side, side, requires_grad=train)
            with torch.set_grad_enabled(train):
                timings = time_interleaved(_gate_fns(channels, x, train), warmup=1, repeats=args.repeats)
            t = {name: timing.median for name, timing in timings.items()}
            ratios = (t["triplet now"] / t["triplet before"], t["cbam now"] / t["cbam before"])
            rows.append((mode, f"{channels} @ {side}²", *(f"{v * 1e3:.1f}" for v in t.values()),
                         *(f"{r:.2f}×" for r in ratios)))  # fmt: skip
    headers = ("mode", "shape", *(f"{name} ms" for name in (*TRIPLET_LEVERS, "cbam before", "cbam now")),
               "triplet now/before", "cbam now/before")  # fmt: skip
    print(format_table(headers, rows))


def model(args: argparse.Namespace) -> None:
    settings = {"infer": (16, 224), "train": (8, 160)}
    plain = cnnattn.create_model(args.backbone)
    now = cnnattn.create_model(f"{args.backbone}_triplet")
    triplets = {"plain": plain, "triplet before": _WithLevers(now, "triplet before"), "triplet now": now}
    print(format_table(*ab_rows(triplets, settings, args.repeats)) + "\n")
    now = cnnattn.create_model(f"{args.backbone}_cbam")
    before = cnnattn.create_model(f"{args.backbone}_cbam")
    before.load_state_dict(now.state_dict())
    for module in before.modules():
        if isinstance(module, CbamModule):
            module.__class__ = TimmCbam  # timm's forward; the block then adds the shortcut after it
    print(format_table(*ab_rows({"plain": plain, "cbam before": before, "cbam now": now}, settings, args.repeats)))


def main() -> None:
    ab_benchmark_main(__doc__, "spatial_gates.py", layer, model)


if __name__ == "__main__":
    main()
