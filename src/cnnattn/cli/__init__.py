"""The ``cnnattn`` command line: one module per command, each with ``register(commands)`` and ``run(args)``.

Heavy libraries (Lightning, matplotlib) are imported inside the commands that need them, so ``cnnattn list``
and ``--help`` start quickly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..engine.errors import CheckpointWriteError, NonFiniteLossError, TrainingInterrupted

__all__ = ["COMMANDS", "build_parser", "main"]

# command -> its module in this package
COMMANDS = {
    "list": "listing",
    "profile": "profile",
    "bench": "bench",
    "scale": "scale",
    "train": "train",
    "eval": "evaluate",
    "predict": "predict",
    "compare": "compare",
    "show": "show",
    "export": "export",
    "timm": "timm_scripts",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnattn",
        description="Attention modules for CNNs: add, train, compare, profile and visualise them.",
    )
    parser.add_argument("--version", action="version", version=f"cnnattn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS.values():
        importlib.import_module(f".{module}", __name__).register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except TrainingInterrupted as err:
        print(f"cnnattn {args.command}: {err}", file=sys.stderr)
        return err.exit_code
    except (ValueError, FileNotFoundError, NonFiniteLossError, CheckpointWriteError) as err:
        print(f"cnnattn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader left (e.g. `cnnattn list | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
