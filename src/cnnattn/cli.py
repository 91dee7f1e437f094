"""The ``cnnattn`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from .attention import list_attention
from .models import BACKBONES, list_models
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


if __name__ == "__main__":
    raise SystemExit(main())
