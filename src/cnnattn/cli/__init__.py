"""The ``cnnattn`` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from . import __version__
from .attention import list_attention
from .engine.compare import DEFAULT_ATTENTIONS
from .engine.module import NonFiniteLossError
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


def _train_config(args: argparse.Namespace, **defaults: object):
    """The recipe: defaults < --config file or ``defaults`` < explicit flags < trailing key=value overrides."""
    from .engine import load_config, parse_overrides

    flags = {name: getattr(args, name) for name in TRAIN_FLAGS if getattr(args, name, None) is not None}
    if getattr(args, "amp", None):
        flags["precision"] = "amp"  # bf16 on CPU, fp16 on GPU: resolved with the accelerator
    if getattr(args, "no_progress", None) or getattr(args, "json", None):  # JSON output stays machine-readable
        flags["progress"] = False
    return load_config(args.config, **{**defaults, **flags, **parse_overrides(args.overrides)})


def _cmd_train(args: argparse.Namespace) -> int:
    from .engine import train

    result = train(_train_config(args), resume=args.resume)
    print(json.dumps(result.to_dict()) if args.json else _train_summary(result))
    return 0


def _train_summary(result) -> str:
    return (
        f"done: {result.epochs} epochs in {result.seconds / 60:.1f} min; val top-1 {result.top1:.2f} % "
        f"(best {result.best_top1:.2f} %), top-5 {result.top5:.2f} %\ncheckpoints: {result.last_checkpoint}, "
        f"{result.best_checkpoint}\nlogs and results: {result.output}"
    )


def _cmd_eval(args: argparse.Namespace) -> int:
    from .engine.evaluate import evaluate

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
    else:
        print(
            f"{metrics['model']} on {metrics['data']} ({metrics['images']} images, {metrics['img_size']} px): "
            f"top-1 {metrics['top1']:.2f} %, top-5 {metrics['top5']:.2f} %, loss {metrics['loss']:.4f}"
        )
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    import logging

    from .engine.compare import compare, table

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    base = _train_config(args, **({} if args.config else COMPARE_DEFAULTS))
    rows = compare(
        base, args.attention, backbone=args.backbone, seeds=args.seeds, budget_minutes=args.budget, output=args.output
    )
    print(f"\n{table(rows)}\n\nwritten: {args.output}/results.csv, results.md, accuracy_vs_macs.png")
    return 0


def _str_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


TRAIN_FLAGS = (
    "model",
    "data",
    "epochs",
    "img_size",
    "batch_size",
    "output",
    "lr",
    "opt",
    "sched",
    "workers",
    "precision",
    "devices",
    "num_nodes",
    "accelerator",
    "strategy",
    "ema_decay",
    "grad_clip",
    "channels_last",
    "compile",
    "seed",
    "train_subset",
    "max_minutes",
    "sync_bn",
)
# The built-in comparison's recipe (used without --config; flags and key=value overrides still win): short
# enough that five variants × two seeds train in under 10 minutes on 2 CPU cores.
COMPARE_DEFAULTS = {
    "epochs": 2,
    "batch_size": 32,
    "opt": "adamw",
    "lr": 2e-3,
    "warmup_epochs": 0.3,
    "label_smoothing": 0.0,
    "train_subset": 2500,
}


def _add_recipe_flags(parser: argparse.ArgumentParser, *, single_run: bool) -> None:
    """Flags shared by train and compare; unset flags leave the config file's (or default) values alone."""
    if single_run:
        parser.add_argument("--model", help="model name, e.g. resnet18_das (see `cnnattn list`)")
        parser.add_argument("--output", help="run folder (default runs/<model>-<data>-s<seed>)")
        parser.add_argument("--seed", type=int)
        parser.add_argument("--resume", action="store_true", help="continue the run in --output from last.ckpt")
        parser.add_argument("--json", action="store_true", help="print the result as JSON (no progress bar)")
    parser.add_argument(
        "--data", help="PATH (folder, .zip, CIFAR, Stanford Dogs, CUB) or builtin:digits|builtin:cluttered"
    )
    parser.add_argument("--config", help="YAML recipe (see configs/); flags and key=value overrides win")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--img-size", type=int, help="input side in pixels (default: the dataset's)")
    parser.add_argument("--batch-size", type=int, help="per process; global batch = this × processes")
    parser.add_argument("--lr", type=float, help="peak LR (default lr_base × global batch / 256)")
    parser.add_argument("--opt", choices=("sgd", "adamw"))
    parser.add_argument("--sched", choices=("cosine", "step", "none"))
    parser.add_argument("--workers", type=int, help="data-loading processes per training process")
    parser.add_argument("--precision", choices=("32", "bf16", "fp16", "amp"))
    parser.add_argument("--amp", action="store_true", help="mixed precision: bf16 on CPU, fp16 on GPU")
    parser.add_argument("--ema-decay", type=float, help="keep and evaluate an EMA of the weights, e.g. 0.9998")
    parser.add_argument("--grad-clip", type=float, help="clip the gradient norm to this value")
    parser.add_argument("--channels-last", action="store_true", default=None)
    parser.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    parser.add_argument("--accelerator", help="auto, cpu or gpu")
    parser.add_argument("--devices", help="devices per node: auto or a count (DDP when > 1)")
    parser.add_argument("--num-nodes", type=int)
    parser.add_argument("--strategy", help="Lightning strategy, e.g. ddp (auto by default)")
    parser.add_argument("--sync-bn", action="store_true", default=None, help="synchronise BatchNorm across GPUs")
    parser.add_argument("--train-subset", type=int, help="train on N samples of the train split (fixed choice)")
    parser.add_argument("--max-minutes", type=float, help="stop each run after this wall-clock time")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="any setting, e.g. label_smoothing=0.0")


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

    tra = commands.add_parser("train", help="train a model on a dataset (PyTorch Lightning; resumable)")
    _add_recipe_flags(tra, single_run=True)
    tra.set_defaults(func=_cmd_train)

    eva = commands.add_parser("eval", help="top-1/top-5 of a training checkpoint on a validation split")
    eva.add_argument("--checkpoint", required=True, help="a .ckpt written by `cnnattn train`")
    eva.add_argument("--data", help="dataset (default: the one the model was trained on)")
    eva.add_argument("--img-size", type=int, help="default: the training resolution")
    eva.add_argument("--batch-size", type=int, default=128)
    eva.add_argument("--workers", type=int, default=2)
    eva.add_argument("--device", default="cpu")
    eva.add_argument("--json", action="store_true")
    eva.set_defaults(func=_cmd_eval)

    com = commands.add_parser(
        "compare",
        help="train attention variants under one recipe; table, CSV, plot",
        description=(
            "Train <backbone>_<attention> for every --attention and seeds 0..K-1 under one recipe, then print "
            "and write the table (top-1 mean ± std, params, MACs, latency) and an accuracy-vs-MACs plot. "
            "Defaults: --data builtin:cluttered and, without --config, the built-in recipe "
            + ", ".join(f"{k}={v}" for k, v in COMPARE_DEFAULTS.items())
            + " (about 6 minutes on 2 CPU cores); flags and key=value overrides change any of it."
        ),
    )
    com.add_argument(
        "--attention", type=_str_list, default=list(DEFAULT_ATTENTIONS), help="comma-separated; none = plain"
    )
    com.add_argument("--backbone", default="resnet18")
    com.add_argument("--seeds", type=int, default=2, help="seeds 0..K-1 for every variant")
    com.add_argument("--budget", type=float, help="total training minutes, shared equally by all runs")
    com.add_argument("--output", default="runs/compare", help="folder of the runs and the summary")
    _add_recipe_flags(com, single_run=False)
    com.set_defaults(func=_cmd_compare, data="builtin:cluttered")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, NonFiniteLossError) as err:
        print(f"cnnattn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader left (e.g. `cnnattn list | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
