"""Training end to end on every data format, eval agreement, exact kill-and-resume, NaN stop, safe checkpoints."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from cnnattn.cli import main
from cnnattn.engine import NonFiniteLossError, TrainConfig, load_training_checkpoint, train
from cnnattn.engine.checkpoint_io import atomic_torch_save
from cnnattn.engine.evaluate import evaluate
from cnnattn.engine.history import epoch_curve
from cnnattn.engine.trained import load_trained_model

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


class DeterminismProbe(pl.Callback):
    """Records whether torch runs deterministic algorithms during training."""

    def on_train_start(self, trainer, module) -> None:
        self.enabled = torch.are_deterministic_algorithms_enabled()


def test_deterministic_runs_with_das_are_bit_identical(tmp_path: Path) -> None:
    """--deterministic: torch's deterministic algorithms on (an op without one would raise), and two runs of DAS
    (the sampled deformable path, forward and backward) end with bit-identical weights on CPU."""
    weights = []
    try:
        for run in ("a", "b"):
            probe = DeterminismProbe()
            config = tiny_config(tmp_path / run, "builtin:digits", model="resnet18_das", train_subset=32, img_size=64,
                                 batch_size=8, deterministic=True)  # fmt: skip
            weights.append(load_training_checkpoint(train(config, callbacks=[probe]).last_checkpoint)["state_dict"])
            assert probe.enabled
    finally:
        torch.use_deterministic_algorithms(False)
    assert weights[0].keys() == weights[1].keys() and all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert any("offset" in k for k in weights[0])  # the deformable layers trained


def test_bf16_autocast_on_cpu(tmp_path: Path) -> None:
    result = train(tiny_config(tmp_path, "builtin:digits", precision="bf16", train_subset=64, grad_clip=1.0))
    assert result.epochs == 1 and result.loss == result.loss  # finite, not NaN


@pytest.mark.slow  # validates on all 10,000 test images (~40 s on 2 cores); the zip layout runs by default
@pytest.mark.skipif(not SHARED_ZIP.is_file(), reason="../shared/data/cifar10-jpg.zip is absent")
def test_train_on_the_shared_cifar10_zip(tmp_path: Path) -> None:
    result = train(tiny_config(tmp_path, str(SHARED_ZIP), train_subset=64))  # validates on the 10,000 test images
    assert result.epochs == 1 and result.num_classes == 10 and 0 < result.top5 <= 100


KILL_SCRIPT = """
import os, signal, sys
from cnnattn.cli import main
from cnnattn.engine import preemption

out, at, how, resume = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"


def kill_at(self, trainer, *args):  # the signal arrives as from outside, after optimiser step `at`
    if trainer.global_step == at:
        os.kill(os.getpid(), getattr(signal, how))


preemption.PreemptionCheckpoint.on_train_batch_end = kill_at
sys.exit(main(["train", "--model", "resnet18_se", "--data", "builtin:digits", "--img-size", "32", "--epochs", "3",
               "--batch-size", "16", "--workers", "0", "--train-subset", "96", "--ema-decay", "0.9",
               "--warmup-epochs", "1", "--no-progress", "--output", out, "--json", *(["--resume"] if resume else [])]))
