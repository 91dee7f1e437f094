"""``cnnattn eval``: top-1/top-5 of a training checkpoint on a validation split."""

from __future__ import annotations

import argparse
import json

from .common import at_least, str_list


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("eval", help="top-1/top-5 of a training checkpoint on a validation split")
    parser.add_argument("--checkpoint", required=True, help="a .ckpt written by `cnnattn train`")
    parser.add_argument("--data", help="dataset (default: the one the model was trained on)")
    parser.add_argument("--img-size", type=at_least(1), help="default: the training resolution")
    parser.add_argument("--batch-size", type=at_least(1), help="default 128; detectors: the training batch size")
    parser.add_argument("--workers", type=at_least(0), default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--precision",
        type=str_list,
        default=["32"],
        help="comma-separated, e.g. 32,bf16 (fp16: CUDA only): each runs under autocast and reports its top-1 "
        "and its top-1 agreement with float32",
    )
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
        precisions=args.precision,
    )
    if args.json:
        print(json.dumps(metrics))
        return 0
    where = f"{metrics['model']} on {metrics['data']} ({metrics['images']} images, {metrics['img_size']} px)"
    if "AP" in metrics:  # a detector: COCO metrics
        values = ", ".join(f"{k} {'n/a' if metrics[k] is None else f'{metrics[k]:.2f}'}" for k in DETECTION_KEYS)
        print(f"{metrics['detector']} {where}: {values} (percent, COCOeval)")
        return 0
    print(f"{where}: top-1 {metrics['top1']:.2f} %, top-5 {metrics['top5']:.2f} %, loss {metrics['loss']:.4f}")
    for precision, low in metrics.get("precisions", {}).items():
        print(
            f"  {precision} (autocast): top-1 {low['top1']:.2f} %, top-5 {low['top5']:.2f} %; same top-1 class as "
            f"float32 on {low['agreement']:.2f} % of the images"
        )
    return 0


DETECTION_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")
