"""``cnnattn list``: attention modules and model names."""

from __future__ import annotations

import argparse

from ..attention import list_attention
from ..models import BACKBONES, list_models
from ..utils import format_table


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("list", help="list attention modules and model names")
    parser.add_argument("--kind", choices=("gate", "conv"), help="only attention of this kind")
    parser.add_argument("--models", default="*", metavar="GLOB", help="filter model names, e.g. '*_cbam'")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
