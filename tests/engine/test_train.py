"""Training end to end on every data format, eval agreement, exact kill-and-resume, NaN stop, safe checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from cnnattn.cli import main
from cnnattn.engine import NonFiniteLossError, TrainConfig, load_training_checkpoint, train
from cnnattn.engine.checkpoint_io import atomic_torch_save
from cnnattn.engine.evaluate import evaluate, load_trained_model
from cnnattn.engine.history import epoch_curve

from tiny_data import ALL_LAYOUTS

SHARED_ZIP = Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10-jpg.zip"
TINY = dict(model="resnet18", img_size=32, batch_size=4, workers=0, progress=False, tensorboard=False)


def tiny_config(tmp_path: Path, data: str, **changes) -> TrainConfig:
    return TrainConfig(**{**TINY, "data": data, "epochs": 1, "output": str(tmp_path / "run"), **changes})


@pytest.mark.parametrize("layout", sorted(ALL_LAYOUTS))
def test_train_then_eval_on_every_format(tmp_path: Path, layout: str) -> None:
    data = str(ALL_LAYOUTS[layout](tmp_path))
    result = train(tiny_config(tmp_path, data))
    assert result.epochs == 1 and 0 <= result.top1 <= 100 and result.top5 == 100.0  # 3 classes: top-5 is trivial
    out = Path(result.output)
    assert {p.name for p in (out / "checkpoints").iterdir()} == {"last.ckpt", "best.ckpt"}
    assert (out / "config.yaml").is_file() and list((out / "logs").glob("version_*/metrics.csv"))
    metrics = evaluate(result.last_checkpoint, workers=0)
    assert metrics["top1"] == pytest.approx(result.top1, abs=1e-3) and metrics["images"] > 0


def test_builtin_digits_learn(tmp_path: Path) -> None:
    result = train(tiny_config(tmp_path, "builtin:digits", epochs=2, batch_size=32, ema_decay=0.9, channels_last=True))
    assert result.top1 > 50  # 10 classes, chance is 10 %
    assert json.loads((Path(result.output) / "results.json").read_text())["top1"] == pytest.approx(result.top1)


def test_bf16_autocast_on_cpu(tmp_path: Path) -> None:
    result = train(tiny_config(tmp_path, "builtin:digits", precision="bf16", train_subset=64, grad_clip=1.0))
    assert result.epochs == 1 and result.loss == result.loss  # finite, not NaN


@pytest.mark.skipif(not SHARED_ZIP.is_file(), reason="../shared/data/cifar10-jpg.zip is absent")
def test_train_on_the_shared_cifar10_zip(tmp_path: Path) -> None:
    result = train(tiny_config(tmp_path, str(SHARED_ZIP), train_subset=64))  # validates on the 10,000 test images
    assert result.epochs == 1 and result.num_classes == 10 and 0 < result.top5 <= 100


KILL_SCRIPT = """
import os, signal, sys
import lightning.pytorch as pl
from cnnattn.engine import TrainConfig, train

class KillAt(pl.Callback):
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)

config = TrainConfig(model="resnet18_se", data="builtin:digits", img_size=32, epochs=3, batch_size=16, workers=0,
                     train_subset=96, ema_decay=0.9, warmup_epochs=1, progress=False, output=sys.argv[1])
