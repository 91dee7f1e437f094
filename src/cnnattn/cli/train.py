"""``cnnattn train``: train a model on a dataset (PyTorch Lightning; resumable)."""

from __future__ import annotations

import argparse
import json

from .common import add_recipe_flags, quiet_lightning, recipe, say


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("train", help="train a model on a dataset (PyTorch Lightning; resumable)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --output from last.ckpt")
    parser.add_argument("--json", action="store_true", help="print the result as JSON (no progress bar)")
    add_recipe_flags(parser, single_run=True)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine import train
    from ..engine.tasks import get_task

    config = recipe(args)
    quiet_lightning()
    if config.progress:
        say(
            f"train: {config.model} on {config.data}, {config.epochs} epochs, batch {config.batch_size}"
            f"{' (resuming)' if args.resume else ''}; output {config.output or 'runs/<model>-<data>-s<seed>'}"
        )
    result = train(config, resume=args.resume)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    scores = get_task(result.task).scores(result)
    print(
        f"done: {result.epochs} epochs in {result.seconds / 60:.1f} min; {scores}\ncheckpoints: "
        f"{result.last_checkpoint}, {result.best_checkpoint}\nlogs and results: {result.output}"
    )
    return 0
