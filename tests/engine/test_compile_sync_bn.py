"""``--compile`` and ``--sync-bn`` end to end, through the real CLI, the real ``torch.compile`` (inductor) and the
real SyncBatchNorm conversion: attention models train their attention."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn

import cnnattn
from cnnattn.engine import TrainConfig, load_training_checkpoint, train

TINY = ["--data", "builtin:digits", "--img-size", "32", "--batch-size", "16", "--workers", "0", "--no-progress"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "cnnattn", *args], capture_output=True, text=True, timeout=900, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _initial_weights(path: Path) -> dict[str, torch.Tensor]:
    """resnet18_se with every BatchNorm scale at 1 (timm zero-initialises the last one of each block, which
    would keep SE's input, and so its gradient, at zero on the first steps)."""
    model = cnnattn.create_model("resnet18_se", num_classes=10)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
    torch.save(model.state_dict(), path)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_cli_train_compile_sync_bn_trains_the_attention(tmp_path: Path) -> None:
    initial = _initial_weights(tmp_path / "init.pth")
    out = tmp_path / "run"
    _cli(
        "train", "--model", "resnet18_se", *TINY, "--epochs", "1", "--train-subset", "48", "--compile", "--sync-bn",
        "--output", str(out), "--opt", "sgd", f"init_checkpoint={tmp_path / 'init.pth'}", "weight_decay=0",
        "tensorboard=false",
    )  # fmt: skip
    weights = load_training_checkpoint(out / "checkpoints" / "last.ckpt")["state_dict"]
    assert not any("_orig_mod" in k for k in weights) and all(k.startswith("model.") for k in weights)
    attention = {k: v for k, v in initial.items() if ".attn." in k}
    assert len(attention) == 32  # 8 SE modules × 4 tensors
    unchanged = [k for k, v in attention.items() if torch.equal(weights[f"model.{k}"], v)]
    assert unchanged == [], f"attention tensors that no gradient moved (weight decay is off): {unchanged}"


class _Inspect(pl.Callback):
    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.norms = {type(m) for m in module.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
        self.attention = [n for n, _ in module.model.named_modules() if n.endswith(".attn_stage")]


def test_sync_bn_converts_every_batch_norm_and_keeps_the_attention(tmp_path: Path) -> None:
    inspect = _Inspect()
    config = TrainConfig(
        model="resnet18_bam", data="builtin:digits", img_size=32, batch_size=16, workers=0, epochs=1, train_subset=32,
        progress=False, tensorboard=False, sync_bn=True, output=str(tmp_path / "run"),
    )  # fmt: skip
    result = train(config, callbacks=[inspect])
    assert inspect.norms == {nn.SyncBatchNorm, _timm_sync_bn_act()}  # BAM's norm + activation layers too
    assert inspect.attention == ["layer1.1.attn_stage", "layer2.1.attn_stage", "layer3.1.attn_stage"]
    assert result.epochs == 1


def _timm_sync_bn_act() -> type:
    from timm.layers.norm_act import SyncBatchNormAct

    return SyncBatchNormAct


def test_cli_compare_compile_runs_every_variant(tmp_path: Path) -> None:
    out = tmp_path / "compare"
    result = _cli(
        "compare", "--attention", "none,se", "--epochs", "1", "--seeds", "1", "--compile", *TINY,
        "--output", str(out), "train_subset=32", "tensorboard=false",
    )  # fmt: skip
    assert "| none " in result.stdout and "| se " in result.stdout
    for run in ("none-s0", "se-s0"):
        assert json.loads((out / run / "results.json").read_text())["epochs"] == 1