result = train(config, resume=sys.argv[3] == "1", callbacks=[KillAt()])
print("RESULT", result.top1, result.top5, result.loss)
"""


def _run_kill_script(out: Path, kill_at: int, resume: bool) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(out), str(kill_at), "1" if resume else "0"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def test_killed_run_resumes_to_the_same_result(tmp_path: Path) -> None:
    """SIGKILL in the middle of epoch 2 (step 9 of 6 per epoch), resume: same metrics and weights as no kill."""
    whole = _run_kill_script(tmp_path / "whole", -1, False)
    killed = _run_kill_script(tmp_path / "cut", 9, False)
    assert killed.returncode == -9 and "RESULT" not in killed.stdout
    assert load_training_checkpoint(tmp_path / "cut" / "checkpoints" / "last.ckpt")["epoch"] == 0  # epoch 1 done
    resumed = _run_kill_script(tmp_path / "cut", -1, True)
    assert whole.returncode == 0 and resumed.returncode == 0, resumed.stderr[-2000:]
    assert resumed.stdout.split("RESULT")[1] == whole.stdout.split("RESULT")[1]
    a = load_training_checkpoint(tmp_path / "whole" / "checkpoints" / "last.ckpt")["state_dict"]
    b = load_training_checkpoint(tmp_path / "cut" / "checkpoints" / "last.ckpt")["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class PoisonWeights(pl.Callback):
    """Make the model produce NaN from the start of epoch 2, as a diverging run would."""

    def on_train_epoch_start(self, trainer, module) -> None:
        if trainer.current_epoch == 1:
            with torch.no_grad():
                module.model.get_classifier().weight.fill_(float("nan"))


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, "builtin:digits", epochs=3, train_subset=32, batch_size=16)
    with pytest.raises(NonFiniteLossError, match=r"became nan at epoch 1.*last good checkpoint is kept"):
        train(config, callbacks=[PoisonWeights()])
    state = load_training_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert state["epoch"] == 0 and all(
        torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point()
    )


def test_a_finished_run_is_never_overwritten(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, "builtin:digits", train_subset=16)
    train(config)
    with pytest.raises(ValueError, match="already holds a run.*pass --resume"):
        train(config)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(config.replace(output=str(tmp_path / "other")), resume=True)


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"w": torch.ones(2)}, path)

    def crash(obj, f) -> None:
        f.write(b"partial")
        raise KeyboardInterrupt  # e.g. Ctrl-C or a kill in the middle of the write

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"w": torch.zeros(2)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_checkpoints_with_code_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": Path("/")}, path)  # a pickled class, not tensors
    with pytest.raises(ValueError, match="not a readable cnnattn checkpoint"):
        load_training_checkpoint(path)


def test_cli_train_eval_json(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    args = ["--data", "builtin:digits", "--epochs", "1", "--batch-size", "32", "--workers", "0"]
    assert main(["train", "--model", "resnet18", *args, "--output", str(out), "--json", "train_subset=64"]) == 0
    trained = json.loads(capsys.readouterr().out)  # --json: stdout is the JSON alone (no progress bar)
    assert main(["eval", "--checkpoint", trained["last_checkpoint"], "--workers", "0", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(metrics) >= {"top1", "top5"} and metrics["top1"] == pytest.approx(trained["top1"], abs=1e-3)


def test_patience_stops_a_run_that_no_longer_improves(tmp_path: Path) -> None:
    # lr 0 and frozen BatchNorm: the model never changes, so epoch 2 does not improve on epoch 1 and patience 1 stops.
    config = tiny_config(tmp_path, "builtin:digits", epochs=5, patience=1, opt="sgd", lr=0.0, freeze_bn=True,
                         train_subset=32)  # fmt: skip
    result = train(config)
    curve = epoch_curve(result.output, "val/top1")
    assert result.epochs == 2 and len(curve) == 2 and curve[0] == curve[1] == pytest.approx(result.top1)
    with pytest.raises(ValueError, match="patience must be a number of epochs >= 1"):
        tiny_config(tmp_path, "builtin:digits", patience=0)


def test_cli_model_kwargs_build_the_cifar_stem_and_eval_rebuilds_it(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cifar-stem"
    args = ["--data", "builtin:digits", "--img-size", "32", "--epochs", "1", "--workers", "0", "--json"]
    assert main(["train", "--model", "resnet18_se", "--model-kwargs", "{stem: cifar}", *args, "--output", str(out),
                 "train_subset=64"]) == 0  # fmt: skip
    trained = json.loads(capsys.readouterr().out)
    model, config, _ = load_trained_model(trained["last_checkpoint"])
    assert config.model_kwargs == {"stem": "cifar"} and model.conv1.kernel_size == (3, 3)
    assert main(["eval", "--checkpoint", trained["last_checkpoint"], "--workers", "0", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["top1"] == pytest.approx(trained["top1"], abs=1e-3)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--data", "/no/such/dir"], "/no/such/dir: no such file or directory; expected builtin:digits"),
        (["train", "--data", "builtin:digits", "colour=red"], "unknown setting 'colour'"),
        (["train", "--data", "builtin:digits", "--model", "resnet18_foo"], "unknown model 'resnet18_foo'"),
        (["train", "--data", "builtin:digits", "--precision", "fp16", "--accelerator", "cpu"], "fp16 needs a GPU"),
        (["eval", "--checkpoint", "/no/file.ckpt"], "checkpoint /no/file.ckpt not found"),
        (["compare", "--attention", "none,sparkle", "--epochs", "1"], "unknown model 'resnet18_sparkle'"),
    ],
)
def test_cli_errors_are_one_line(tmp_path: Path, capsys, argv: list[str], message: str) -> None:
    assert main([*argv, *(["--output", str(tmp_path / "o")] if argv[0] != "eval" else [])]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
