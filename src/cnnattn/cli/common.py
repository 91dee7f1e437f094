"""Option parsing shared by the commands: list types and the recipe flags, derived from ``TrainConfig``'s fields."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

from ..engine.config import TrainConfig, load_config, parse_overrides

__all__ = ["add_recipe_flags", "at_least", "fraction", "int_list", "quiet_lightning", "recipe", "say", "str_list"]

# Set per run by `compare` (variant and seed) rather than once for all runs.
PER_RUN_SETTINGS = ("model", "output", "seed")


def quiet_lightning() -> None:
    """Keep Lightning's info lines (accelerators found, an advert for its cloud logger, dataloader notes) off a
    command's story: its warnings and errors still show. The command says what it runs itself."""
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)


def say(text: str) -> None:
    """A line of a command's story on stdout, flushed at once (logs show it as it happens)."""
    print(text, flush=True)


def at_least(low: float, kind: type = int, *, inclusive: bool = True) -> Callable[[str], Any]:
    """An argparse ``type``: text → ``kind`` (int or float), at least ``low`` (above it if not ``inclusive``)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            expected = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not (value >= low if inclusive else value > low):  # NaN fails both
            raise argparse.ArgumentTypeError(f"must be {'at least' if inclusive else 'more than'} {low}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def fraction(text: str) -> float:
    """An argparse ``type``: a number in [0, 1]."""
    value = at_least(0, float)(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be at most 1, got {text}")
    return value


def int_list(text: str) -> list[int]:
    """``'1,16'`` → ``[1, 16]``: positive integers."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers of at least 1, got {text!r}")
    return values


def str_list(text: str) -> list[str]:
    """``'none, se'`` → ``['none', 'se']``."""
    return [v.strip() for v in text.split(",") if v.strip()]


def _yaml_mapping(text: str) -> dict[str, Any]:
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a YAML mapping such as '{{rd_ratio: 0.125}}', got {text!r}")
    return value


def _flag(parser: argparse._ArgumentGroup, setting: dataclasses.Field) -> None:
    """One ``--flag`` for one recipe setting; values stay strings and ``load_config`` converts them."""
    flag, meta = "--" + setting.name.replace("_", "-"), setting.metadata
    default = setting.default_factory() if setting.default is dataclasses.MISSING else setting.default
    help_text = f"{meta.get('help', '')} [recipe default: {default}]"
    if str(setting.type).startswith("bool"):
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
    elif str(setting.type).startswith("dict"):
        parser.add_argument(flag, type=_yaml_mapping, metavar="YAML", help=help_text)
    else:
        metavar = None if meta.get("choices") else str(setting.type).split(" ")[0].upper()  # INT, FLOAT, STR
        parser.add_argument(flag, choices=meta.get("choices"), metavar=metavar, help=help_text)


def add_recipe_flags(parser: argparse.ArgumentParser, *, single_run: bool) -> None:
    """A flag for every ``TrainConfig`` setting (``compare`` sets model, output and seed itself), ``--config``,
    ``--amp`` and trailing ``KEY=VALUE`` overrides. Unset flags leave the config file's (or default) values."""
    parser.add_argument("--config", help="YAML recipe (see configs/); flags and KEY=VALUE overrides win")
    parser.add_argument("--amp", action="store_true", help="mixed precision: bf16 on CPU, fp16 on GPU")
    parser.add_argument("--quiet", action="store_true", help="no progress and no story: stdout holds the results only")
    group = parser.add_argument_group("recipe settings (each also as KEY=VALUE)")
    for setting in dataclasses.fields(TrainConfig):
        if single_run or setting.name not in PER_RUN_SETTINGS:
            _flag(group, setting)
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="any setting, e.g. label_smoothing=0.0")


def recipe(args: argparse.Namespace, **defaults: Any) -> TrainConfig:
    """The recipe: defaults < --config file or ``defaults`` < explicit flags < trailing KEY=VALUE overrides."""
    flags = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(TrainConfig)}
    if args.amp:
        flags["precision"] = "amp"  # bf16 on CPU, fp16 on GPU: resolved with the accelerator
    if args.quiet or getattr(args, "json", False):  # stdout stays machine-readable: no progress on it
        flags["progress"] = False
    flags = {k: v for k, v in flags.items() if v is not None}
    return load_config(args.config, **{**defaults, **flags, **parse_overrides(args.overrides)})
