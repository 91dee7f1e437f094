"""AA: the fused attention over the whole batch in one call vs in batch chunks (``max_attention_bytes``), on CPU.

    python benchmarks/aa_chunks.py layer [--repeats 7]
    python benchmarks/aa_chunks.py model [--backbone resnet50] [--repeats 5]

``layer``: one ``AttentionAugmentedConv2d`` at each place ResNet-50 has one (the 3×3 conv of every bottleneck of
stages 2-4, the first of each stage with stride 2), inference at batch 16 and 224², with
``max_attention_bytes=None`` (one call) and the default, interleaved.
``model``: the plain backbone and ``<backbone>_aa`` with ``max_attention_bytes=None`` and the default, interleaved,
at attention_overhead.py's settings, then each model's peak memory growth over two inference steps at batch 16 and
224² in a fresh process (as ``cnnattn bench`` measures it).
"""

from __future__ import annotations

import argparse

import torch

import cnnattn
from cnnattn.analysis import ab_benchmark_main, ab_rows, time_interleaved
from cnnattn.analysis.bench import cpu_step_memory
from cnnattn.analysis.isolated import run_isolated
from cnnattn.attention import AttentionAugmentedConv2d
from cnnattn.utils import format_table

# (channels, input side at 224², stride): the AA layers of ResNet-50's stages 2-4
LAYERS = ((128, 56, 2), (128, 28, 1), (256, 28, 2), (256, 14, 1), (512, 14, 2), (512, 7, 1))
VARIANTS = {"one call": {"max_attention_bytes": None}, "chunked": {}}


def layer(args: argparse.Namespace) -> None:
    rows = []
    for channels, side, stride in LAYERS:
        torch.manual_seed(0)
        layers = {name: AttentionAugmentedConv2d(channels, channels, 3, stride, **kw) for name, kw in VARIANTS.items()}
        layers["chunked"].load_state_dict(layers["one call"].state_dict())
        x = torch.randn(16, channels, side, side)
        with torch.no_grad():
            t = time_interleaved({n: (lambda m=m, x=x: m(x)) for n, m in layers.items()}, repeats=args.repeats)
        a, b = t["one call"].median, t["chunked"].median
        rows.append((f"{channels} @ {side}², stride {stride}", f"{a * 1e3:.1f}", f"{b * 1e3:.1f}", f"{b / a:.2f}×"))
    print(format_table(("layer, batch 16", "one call ms", "chunked ms", "chunked/one call"), rows))


def model(args: argparse.Namespace) -> None:
    name = f"{args.backbone}_aa"
    models = {"plain": cnnattn.create_model(args.backbone)}
    models |= {f"aa {v}": cnnattn.create_model(name, attn_kwargs=kw) for v, kw in VARIANTS.items()}
    print(format_table(*ab_rows(models, {"infer": (16, 224), "train": (8, 160)}, args.repeats)))
    entries = [("plain", args.backbone, None)] + [(f"aa {v}", name, {"attn_kwargs": kw}) for v, kw in VARIANTS.items()]
    rows = [(label, f"{_peak_memory_mb(model_name, kwargs):.0f}") for label, model_name, kwargs in entries]
    print(format_table(("model", "peak memory growth MB, inference batch 16, 224²"), rows))


def _peak_memory_mb(name: str, model_kwargs: dict | None) -> float:
    """Peak RSS growth (MB) over two inference steps at batch 16 and 224², in a fresh process."""
    kwargs = dict(name=name, batch_size=16, img_size=224, mode="infer", channels_last=False, amp=False)
    target = f"{cpu_step_memory.__module__}.cpu_step_memory"
    return run_isolated(target, kwargs | {"model_kwargs": model_kwargs})["peak_memory_mb"]


def main() -> None:
    ab_benchmark_main(__doc__, "aa_chunks.py", layer, model)


if __name__ == "__main__":
    main()
