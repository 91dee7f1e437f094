"""AW-convolution: the batched layer vs its own per-sample calls vs the plain convolution, and model costs.

    python benchmarks/awconv.py speed [--batches 8,32,64] [--repeats 5] [--runs 3] [--json out.json]
    python benchmarks/awconv.py floor [--batch 32] [--repeats 5]
    python benchmarks/awconv.py impl [--batch 32] [--sizes 1,2,3,4,5,7,10] [--repeats 5]
    python benchmarks/awconv.py impl-model [--backbone resnet50] [--repeats 5] [--infer-batch 16] [--infer-size 224]
        [--train-batch 8] [--train-size 160] [--classes 1000]
    python benchmarks/awconv.py complexity

``speed``: the 3×3 convolutions of ResNet-50's bottlenecks at 224² (64 ch @56², 128 @28², 256 @14²,
512 @7², stride 1), inference (no grad) and a training step (forward + backward), medians of repeated runs, with
live (non-zero) attention parameters: the batched layer against the same layer called on each sample and a plain
conv, each case in fresh processes and again in this one, each figure the median of ``--runs``
(``cnnattn.analysis.layer_timing``).
``floor``: at each shape, the convolution with one kernel per sample (the kernels given) and the forming of the
kernels, each against the plain conv: the least any per-sample-kernel formulation costs.
``impl``: the two exact paths of the default layer, ``impl='modulated'`` (per-sample kernels) against
``impl='factored'`` (no per-sample kernel), on square maps of each ``--sizes`` output side at ResNet widths: the
measurement behind ``impl='auto'`` (``cnnattn.fast_paths.aw_factored_is_faster``).
``impl-model``: the plain backbone and ``<backbone>_aw`` with ``impl='modulated'`` and ``'auto'``, interleaved:
by default inference at batch 16 and 224², a training step at batch 8 and 160² (attention_overhead.py's settings).
``complexity``: params and MACs of ResNet-50/101 with each AW variant and with AW stacked on SE / CBAM.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import cnnattn
from cnnattn.analysis import complexity_table, machine_info, time_interleaved, time_models
from cnnattn.analysis.isolated import run_isolated
from cnnattn.analysis.layer_timing import batched_vs_own_calls, live_aw_layer, timed_step
from cnnattn.attention import AWConv2d
from cnnattn.utils import format_table

SHAPES = ((64, 56), (128, 28), (256, 14), (512, 7))


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


MODES = ("inference", "training step")
SPEED_HEADERS = ("mode", "B", "shape", "process", "plain ms", "batched ms", "own calls ms", "own calls/batched",
                 "batched/plain")  # fmt: skip
TARGET = "cnnattn.analysis.layer_timing.batched_vs_own_calls"


def _one_run(process: str, kwargs: dict) -> dict[str, float]:
    """One measurement of a case: in a fresh process, or in this one (``'warm'``)."""
    return run_isolated(TARGET, kwargs) if process == "fresh" else batched_vs_own_calls(**kwargs)


def _median_of(results: list[dict[str, float]]) -> dict[str, float | list[float]]:
    """Each figure's median over the runs (ratios taken run by run), and every run's own-calls/batched ratio."""
    merged: dict[str, float | list[float]] = {k: statistics.median(r[k] for r in results) for k in results[0]}
    return {**merged, "own_calls/batched runs": [r["own_calls/batched"] for r in results]}


def speed(args: argparse.Namespace) -> None:
    """Each (mode, batch, shape) ``--runs`` times in fresh processes (the allocator as a user's first calls meet it)
    and as often in this one after the other cases' allocations (warm); each figure is the median of its runs (one
    run alone spreads by about ±20 %)."""
    rows, records = [], []
    for mode in ("infer", "train"):
        for batch in (int(b) for b in args.batches.split(",")):
            for channels, size in SHAPES:
                kwargs = dict(channels=channels, size=size, batch=batch, mode=mode, repeats=args.repeats)
                for process in ("fresh", "warm"):
                    result = _median_of([_one_run(process, kwargs) for _ in range(args.runs)])
                    records.append({**kwargs, "process": process, **result})
                    rows.append((mode, batch, f"{channels}→{channels} @{size}²", process, f"{result['plain']:.1f}",
                                 f"{result['batched']:.1f}", f"{result['own_calls']:.1f}",
                                 f"{result['own_calls/batched']:.2f}×", f"{result['batched/plain']:.2f}×"))  # fmt: skip
                print(f"done: {mode} B={batch} C={channels}", file=sys.stderr, flush=True)
    print("medians; own calls = the same layer called on each sample; live (non-zero) attention parameters\n")
    print(format_table(SPEED_HEADERS, rows))
    if args.json:
        record = {"machine": machine_info(), "date": datetime.date.today().isoformat(),
                  "command": f"python benchmarks/awconv.py {' '.join(sys.argv[1:])}", "rows": records}  # fmt: skip
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")


FLOOR_HEADERS = ("mode", "B", "shape", "plain ms", "layer ms", "conv floor ms", "kernels ms", "layer/plain",
                 "floor/plain", "(floor + kernels)/plain")  # fmt: skip


def _floor_timings(channels: int, size: int, batch: int, train: bool, repeats: int) -> dict[str, float]:
    """Median ms of the plain conv, the layer, the conv with given per-sample kernels (one call per sample and the
    batch-grouped conv) and forming the kernels, timed interleaved."""
    layer, plain = live_aw_layer(channels), torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False)
    x = torch.randn(batch, channels, size, size, requires_grad=train)
    kernels = torch.randn(batch, channels, channels, 3, 3, requires_grad=train)

    def per_sample() -> torch.Tensor:
        return torch.cat([F.conv2d(x[i : i + 1], kernels[i], None, 1, 1) for i in range(batch)])

    def grouped() -> torch.Tensor:
        return F.conv2d(x.reshape(1, -1, size, size), kernels.view(-1, channels, 3, 3), None, 1, 1, 1, batch)

    fns = {"plain": lambda: plain(x), "layer": lambda: layer(x), "per sample": per_sample, "grouped": grouped,
           "kernels": lambda: layer.modulated_weight(x)}  # fmt: skip
    timings = time_interleaved({k: timed_step(f, train) for k, f in fns.items()}, warmup=1, repeats=repeats)
    return {k: v.median * 1e3 for k, v in timings.items()}


def floor(args: argparse.Namespace) -> None:
    """What any per-sample kernel costs: the convolution of each sample with a kernel of its own, the kernels given
    (the faster of one call per sample and the batch-grouped conv), and forming the kernels (the layer's generator
    and modulation, ``modulated_weight``), against the plain conv and the layer."""
    rows = []
    for mode in ("infer", "train"):
        for channels, size in SHAPES:
            t = _floor_timings(channels, size, args.batch, mode == "train", args.repeats)
            conv, plain = min(t["per sample"], t["grouped"]), t["plain"]
            rows.append((mode, args.batch, f"{channels}→{channels} @{size}²", f"{plain:.1f}", f"{t['layer']:.1f}",
                         f"{conv:.1f}", f"{t['kernels']:.1f}", f"{t['layer'] / plain:.2f}×", f"{conv / plain:.2f}×",
                         f"{(conv + t['kernels']) / plain:.2f}×"))  # fmt: skip
            print(f"done: {mode} C={channels}", file=sys.stderr, flush=True)
    print(format_table(FLOOR_HEADERS, rows))


IMPL_HEADERS = ("B", "shape", "mode", "plain ms", "modulated ms", "factored ms", "factored/modulated", "auto picks")


def impl(args: argparse.Namespace) -> None:
    rows = []
    for channels in (64, 128, 256, 512):
        for size in (int(s) for s in args.sizes.split(",")):
            torch.manual_seed(0)
            x = torch.randn(args.batch, channels, size, size, requires_grad=True)
            layers = {name: AWConv2d(channels, channels, 3, impl=name) for name in ("modulated", "factored")}
            fns = {"plain": torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False), **layers}
            timings = _timings(fns, x, args.repeats)
            for index, mode in enumerate(MODES):
                t = {name: pair[index] for name, pair in timings.items()}
                ms = [f"{t[name] * 1e3:.1f}" for name in fns]
                ratio = f"{t['factored'] / t['modulated']:.2f}×"
                with torch.set_grad_enabled(mode != "inference"):
                    auto = "factored" if AWConv2d(channels, channels, 3).uses_factored(x) else "modulated"
                rows.append((args.batch, f"{channels}→{channels} @{size}²", mode, *ms, ratio, auto))
            print(f"done: C={channels} @{size}²", file=sys.stderr)
    print(format_table(IMPL_HEADERS, rows))


def model_rows(
    models: dict[str, torch.nn.Module], settings: dict[str, tuple[int, int]], repeats: int
) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """Whole models timed side by side: the first is the plain baseline, the last two the AW variants compared.
    ``settings`` maps ``"infer"``/``"train"`` to (batch, side). Headers and rows: ms of each model, each variant
    against the baseline, and the last against the one before it."""
    (plain, *_), (before, after) = list(models), list(models)[-2:]
    rows = []
    for mode, (batch, size) in settings.items():
        torch.manual_seed(0)
        timings = time_models(models, torch.randn(batch, 3, size, size), mode, repeats=repeats)
        t = {name: timing.median for name, timing in timings.items()}
        ratios = [f"{t[name] / t[plain]:.2f}×" for name in list(models)[1:]]
        rows.append((mode, f"{batch}, {size}²", *(f"{t[name] * 1e3:.0f}" for name in models), *ratios,
                     f"{t[after] / t[before]:.2f}×"))  # fmt: skip
    headers = ("mode", "batch, size", *(f"{name} ms" for name in models),
               *(f"{name}/{plain}" for name in list(models)[1:]), f"{after}/{before}")  # fmt: skip
    return headers, rows


def impl_model(args: argparse.Namespace) -> None:
    classes = {"num_classes": args.classes}
    models = {
        "plain": cnnattn.create_model(args.backbone, **classes),
        "aw modulated": cnnattn.create_model(f"{args.backbone}_aw", attn_kwargs={"impl": "modulated"}, **classes),
        "aw auto": cnnattn.create_model(f"{args.backbone}_aw", **classes),
    }
    settings = {"infer": (args.infer_batch, args.infer_size), "train": (args.train_batch, args.train_size)}
    print(format_table(*model_rows(models, settings, args.repeats)))


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
    run.add_argument("--batches", default="8,32,64")
    run.add_argument("--repeats", type=int, default=5)
    run.add_argument("--runs", type=int, default=3, help="runs per case and process kind, their median reported")
    run.add_argument("--json", default=None, help="also write every row and the machine to this file")
    run.set_defaults(func=speed)
    lower = commands.add_parser("floor")
    lower.add_argument("--batch", type=int, default=32)
    lower.add_argument("--repeats", type=int, default=5)
    lower.set_defaults(func=floor)
    paths = commands.add_parser("impl")
    paths.add_argument("--batch", type=int, default=32)
    paths.add_argument("--sizes", default="1,2,3,4,5,7,10")
    paths.add_argument("--repeats", type=int, default=5)
    paths.set_defaults(func=impl)
    whole = commands.add_parser("impl-model")
    whole.add_argument("--backbone", default="resnet50")
    whole.add_argument("--repeats", type=int, default=5)
    whole.add_argument("--infer-batch", type=int, default=16)
    whole.add_argument("--infer-size", type=int, default=224)
    whole.add_argument("--train-batch", type=int, default=8)
    whole.add_argument("--train-size", type=int, default=160)
    whole.add_argument("--classes", type=int, default=1000)
    whole.set_defaults(func=impl_model)
    commands.add_parser("complexity").set_defaults(func=complexity)
    args = parser.parse_args()
    print(f"machine: {machine_info()}\ncommand: python benchmarks/awconv.py {' '.join(sys.argv[1:])}\n")
    args.func(args)


if __name__ == "__main__":
    main()