"""


def _run_kill_script(out: Path, kill_at: int = -1, how: str = "SIGKILL", resume: bool = False, warn: bool = False):
    return subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(out), str(kill_at), how, "1" if resume else "0"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "default" if warn else "ignore"},
    )


def _final_weights(out: Path) -> dict[str, torch.Tensor]:
    return load_training_checkpoint(out / "checkpoints" / "last.ckpt")["state_dict"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[dict, dict[str, torch.Tensor]]:
    """The run that nothing stops: its results.json and final weights."""
    out = tmp_path_factory.mktemp("whole")
    done = _run_kill_script(out)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), _final_weights(out)


def _assert_same_run(resumed: subprocess.CompletedProcess, out: Path, uninterrupted) -> None:
    result, weights = uninterrupted
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    again = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert [again[k] for k in ("top1", "top5", "loss")] == [result[k] for k in ("top1", "top5", "loss")]
    other = _final_weights(out)
    assert weights.keys() == other.keys() and all(torch.equal(weights[k], other[k]) for k in weights)


def test_killed_run_resumes_to_the_same_result(tmp_path: Path, uninterrupted) -> None:
    """SIGKILL in the middle of epoch 2 (step 9 of 6 per epoch), resume: same metrics and weights as no kill."""
    killed = _run_kill_script(tmp_path, 9, "SIGKILL")
    assert killed.returncode == -9 and killed.stdout == ""
    assert load_training_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["epoch"] == 0  # epoch 1 done
    _assert_same_run(_run_kill_script(tmp_path, resume=True), tmp_path, uninterrupted)


@pytest.mark.parametrize(("step", "epoch", "batches"), [(9, 2, 3), pytest.param(6, 1, 6, marks=pytest.mark.slow)])
def test_sigterm_writes_a_checkpoint_exits_143_and_resumes_exactly(
    tmp_path: Path, uninterrupted, step: int, epoch: int, batches: int
) -> None:
    """SIGTERM (a scheduler's preemption) in step 9 (epoch 2, 6 batches per epoch) or in the last batch of epoch 1:
    a checkpoint of that point, exit 143 with a one-line message saying how to resume; --resume ends as if never
    stopped."""
    stopped = _run_kill_script(tmp_path, step, "SIGTERM")
    assert stopped.returncode == 143 and stopped.stdout == ""
    message = stopped.stderr.strip().splitlines()[-1]
    assert "Traceback" not in stopped.stderr
    assert message == (
        f"cnnattn train: stopped by SIGTERM; {tmp_path / 'checkpoints' / 'last.ckpt'} holds the run at epoch {epoch}, "
        f"after {batches} of its batches. Continue it with the same command plus --resume --output {tmp_path}."
    )
    state = load_training_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert state["epoch"] == epoch - 1 and state["global_step"] == step
    resumed = _run_kill_script(tmp_path, resume=True, warn=True)
    assert "ended before the epoch ended" not in resumed.stderr  # Lightning's advice does not apply: we skip batches
    _assert_same_run(resumed, tmp_path, uninterrupted)


class TrainClock(pl.Callback):
    """This start's training time as Lightning's Timer measures it (train start to train end), with an optional pause
    at each epoch's end (before the epoch's checkpoint)."""

    def __init__(self, pause: float = 0.0) -> None:
        self.pause, self.seconds = pause, float("nan")

    def on_train_start(self, trainer, module) -> None:
        self.start = time.monotonic()

    def on_train_epoch_end(self, trainer, module) -> None:
        time.sleep(self.pause)

    def on_train_end(self, trainer, module) -> None:
        self.seconds = time.monotonic() - self.start


def test_a_resumed_run_reports_the_training_time_of_all_its_starts(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, "builtin:digits", epochs=1, train_subset=32, batch_size=16)
    checkpoint = load_training_checkpoint(train(config, callbacks=[TrainClock(pause=1.0)]).last_checkpoint)
    first = checkpoint["callbacks"]["Timer"]["time_elapsed"]["train"]  # the first start, up to its checkpoint
    assert first >= 1.0
    clock = TrainClock()
    resumed = train(config.replace(epochs=2), resume=True, callbacks=[clock])
    assert resumed.epochs == 2
    assert resumed.seconds == pytest.approx(first + clock.seconds, abs=0.2)
    assert json.loads(Path(resumed.output, "results.json").read_text())["seconds"] == resumed.seconds


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


CLI_TINY = ["train", "--data", "builtin:digits", "--img-size", "32", "--batch-size", "16", "--workers", "0",
            "--train-subset", "32", "--no-progress", "--no-tensorboard"]  # fmt: skip


def test_an_output_folder_that_cannot_be_written_is_a_one_line_error_before_training(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main([*CLI_TINY, "--output", str(blocker / "run")]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.out == ""
    assert captured.err.startswith(f"cnnattn train: error: cannot write to the output folder {blocker / 'run'} (")
    assert captured.err.rstrip().endswith("choose another --output.")


def test_a_failed_checkpoint_write_keeps_the_previous_one_and_stops_clearly(tmp_path: Path, capsys, monkeypatch):
    """The disk fills up after epoch 1's checkpoints: epoch 2's write fails, last.ckpt of epoch 1 stays loadable."""
    real_save, calls = torch.save, []

    def save_until_the_disk_is_full(obj, f) -> None:
        calls.append(1)
        if len(calls) > 2:  # best.ckpt and last.ckpt of epoch 1 fit
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, f)

    monkeypatch.setattr(torch, "save", save_until_the_disk_is_full)
    assert main([*CLI_TINY, "--epochs", "3", "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "(No space left on device); the previous one there is intact." in err and "--resume" in err
    assert load_training_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["epoch"] == 0
    assert not list((tmp_path / "checkpoints").glob(".*.tmp"))  # no partial file left behind


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
    with pytest.raises(ValueError, match=r"holds a pickled Python object \(pathlib.PosixPath\), which cnnattn never"):
        load_training_checkpoint(path)


def test_cli_train_eval_json(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    args = ["--data", "builtin:digits", "--epochs", "1", "--batch-size", "32", "--workers", "0"]
    assert main(["train", "--model", "resnet18", *args, "--output", str(out), "--json", "train_subset=64"]) == 0
    trained = json.loads(capsys.readouterr().out)  # --json: stdout is the JSON alone (no progress bar)
    assert main(["eval", "--checkpoint", trained["last_checkpoint"], "--workers", "0", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(metrics) >= {"top1", "top5"} and metrics["top1"] == pytest.approx(trained["top1"], abs=1e-3)


def test_eval_compares_bf16_with_float32_image_by_image(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bf16"
    args = ["--data", "builtin:digits", "--epochs", "1", "--batch-size", "32", "--workers", "0", "--json"]
    assert main(["train", "--model", "resnet18_se", *args, "--output", str(out), "train_subset=64"]) == 0
    checkpoint = json.loads(capsys.readouterr().out)["last_checkpoint"]
    assert main(["eval", "--checkpoint", checkpoint, "--workers", "0", "--precision", "32,bf16", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    bf16 = metrics["precisions"]["bf16"]
    model, config, _ = load_trained_model(checkpoint)  # recount: same validation images, fp32 vs bf16 autocast
    from cnnattn.data import ClassificationData

    agree = total = correct = 0
    with torch.no_grad():
        for x, y in ClassificationData("builtin:digits", config.img_size, 128, 0, seed=config.seed).val_dataloader():
            reference = model(x).topk(5, dim=1).indices[:, 0]
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = model(x).float().topk(5, dim=1).indices[:, 0]
            agree, correct = agree + int((low == reference).sum()), correct + int((low == y).sum())
            total += len(y)
    assert total == metrics["images"] and bf16["agreement"] == pytest.approx(100 * agree / total)
    assert bf16["top1"] == pytest.approx(100 * correct / total) and 0 <= bf16["top5"] <= 100
    assert main(["eval", "--checkpoint", checkpoint, "--workers", "0", "--precision", "bf16"]) == 0
    assert "bf16 (autocast): top-1" in capsys.readouterr().out
    for precision, message in [("fp16", "fp16 inference runs on CUDA only"), ("int8", "unknown precision(s) int8")]:
        assert main(["eval", "--checkpoint", checkpoint, "--precision", precision]) == 2
        assert message in capsys.readouterr().err


def test_patience_stops_a_run_that_no_longer_improves(tmp_path: Path) -> None:
    # lr 0 and frozen BatchNorm: the model never changes, so epoch 2 does not improve on epoch 1 and patience 1 stops.
    config = tiny_config(tmp_path, "builtin:digits", epochs=5, patience=1, opt="sgd", lr=0.0, freeze_bn=True,
                         train_subset=32)  # fmt: skip
    result = train(config)
    curve = epoch_curve(result.output, "val/top1")
    assert result.epochs == 2 and len(curve) == 2 and curve[0] == curve[1] == pytest.approx(result.top1)
    with pytest.raises(ValueError, match=r"patience must be in \[1, inf\); got 0"):
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
        (["eval", "--checkpoint", "/no/file.ckpt"], "/no/file.ckpt not found (expected a checkpoint written by"),
        (["compare", "--attention", "none,sparkle", "--epochs", "1"], "unknown model 'resnet18_sparkle'"),
    ],
)
def test_cli_errors_are_one_line(tmp_path: Path, capsys, argv: list[str], message: str) -> None:
    assert main([*argv, *(["--output", str(tmp_path / "o")] if argv[0] != "eval" else [])]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
