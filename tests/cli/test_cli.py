from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys

import pytest

import cnnattn
from cnnattn.cli import build_parser, main
from cnnattn.cli.common import recipe
from cnnattn.engine.config import TrainConfig

REQUIRED = ("se", "eca", "cbam", "gc", "nl", "coord", "bam", "triplet")


def test_list_shows_gates_and_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in REQUIRED:
        assert f"| {name} " in out
    for model in ("resnet50_cbam", "mobilenetv2_triplet", "resnet152_bam", "resnet18 "):
        assert model in out


def test_list_filters(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--models", "*_nl"]) == 0
    out = capsys.readouterr().out
    assert "resnet50_nl" in out and "resnet50_se" not in out


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"cnnattn {cnnattn.__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "list" in capsys.readouterr().out


def test_bad_argument_exits_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["list", "--kind", "spatial"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'spatial'" in capsys.readouterr().err


def test_module_entry_point_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cnnattn", "list", "--kind", "gate"], capture_output=True, text=True, check=True
    )
    assert "triplet" in result.stdout


def test_closed_pipe_is_not_a_traceback() -> None:
    result = subprocess.run(
        f"{sys.executable} -m cnnattn list | head -n 1", shell=True, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "Attention modules"
    assert "Traceback" not in result.stderr


def test_list_imports_no_training_or_plotting_library() -> None:
    code = "import sys; from cnnattn.cli import main; main(['list']); print(sorted(set(sys.modules) & HEAVY))"
    heavy = "{'lightning', 'lightning.pytorch', 'matplotlib', 'torchmetrics', 'tensorboard'}"
    result = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {heavy}\n{code}"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("command", ["train", "compare"])
def test_every_recipe_setting_has_a_flag_with_help(command: str) -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    flags = {opt: action for action in sub._actions for opt in action.option_strings}
    per_run = {"model", "output", "seed"} if command == "compare" else set()
    for setting in dataclasses.fields(TrainConfig):
        flag = "--" + setting.name.replace("_", "-")
        if setting.name in per_run:  # compare sets these per run (its --output is the comparison's folder)
            continue
        assert flag in flags, f"{command} lacks {flag}"
        assert flags[flag].help and "recipe default" in flags[flag].help


def test_flags_reach_the_recipe_with_their_types() -> None:
    args = build_parser().parse_args(
        ["train", "--epochs", "3", "--lr", "0.05", "--no-progress", "--attn-kwargs", "{rd_ratio: 0.125}", "--amp",
         "--precision", "32", "label_smoothing=0.2"]
    )  # fmt: skip
    config = recipe(args)
    assert (config.epochs, config.lr, config.progress, config.attn_kwargs) == (3, 0.05, False, {"rd_ratio": 0.125})
    assert config.precision == "amp" and config.label_smoothing == 0.2


def test_a_bad_flag_value_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--epochs", "three"]) == 2
    err = capsys.readouterr().err
    assert "epochs" in err and "three" in err and len(err.strip().splitlines()) == 1


def _numeric_flags() -> list[tuple[str, argparse.Action]]:
    """(command, action) of every flag that takes a number (recipe flags are checked by TrainConfig's RANGES)."""
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return [
        (name, action)
        for name, parser in commands.choices.items()
        for action in parser._actions
        if action.type is not None and getattr(action.type, "__name__", "") in ("int", "float", "int_list", "fraction")
    ]


def test_no_numeric_flag_takes_any_number() -> None:
    """Every numeric flag has a bounded parser (``at_least`` or ``int_list``), none a bare int or float."""
    bare = [f"{name} {action.option_strings}" for name, action in _numeric_flags() if action.type in (int, float)]
    assert _numeric_flags() and not bare


@pytest.mark.parametrize(("command", "action"), _numeric_flags(), ids=lambda v: getattr(v, "dest", v))
def test_every_numeric_flag_rejects_values_out_of_range(command: str, action: argparse.Action) -> None:
    for bad in ("-100", "0,-1" if action.type.__name__ == "int_list" else "nan", "ten"):
        with pytest.raises(argparse.ArgumentTypeError):
            action.type(bad)


def test_an_out_of_range_flag_is_an_argparse_error_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["bench", "resnet18", "--img-size", "0"])
    assert stop.value.code == 2
    assert "argument --img-size: must be at least 1, got 0" in capsys.readouterr().err
