"""``cnnattn compare``: attention variants trained under one recipe; table, CSV, plot."""

from __future__ import annotations

import argparse

from ..engine.config import COMPARE_RECIPE, DEFAULT_ATTENTIONS
from .common import add_recipe_flags, at_least, quiet_lightning, recipe, say, str_list


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "compare",
        help="train attention variants under one recipe; table, CSV, plot",
        description=(
            "Train <backbone>_<attention> for every --attention and seeds 0..K-1 under one recipe, then print "
            "and write the table (top-1 and top-5, or with --task detect COCO AP and AP50: mean ± std; params, "
            "MACs, latency) and an accuracy-vs-MACs plot. Classification defaults: --data builtin:cluttered and, "
            "without --config, the built-in recipe "
            + ", ".join(f"{k}={v}" for k, v in COMPARE_RECIPE.items())
            + " (about 5 minutes on 2 CPU cores). Detection (--task detect --detector retinanet --data PATH) uses "
            "the detection recipe (SGD 0.02 × batch/16, warm-up) or --config, e.g. "
            "configs/raccoon_retinanet_r18.yaml. Flags and key=value overrides change any of it."
        ),
    )
    parser.add_argument(
        "--attention", type=str_list, default=list(DEFAULT_ATTENTIONS), help="comma-separated; none = plain"
    )
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--seeds", type=at_least(1), default=2, help="seeds 0..K-1 for every variant")
    parser.add_argument(
        "--budget", type=at_least(0, float, inclusive=False), help="total training minutes, shared equally by all runs"
    )
    parser.add_argument("--output", default="runs/compare", help="folder of the runs and the summary")
    parser.add_argument(
        "--localization",
        action="store_true",
        help="also score attention maps and Grad-CAM against object boxes (pointing game, energy in box); "
        "data with boxes, e.g. builtin:cluttered",
    )
    add_recipe_flags(parser, single_run=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.compare import compare, differences, localization_notes, table
    from ..engine.tasks import get_task

    quiet_lightning()
    base = recipe(args)
    if not args.config:  # the task's comparison recipe, under the user's flags
        base = recipe(args, **get_task(base.task).compare_recipe)
    rows = compare(
        base,
        args.attention,
        backbone=args.backbone,
        seeds=args.seeds,
        budget_minutes=args.budget,
        output=args.output,
        localization=args.localization,
        report=None if args.quiet else say,
    )
    findings = "\n".join(differences(rows) + localization_notes(rows))
    written = "results.csv, results.md, accuracy_vs_macs.png, curves.csv, curves.png"
    print(f"\n{table(rows)}\n\n{findings}\n\nwritten: {args.output}/{written}")
    return 0
