"""``cnnattn predict``: a trained checkpoint on image files (boxes drawn for detectors, top-5 for classifiers)."""

from __future__ import annotations

import argparse
import json

from .common import fraction


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("predict", help="run a checkpoint on images: boxes (drawn) or top-5 classes")
    parser.add_argument("--checkpoint", required=True, help="a .ckpt written by `cnnattn train`")
    parser.add_argument("--images", required=True, help="an image file or a folder of images (searched recursively)")
    parser.add_argument("--output", required=True, help="folder for predictions.json and the drawn images")
    parser.add_argument("--score-threshold", type=fraction, default=0.5, help="detectors: keep boxes scoring at least")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="also print the predictions as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.predict import predict

    results = predict(
        args.checkpoint, args.images, args.output, score_threshold=args.score_threshold, device=args.device
    )
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"{len(results)} prediction(s) written to {args.output}/predictions.json")
    return 0
