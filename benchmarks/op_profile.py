"""Where an attention's extra time goes: per-operator self time of ``<backbone>_<attention>`` beside the plain backbone.

    python benchmarks/op_profile.py ATTENTION [--backbone resnet50] [--mode infer|train] [--top 12] [--repeats 3]

Profiles one step of each model with ``torch.profiler`` (CPU, after two warm-up steps; the median of ``--repeats``
profiled steps per operator), the step attention_overhead.py times (``cnnattn.analysis.bench.make_step``) at its
settings: inference at batch 16 and 224², or a training step (forward, loss, backward, SGD) at batch 8 and 160².
Prints the operators whose self time grew most, and the totals: the profile that docs/benchmarks.md reads each
attention's floor from.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile

import cnnattn
from cnnattn.analysis import machine_info
from cnnattn.analysis.bench import make_step
from cnnattn.utils import format_table

SETTINGS = {"infer": (16, 224), "train": (8, 160)}


def op_self_ms(step: Callable[[], None], repeats: int) -> dict[str, float]:
    """Median over ``repeats`` profiled steps of each operator's summed self CPU time (ms) in one step."""
    step()
    step()
    runs = []
    for _ in range(repeats):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        runs.append({event.key: event.self_cpu_time_total / 1e3 for event in prof.key_averages()})
    return {op: statistics.median(run.get(op, 0.0) for run in runs) for op in set().union(*runs)}


def _row(op: str, plain_ms: float, attended_ms: float) -> tuple[str, str, str, str]:
    return op, f"{plain_ms:.1f}", f"{attended_ms:.1f}", f"{attended_ms - plain_ms:+.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("attention")
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--mode", choices=tuple(SETTINGS), default="infer")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    names = (args.backbone, f"{args.backbone}_{args.attention}")
    batch, size = SETTINGS[args.mode]
    torch.manual_seed(0)
    x = torch.randn(batch, 3, size, size)
    plain, attended = (op_self_ms(make_step(cnnattn.create_model(n), x, args.mode, False), args.repeats) for n in names)
    ops = sorted(set(plain) | set(attended), key=lambda op: plain.get(op, 0.0) - attended.get(op, 0.0))
    total_plain, total_attended = sum(plain.values()), sum(attended.values())
    rows = [_row(op, plain.get(op, 0.0), attended.get(op, 0.0)) for op in ops[: args.top]]
    rows.append(_row("all operators", total_plain, total_attended))
    print(f"machine: {machine_info()}\ncommand: python benchmarks/op_profile.py {args.attention} --backbone "
          f"{args.backbone} --mode {args.mode} --top {args.top} --repeats {args.repeats}\n")  # fmt: skip
    print(f"{args.mode}, batch {batch}, {size}²: self CPU ms per step (median of {args.repeats} profiled steps), "
          f"all operators {total_attended / total_plain:.2f}× the plain model's\n")  # fmt: skip
    print(format_table(("operator", f"{names[0]} ms", f"{names[1]} ms", "difference ms"), rows))


if __name__ == "__main__":
    main()
