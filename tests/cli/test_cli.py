from __future__ import annotations

import subprocess
import sys

import pytest

import cnnattn
from cnnattn.cli import main

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
