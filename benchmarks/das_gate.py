"""DAS gate: the depthwise-separable conv in contiguous vs channels-last memory, per stage and in the whole model.

    python benchmarks/das_gate.py layer [--repeats 7]
    python benchmarks/das_gate.py model [--backbone resnet50] [--repeats 5]

``layer``: one ``DASGate`` at each ResNet-50 stage shape (256 ch at 56², 512 at 28², 1024 at 14², 2048 at 7² for
inference at batch 16 and 224²; 40², 20², 10², 5² for a training step at batch 8 and 160²), with
``channels_last_dsc=False`` and ``True``, interleaved; offsets made non-zero so the deformable conv samples off the
grid. The measurement behind ``DSC_CHANNELS_LAST_MIN_PIXELS``.
``model``: the plain backbone and ``<backbone>_das`` with ``channels_last_dsc=False`` and the default (None: auto),
interleaved, at attention_overhead.py's settings.
"""

from __future__ import annotations

import argparse

import torch

import cnnattn
from cnnattn.analysis import ab_benchmark_main, ab_rows, time_interleaved
from cnnattn.attention import DASGate
from cnnattn.utils import format_table

STAGES = ((256, 56, 40), (512, 28, 20), (1024, 14, 10), (2048, 7, 5))  # channels, side at 224², side at 160²


def _gate_pair(channels: int) -> dict[str, DASGate]:
    torch.manual_seed(0)
    contiguous = DASGate(channels, channels_last_dsc=False)
    with torch.no_grad():
        contiguous.offset.weight.normal_(0, 0.01)
    channels_last = DASGate(channels, channels_last_dsc=True)
    channels_last.load_state_dict(contiguous.state_dict())
    return {"contiguous": contiguous, "channels-last": channels_last}


def layer(args: argparse.Namespace) -> None:
    rows = []
    for channels, infer_side, train_side in STAGES:
        gates = _gate_pair(channels)
        x = torch.randn(16, channels, infer_side, infer_side)
        with torch.no_grad():
            infer = time_interleaved({n: (lambda g=g, x=x: g(x)) for n, g in gates.items()}, repeats=args.repeats)
        xg = torch.randn(8, channels, train_side, train_side, requires_grad=True)
        fns = {n: (lambda g=g, xg=xg: g(xg).sum().backward()) for n, g in gates.items()}
        train = time_interleaved(fns, warmup=1, repeats=args.repeats)
        for mode, side, t in (("infer, batch 16", infer_side, infer), ("train, batch 8", train_side, train)):
            a, b = t["contiguous"].median, t["channels-last"].median
            rows.append((mode, f"{channels} @ {side}²", f"{a * 1e3:.1f}", f"{b * 1e3:.1f}", f"{b / a:.2f}×"))
    print(format_table(("mode", "shape", "contiguous ms", "channels-last ms", "channels-last/contiguous"), rows))


def model(args: argparse.Namespace) -> None:
    models = {
        "plain": cnnattn.create_model(args.backbone),
        "das contiguous": cnnattn.create_model(f"{args.backbone}_das", attn_kwargs={"channels_last_dsc": False}),
        "das auto": cnnattn.create_model(f"{args.backbone}_das"),
    }
    print(format_table(*ab_rows(models, {"infer": (16, 224), "train": (8, 160)}, args.repeats)))


def main() -> None:
    ab_benchmark_main(__doc__, "das_gate.py", layer, model)


if __name__ == "__main__":
    main()
