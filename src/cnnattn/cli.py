"""The ``cnnattn`` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from . import __version__
from .attention import list_attention
from .models import BACKBONES, attach, create_model, list_models
from .utils import format_table


def _cmd_list(args: argparse.Namespace) -> int:
    infos = list_attention(args.kind)
    rows = [(i.name, i.kind, i.position, ",".join(map(str, i.stages)), i.description) for i in infos]
    print("Attention modules\n")
    print(format_table(("name", "kind", "default position", "default stages", "description"), rows))
    models = list_models(args.models)
    print(
        f"\nModels ({len(models)}{'' if args.models == '*' else ' matching ' + repr(args.models)}); "
        f"backbones: {', '.join(BACKBONES)}\n"
    )
    by_backbone = {b: [m for m in models if m == b or m.startswith(b + "_")] for b in BACKBONES}
    print(format_table(("backbone", "models"), [(b, " ".join(ms)) for b, ms in by_backbone.items() if ms]))
    return 0


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _cmd_profile(args: argparse.Namespace) -> int:
    from .analysis import profile

    model = create_model(args.model, num_classes=args.num_classes)
    if args.attention:
        attach(model, args.attention, stages=args.stages, position=args.position)
    result = profile(model, (3, args.img_size, args.img_size))
    if args.json:
        print(json.dumps({"model": args.model, **result.to_dict()}))
        return 0
    print(
        f"{args.model}{' + ' + args.attention if args.attention else ''} at {args.img_size}×{args.img_size}: "
        f"{result.params:,} params, {result.macs / 1e9:.3f} GMACs executed, {result.dense_macs / 1e9:.3f} GMACs "
        "dense-equivalent (GFLOPs = 2 × MACs)\n"
    )
    print(result.table(depth=args.depth))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .analysis import machine_info
    from .analysis.bench import bench, bench_table

    results = [
        r
        for batch in args.batch_size
        for r in bench(
            args.models,
            batch_size=batch,
            img_size=args.img_size,
            device=args.device,
            mode=args.mode,
            channels_last=args.channels_last,
            compile=args.compile,
            amp=args.amp,
            warmup=args.warmup,
            repeats=args.repeats,
            memory=not args.no_memory,
        )
    ]
    if args.json:
        print(json.dumps({"machine": machine_info(), "results": [r.to_dict() for r in results]}))
        return 0
    print(
        f"machine: {machine_info()}; mode {args.mode}, {args.img_size}², device {args.device}, "
        f"median of {args.repeats} interleaved runs\n"
    )
    print(bench_table(results))
    return 0


def _cmd_scale(args: argparse.Namespace) -> int:
    from .analysis.plots import plot_scaling
    from .analysis.scaling import loglog_slope, scale, scale_rows

    results = scale(
        args.attentions,
        args.sizes,
        channels=args.channels,
        batch_size=args.batch_size,
        mode=args.mode,
        max_seconds=args.max_seconds,
    )
    if args.plot:
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
    sizes = sorted(args.sizes)
    print(format_table(("attention", *(f"{s}²" for s in sizes), "log-log slope"), rows))
    if args.plot:
        print(f"\nplot: {args.plot}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnattn",
        description="Attention modules for CNNs: add, train, compare, profile and visualise them.",
    )
    parser.add_argument("--version", action="version", version=f"cnnattn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    listing = commands.add_parser("list", help="list attention modules and model names")
    listing.add_argument("--kind", choices=("gate", "conv"), help="only attention of this kind")
    listing.add_argument("--models", default="*", metavar="GLOB", help="filter model names, e.g. '*_cbam'")
    listing.set_defaults(func=_cmd_list)

    prof = commands.add_parser("profile", help="params, executed and dense-equivalent MACs, per module")
    prof.add_argument("model", help="model name, e.g. resnet50_cbam (see `cnnattn list`)")
    prof.add_argument("--img-size", type=int, default=224)
    prof.add_argument("--num-classes", type=int, default=1000)
    prof.add_argument("--attention", help="also attach this attention to the model")
    prof.add_argument("--stages", type=_int_list, default=[1, 2, 3, 4], help="with --attention, e.g. 2,3,4")
    prof.add_argument("--position", default="block", help="with --attention: block, after_block, stage, conv")
    prof.add_argument("--depth", type=int, default=1, help="module nesting depth of the table")
    prof.add_argument("--json", action="store_true")
    prof.set_defaults(func=_cmd_profile)

    ben = commands.add_parser("bench", help="latency, throughput and memory of models, side by side")
    ben.add_argument("models", nargs="+", help="model names; ratios are to the first")
    ben.add_argument("--batch-size", type=_int_list, default=[1], help="one or more, e.g. 1,16")
    ben.add_argument("--img-size", type=int, default=224)
    ben.add_argument("--device", default="cpu", help="cpu or cuda")
    ben.add_argument("--mode", choices=("infer", "train"), default="infer")
    ben.add_argument("--channels-last", action="store_true")
    ben.add_argument("--compile", action="store_true", help="torch.compile each model (first runs compile)")
    ben.add_argument("--amp", action="store_true", help="autocast: bfloat16 on CPU, float16 on CUDA")
    ben.add_argument("--warmup", type=int, default=3)
    ben.add_argument("--repeats", type=int, default=10)
    ben.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    ben.add_argument("--json", action="store_true")
    ben.set_defaults(func=_cmd_bench)

    sca = commands.add_parser("scale", help="time and memory of attention layers against resolution")
    sca.add_argument("attentions", nargs="+", help="attention names, e.g. das nl")
    sca.add_argument("--sizes", type=_int_list, default=[32, 64, 128, 256, 512, 1024])
    sca.add_argument("--channels", type=int, default=64)
    sca.add_argument("--batch-size", type=int, default=1)
    sca.add_argument("--mode", choices=("infer", "train"), default="infer")
    sca.add_argument("--max-seconds", type=float, default=120.0, help="per case; slower cases are 'timeout'")
    sca.add_argument("--plot", help="write a log-log PNG here")
    sca.add_argument("--json", action="store_true")
    sca.set_defaults(func=_cmd_scale)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"cnnattn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader left (e.g. `cnnattn list | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
