"""DDP on CPU (gloo): two processes of batch B agree with one process of batch 2B (same global batch)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnnattn.engine import load_training_checkpoint

RECIPE = [
    "--model", "resnet18_se", "--data", "builtin:digits", "--img-size", "32", "--epochs", "2", "--workers", "0",
    "--no-progress", "--accelerator", "cpu", "train_subset=64", "freeze_bn=true", "tensorboard=false",
    "warmup_epochs=0.5",
]  # fmt: skip


def _train(out: Path, processes: int, batch_size: int) -> None:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    command = [*launcher, "-m", "cnnattn", "train", *RECIPE, "--batch-size", str(batch_size), "--output", str(out)]
    if processes > 1:
        command += ["--devices", str(processes), "--strategy", "ddp"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")
def test_two_gloo_processes_match_one_process_on_the_same_global_batch(tmp_path: Path) -> None:
    """BatchNorm is frozen: per-process batch statistics would otherwise differ by design (SyncBN is GPU-only)."""
    _train(tmp_path / "one", processes=1, batch_size=16)
    _train(tmp_path / "two", processes=2, batch_size=8)
    one = load_training_checkpoint(tmp_path / "one" / "checkpoints" / "last.ckpt")
    two = load_training_checkpoint(tmp_path / "two" / "checkpoints" / "last.ckpt")
    assert one["global_step"] == two["global_step"] == 8  # 64 images / 16 per global batch × 2 epochs
    for key, value in one["state_dict"].items():
        torch.testing.assert_close(two["state_dict"][key], value, rtol=1e-4, atol=1e-5, msg=key)
