"""AW-convolution: batched layer vs a naive per-sample loop vs the plain convolution, and model costs.

    python benchmarks/awconv.py speed [--batches 1,32] [--repeats 5]
    python benchmarks/awconv.py complexity

``speed``: the 3×3 convolutions of ResNet-50's bottlenecks at 224² (64 ch @56², 128 @28², 256 @14²,
512 @7², stride 1), inference (no grad) and a training step (forward + backward), medians of repeated runs.
The naive loop runs the same generator and F.conv2d one sample at a time.
``complexity``: params and MACs of ResNet-50/101 with each AW variant and with AW stacked on SE / CBAM.
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F

import cnnattn
from cnnattn.analysis import complexity_table, machine_info, time_interleaved
from cnnattn.attention import AWConv2d
from cnnattn.utils import format_table

SHAPES = ((64, 56), (128, 28), (256, 14), (512, 7))


def naive_loop(layer: AWConv2d, x: torch.Tensor) -> torch.Tensor:
    """Reference: the modulated kernel and F.conv2d, one sample at a time."""
    return torch.cat(
        [
            F.conv2d(
                s, layer.modulated_weight(s)[0], layer.bias, layer.stride, layer.padding, layer.dilation, layer.groups
            )
            for s in x.split(1)
        ]
    )


def _timings(fns: dict[str, object], x: torch.Tensor, repeats: int) -> dict[str, tuple[float, float]]:
    """Median (inference, training step) seconds of each function on ``x``, timed interleaved."""

    def infer(fn: object) -> object:
        def run() -> None:
            with torch.no_grad():
                fn(x)

        return run

    def train(fn: object) -> object:
        return lambda: fn(x).sum().backward()

    inf = time_interleaved({n: infer(f) for n, f in fns.items()}, repeats=repeats)
    trn = time_interleaved({n: train(f) for n, f in fns.items()}, warmup=1, repeats=max(3, repeats // 2))
    return {n: (inf[n].median, trn[n].median) for n in fns}


def speed(args: argparse.Namespace) -> None:
    rows = []
    for batch in (int(b) for b in args.batches.split(",")):
        for channels, size in SHAPES:
            torch.manual_seed(0)
            x = torch.randn(batch, channels, size, size, requires_grad=True)
            full = AWConv2d(channels, channels, 3)
            shared = AWConv2d(channels, channels, 3, attention_shape="shared")
            plain = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False)
            fns = {
                "plain": plain,
                "aw full": full,
                "aw shared": shared,
                "naive full": lambda z, layer=full: naive_loop(layer, z),
            }
            t = _timings(fns, x, args.repeats)
            rows.append(
                (
                    batch,
                    f"{channels}→{channels} @{size}²",
                    *(f"{t[n][0] * 1e3:.1f}" for n in t),
                    f"{t['naive full'][0] / t['aw full'][0]:.2f}×",
                    f"{t['aw full'][0] / t['plain'][0]:.2f}×",
                    *(f"{t[n][1] * 1e3:.1f}" for n in t),
                    f"{t['naive full'][1] / t['aw full'][1]:.2f}×",
                    f"{t['aw full'][1] / t['plain'][1]:.2f}×",
                )
            )
            print(f"done: B={batch} C={channels}", file=sys.stderr)
    print(
        format_table(
            (
                "B",
                "shape",
                "infer plain ms",
                "infer AW full ms",
                "infer AW shared ms",
                "infer naive ms",
                "infer naive/AW",
                "infer AW/plain",
                "train plain ms",
                "train AW full ms",
                "train AW shared ms",
                "train naive ms",
                "train naive/AW",
                "train AW/plain",
            ),
            rows,
        )
    )


def complexity(_: argparse.Namespace) -> None:
    variants = {
        "": {},
        "_se": {},
        "_cbam": {},
        "_aw": {},
        "_aw (shared)": {"attention_shape": "shared"},
        "_aw (rank 1)": {"rank": 1},
        "_aw (dense generator)": {"rank": None},
        "_aw_se": {},
        "_aw_cbam": {},
    }
    print("Params and MACs at 224×224, 1000 classes (GFLOPs = 2 × MACs)\n")
    for backbone in ("resnet50", "resnet101"):
        models = {}
        for suffix, kwargs in variants.items():
            name = backbone + suffix.split(" ")[0]
            models[backbone + suffix] = cnnattn.create_model(name, attn_kwargs=kwargs or None)
        headers, rows = complexity_table(models)
        print(format_table(headers, rows), end="\n\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("speed")
    run.add_argument("--batches", default="1,32")
    run.add_argument("--repeats", type=int, default=5)
    run.set_defaults(func=speed)
    commands.add_parser("complexity").set_defaults(func=complexity)
    args = parser.parse_args()
    print(f"machine: {machine_info()}\ncommand: python benchmarks/awconv.py {' '.join(sys.argv[1:])}\n")
    args.func(args)


if __name__ == "__main__":
    main()
