"""``cnnattn bench``: latency, throughput and memory of models, side by side."""

from __future__ import annotations

import argparse
import json

from ..models.detection import DETECTORS
from .common import at_least, int_list, str_list


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("bench", help="latency, throughput and memory of models, side by side")
    parser.add_argument("models", nargs="+", help="model names; ratios are to the first")
    parser.add_argument("--batch-size", type=int_list, default=[1], help="one or more, e.g. 1,16")
    parser.add_argument("--img-size", type=at_least(1), default=224, help="input side (a detector's min and max size)")
    parser.add_argument(
        "--detector", choices=sorted(DETECTORS), help="time this detector on each MODEL as its backbone"
    )
    parser.add_argument(
        "--num-classes", type=at_least(1), help="default 1000, or 91 with --detector (COCO, background counted)"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--mode", choices=("infer", "train"), default="infer")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile each model and time it beside eager (same as --runtime eager,compile)",
    )
    parser.add_argument(
        "--runtime",
        type=str_list,
        help="comma list of eager, compile (inductor), onnxruntime (ONNX export, CPU inference): each model in each, "
        "side by side in one interleaved run",
    )
    parser.add_argument("--amp", action="store_true", help="autocast: bfloat16 on CPU, float16 on CUDA")
    parser.add_argument("--warmup", type=at_least(0), default=3)
    parser.add_argument("--repeats", type=at_least(1), default=10)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..analysis import machine_info
    from ..analysis.bench import bench, bench_table

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
            num_classes=args.num_classes or (91 if args.detector else 1000),
            detector=args.detector,
            runtimes=args.runtime,
        )
    ]
    if args.json:
        print(json.dumps({"machine": machine_info(), "results": [r.to_dict() for r in results]}))
        return 0
    print(
        f"machine: {machine_info()}; {f'{args.detector} detector, ' if args.detector else ''}mode {args.mode}, "
        f"{args.img_size}², device {args.device}, "
        f"median of {args.repeats} interleaved runs\n"
    )
    print(bench_table(results))
    return 0
