"""What a person sees: the compare story, one line per epoch when stdout is a file, a readable bar on a terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from cnnattn.engine.compare import _Remaining

TINY = ["--data", "builtin:digits", "--img-size", "32", "--batch-size", "32", "--workers", "0", "--no-tensorboard"]


def _cnnattn_to_file(tmp_path: Path, *args: str) -> str:
    log = tmp_path / "log.txt"
    with log.open("w") as stdout:
        result = subprocess.run(
            [sys.executable, "-m", "cnnattn", *args], stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=600
        )
    assert result.returncode == 0, result.stderr[-3000:]
    return log.read_text()


def _cnnattn_on_a_terminal(*args: str) -> str:
    """Run the CLI with stdout on a pseudo-terminal of 120 columns; return what the terminal received."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "cnnattn", *args], stdout=slave, stderr=subprocess.DEVNULL, close_fds=True
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert process.wait(timeout=600) == 0
    return b"".join(chunks).decode(errors="replace")


def test_compare_redirected_to_a_file_tells_the_story_in_a_small_log(tmp_path: Path) -> None:
    args = ["compare", "--attention", "none,se", "--epochs", "1", "--seeds", "1", "--output", str(tmp_path / "c")]
    args += TINY
    log = _cnnattn_to_file(tmp_path, *args, "train_subset=200")
    assert len(log.encode()) < 20_000 and "\r" not in log and "v_num" not in log
    lines = log.splitlines()
    assert lines[0].startswith("compare: 2 variant(s) × 1 seed(s) = 2 runs of resnet18 (none, se)")
    for run in ("[1/2] none · seed 0", "[2/2] se · seed 0"):
        assert f"{run}: training in" in log
        assert any(line.startswith(f"{run} · epoch 1/1 · loss ") and "val top-1" in line for line in lines)
        assert f"{run}: top-1 " in log
    assert "1 run(s) left, about" in log and "all runs done" in log
    table_end = log.index("| se ")
    assert "With one seed per variant" in log[table_end:] and lines[-1].startswith("written: ")

    again = _cnnattn_to_file(tmp_path, *args, "train_subset=200")  # a finished comparison is reused, not retrained
    assert "[1/2] none · seed 0: reused" in again and "[2/2] se · seed 0: reused" in again
    assert "· epoch 1/1" not in again


def test_train_redirected_prints_one_line_per_epoch(tmp_path: Path) -> None:
    out = str(tmp_path / "run")
    log = _cnnattn_to_file(tmp_path, "train", "--model", "resnet18", *TINY, "--epochs", "2", "--train-subset", "64",
                           "--output", out)  # fmt: skip
    epochs = [line for line in log.splitlines() if line.startswith("resnet18 · epoch ")]
    assert [line.split(" · ")[1] for line in epochs] == ["epoch 1/2", "epoch 2/2"]
    assert all("loss " in line and "val top-1 " in line for line in epochs)
    assert "\r" not in log and log.startswith("train: resnet18 on builtin:digits") and "done: 2 epochs" in log
    assert "GPU available" not in log and "Tip" not in log  # Lightning's info lines stay off the story


def test_quiet_and_json_keep_stdout_to_the_results(tmp_path: Path) -> None:
    args = ["--model", "resnet18", *TINY, "--epochs", "1", "--train-subset", "32"]
    quiet = _cnnattn_to_file(tmp_path, "train", *args, "--output", str(tmp_path / "q"), "--quiet")
    assert quiet.startswith("done: 1 epochs") and "epoch 1/1" not in quiet
    as_json = _cnnattn_to_file(tmp_path, "train", *args, "--output", str(tmp_path / "j"), "--json")
    assert as_json.startswith("{") and len(as_json.strip().splitlines()) == 1


def test_train_on_a_terminal_shows_a_readable_bar(tmp_path: Path) -> None:
    screen = _cnnattn_on_a_terminal("train", "--model", "resnet18", *TINY, "--epochs", "2", "--train-subset", "64",
                                    "--output", str(tmp_path / "run"))  # fmt: skip
    assert "\r" in screen and "it/s" in screen and "resnet18 · epoch 2/2: 100%" in screen
    assert "val top-1" in screen and "validating" in screen
    assert "v_num" not in screen and "train/loss" not in screen and "Validation" not in screen


@pytest.mark.parametrize(
    ("runs", "expected"),
    [
        ([(60.0, False)], "3 run(s) left, about 3.0 min"),
        ([(60.0, True)], "3 run(s) left"),  # a reused run says nothing about training time
        ([(60.0, False), (180.0, False), (0.0, True), (0.0, False)], "all runs done"),
    ],
)
def test_remaining_time_is_the_mean_trained_run_times_runs_left(runs: list, expected: str) -> None:
    remaining = _Remaining(4)
    for seconds, reused in runs:
        text = remaining.after(seconds, reused)
    assert text == expected
