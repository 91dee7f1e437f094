"""``cnnattn timm SCRIPT [ARGS...]``: run one of timm's scripts (``train.py``, ``validate.py``, ``benchmark.py``,
``inference.py``...) with cnnattn's models registered, e.g.
``cnnattn timm pytorch-image-models/validate.py --model resnet18_das --checkpoint hub/model.safetensors ...``.

timm's scripts are not part of its wheel: they live in its repository
(https://github.com/huggingface/pytorch-image-models, at the tag of the installed timm version). The script runs
in this process as ``__main__``, with ``sys.argv`` set to ``[SCRIPT, *ARGS]`` and its folder first on
``sys.path``, after ``import cnnattn`` has put every cnnattn name in timm's registry.
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

TIMM_REPOSITORY = "https://github.com/huggingface/pytorch-image-models"


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "timm",
        help="run one of timm's scripts (train.py, validate.py, benchmark.py, inference.py) with cnnattn's models",
        description=(
            "Run a timm script, e.g. `cnnattn timm pytorch-image-models/validate.py --model resnet18_das ...`, "
            "with every cnnattn model name registered in timm. The scripts come with timm's repository "
            f"({TIMM_REPOSITORY}; use the tag of the installed timm version), not with its wheel. Every argument "
            "after SCRIPT goes to it."
        ),
    )
    parser.add_argument("script", metavar="SCRIPT", help="path to the timm script, e.g. pytorch-image-models/train.py")
    parser.add_argument("script_args", nargs=argparse.REMAINDER, metavar="ARGS", help="the script's own arguments")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import timm

    import cnnattn  # noqa: F401  (registers the models with timm)

    script = Path(args.script)
    if not script.is_file():
        raise FileNotFoundError(
            f"no script at {script}. timm's scripts are not in its wheel: clone {TIMM_REPOSITORY} (tag v"
            f"{timm.__version__}) and pass e.g. pytorch-image-models/{script.name or 'validate.py'}."
        )
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [str(script), *args.script_args]
    sys.path.insert(0, str(script.resolve().parent))
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
    return 0
