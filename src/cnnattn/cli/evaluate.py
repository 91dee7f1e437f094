"""``cnnattn eval``: top-1/top-5 of a training checkpoint on a validation split."""

from __future__ import annotations

import argparse
import json


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("eval", help="top-1/top-5 of a training checkpoint on a validation split")
    parser.add_argument("--checkpoint", required=True, help="a .ckpt written by `cnnattn train`")
    parser.add_argument("--data", help="dataset (default: the one the model was trained on)")
    parser.add_argument("--img-size", type=int, help="default: the training resolution")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.evaluate import evaluate

    metrics = evaluate(
        args.checkpoint,
        args.data,
        img_size=args.img_size,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
    )
    if args.json:
        print(json.dumps(metrics))
        return 0
    print(
        f"{metrics['model']} on {metrics['data']} ({metrics['images']} images, {metrics['img_size']} px): "
        f"top-1 {metrics['top1']:.2f} %, top-5 {metrics['top5']:.2f} %, loss {metrics['loss']:.4f}"
    )
    return 0
