"""``cnnattn profile``: params, executed and dense-equivalent MACs, per module."""

from __future__ import annotations

import argparse
import json

from ..models.detection import DETECTORS
from ..utils import format_table
from .common import at_least, int_list


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("profile", help="params, executed and dense-equivalent MACs, per module")
    parser.add_argument("model", help="model name, e.g. resnet50_cbam (see `cnnattn list`)")
    parser.add_argument(
        "--img-size", type=at_least(1), default=224, help="input side (a detector's min_size and max_size)"
    )
    parser.add_argument("--num-classes", type=at_least(1), help="default 1000, or 91 (COCO) with --detector")
    parser.add_argument(
        "--detector", choices=sorted(DETECTORS), help="profile this detector on MODEL: backbone, FPN, heads"
    )
    parser.add_argument("--attention", help="also attach this attention to the model")
    parser.add_argument("--stages", type=int_list, default=[1, 2, 3, 4], help="with --attention, e.g. 2,3,4")
    parser.add_argument(
        "--position", default=None, help="with --attention: block, after_block, stage, expansion or conv (its default)"
    )
    parser.add_argument("--depth", type=at_least(0), default=1, help="module nesting depth of the table")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..analysis import profile
    from ..models import attach, create_detector, create_model

    if args.detector:
        size = dict(min_size=args.img_size, max_size=args.img_size)
        model = create_detector(args.detector, args.model, args.num_classes or 91, **size).eval()
    else:
        model = create_model(args.model, num_classes=args.num_classes or 1000)
    if args.attention:
        attach(model, args.attention, stages=args.stages, position=args.position)
    result = profile(model, (3, args.img_size, args.img_size))
    parts = result.detector_parts() if args.detector else None
    if args.json:
        print(json.dumps({"model": args.model, "detector": args.detector, **result.to_dict(), "parts": parts}))
        return 0
    print(
        f"{args.model}{' + ' + args.attention if args.attention else ''} at {args.img_size}×{args.img_size}: "
        f"{result.params:,} params, {result.macs / 1e9:.3f} GMACs executed, {result.dense_macs / 1e9:.3f} GMACs "
        "dense-equivalent (GFLOPs = 2 × MACs)\n"
    )
    print(result.table(depth=args.depth))
    if parts:
        rows = [(n, f"{p['params'] / 1e6:.3f}", f"{p['macs'] / 1e9:.3f}") for n, p in parts.items()]
        print(f"\n{args.detector} on {args.model}\n\n{format_table(('part', 'params (M)', 'GMACs'), rows)}")
    return 0
