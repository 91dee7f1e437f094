"""``cnnattn profile``: params, executed and dense-equivalent MACs, per module."""

from __future__ import annotations

import argparse
import json

from .common import int_list


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("profile", help="params, executed and dense-equivalent MACs, per module")
    parser.add_argument("model", help="model name, e.g. resnet50_cbam (see `cnnattn list`)")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--attention", help="also attach this attention to the model")
    parser.add_argument("--stages", type=int_list, default=[1, 2, 3, 4], help="with --attention, e.g. 2,3,4")
    parser.add_argument("--position", default="block", help="with --attention: block, after_block, stage, conv")
    parser.add_argument("--depth", type=int, default=1, help="module nesting depth of the table")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..analysis import profile
    from ..models import attach, create_model

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
