"""The command-line reference as Markdown, generated from the parsers themselves (the docs site's CLI page)."""

from __future__ import annotations

import argparse

from . import build_parser

__all__ = ["cli_reference"]


def _flags(action: argparse.Action) -> str:
    names = ", ".join(f"`{o}`" for o in action.option_strings) or f"`{action.metavar or action.dest}`"
    takes_value = action.nargs != 0 and not isinstance(action, argparse._HelpAction)
    if takes_value and action.option_strings:
        names += f" `{action.metavar or action.dest.upper()}`"
    return names


def _default(action: argparse.Action) -> str:
    if action.default in (None, False, argparse.SUPPRESS) or action.nargs == 0:
        return ""
    return f"`{action.default}`"


def _cell(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def _command_section(name: str, parser: argparse.ArgumentParser) -> list[str]:
    lines = [f"## `cnnattn {name}`", "", _cell(parser.description or ""), "", "```text", parser.format_usage().strip()]
    lines += ["```", "", "| argument | default | meaning |", "|---|---|---|"]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        choices = f" One of: {', '.join(map(str, action.choices))}." if action.choices else ""
        lines.append(f"| {_flags(action)} | {_cell(_default(action))} | {_cell(action.help)}{_cell(choices)} |")
    return [*lines, ""]


def cli_reference() -> str:
    """Every ``cnnattn`` command with its description, usage and arguments (defaults and choices), in Markdown."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    lines = [_cell(parser.description), ""]
    lines += ["| command | what it does |", "|---|---|"]
    lines += [f"| [`{c.dest}`](#cnnattn-{c.dest}) | {_cell(c.help)} |" for c in commands._choices_actions]
    lines.append("")
    for name, sub in commands.choices.items():
        lines += _command_section(name, sub)
    return "\n".join(lines)
