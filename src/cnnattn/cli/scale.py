"""``cnnattn scale``: time and memory of attention layers against resolution."""

from __future__ import annotations

import argparse
import json

from ..utils import format_table
from .common import at_least, int_list


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("scale", help="time and memory of attention layers against resolution")
    parser.add_argument("attentions", nargs="+", help="attention names, e.g. das nl")
    parser.add_argument("--sizes", type=int_list, default=[32, 64, 128, 256, 512, 1024])
    parser.add_argument("--channels", type=at_least(1), default=64)
    parser.add_argument("--batch-size", type=at_least(1), default=1)
    parser.add_argument("--mode", choices=("infer", "train"), default="infer")
    parser.add_argument(
        "--max-seconds",
        type=at_least(0, float, inclusive=False),
        default=120.0,
        help="per case; slower cases are 'timeout'",
    )
    parser.add_argument("--plot", help="write a log-log PNG here")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..analysis.scaling import loglog_slope, scale, scale_rows

    results = scale(
        args.attentions,
        args.sizes,
        channels=args.channels,
        batch_size=args.batch_size,
        mode=args.mode,
        max_seconds=args.max_seconds,
    )
    if args.plot:
        from ..analysis.plots import plot_scaling

        plot_scaling(results, args.plot, title=f"{args.mode}, C={args.channels}, batch {args.batch_size}")
    if args.json:
        print(json.dumps(scale_rows(results)))
        return 0
    rows = []
    for name, points in results.items():
        slope = loglog_slope(points)
        cells = [
            f"{p.seconds * 1e3:.1f} ms / {p.peak_memory_mb:.0f} MB" if p.status == "ok" else p.status for p in points
        ]
        rows.append((name, *cells, "—" if slope is None else f"{slope:.2f}"))
    print(format_table(("attention", *(f"{s}²" for s in sorted(args.sizes)), "log-log slope"), rows))
    if args.plot:
        print(f"\nplot: {args.plot}")
    return 0
