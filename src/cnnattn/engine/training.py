"""``train``: one run of a recipe on PyTorch Lightning, resumable, with checkpoints, logs and results.json.

Output folder layout::

    <output>/checkpoints/last.ckpt   end of the latest epoch, or the batch where SIGTERM stopped it (resume here)
    <output>/checkpoints/best.ckpt   best validation top-1 (classification) or AP (detection)
    <output>/logs/version_<n>/metrics.csv   CSV log, one version per start or resume
    <output>/tensorboard/version_<n>/       TensorBoard log
    <output>/config.yaml             the resolved recipe
    <output>/results.json            final and best metrics, epochs, wall time
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, ProgressBar, Timer
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from timm.layers import convert_sync_batchnorm
from torch import nn

from ..utils import atomic_write_text
from .checkpoint_io import AtomicCheckpointIO
from .config import PRECISIONS, TrainConfig
from .errors import TrainingInterrupted
from .preemption import PreemptionCheckpoint, SIGTERMException
from .progress import progress_callbacks
from .tasks import get_task

__all__ = ["TrainResult", "build_model", "default_output", "train"]

NOISY_WARNINGS = (
    ".*does not have many workers.*",
    ".*number of training batches.*is smaller than the logging interval.*",
    ".*Checkpoint directory .* exists and is not empty.*",
    ".*LeafSpec.*is deprecated.*",
    ".*module\\(s\\) in eval mode at the start of training.*",  # the EMA copy, on purpose
    # A mid-epoch resume after SIGTERM: EpochShardSampler skips the batches already trained (engine/preemption.py),
    # so Lightning's advice to make the dataloader resumable does not apply.
    ".*resuming from a checkpoint that ended before the epoch ended.*",
)


@dataclass
class TrainResult:
    """Metrics of a finished run, in percent on the validation split after the last epoch: top-1/top-5 for
    classification (None for detection), and ``loss`` the validation loss (None for detection: torchvision's
    detectors compute no loss in evaluation); ``metrics`` holds every validation metric by name (detection: AP,
    AP50, AP75, APs/m/l, AR100, and ``best_AP``). ``seconds``: wall-clock training time (validation included),
    summed over every start of a resumed run up to its last checkpoint, then this start's."""

    output: str
    num_classes: int
    loss: float | None
    epochs: int
    seconds: float
    last_checkpoint: str
    best_checkpoint: str
    top1: float | None = None
    top5: float | None = None
    best_top1: float | None = None
    task: str = "classify"
    metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def default_output(config: TrainConfig) -> Path:
    """``runs/<model>-<dataset name>-s<seed>``."""
    name = Path(config.data.replace("builtin:", "")).stem or "data"
    return Path("runs") / f"{config.model}-{name}-s{config.seed}"


def build_model(config: TrainConfig, num_classes: int) -> nn.Module:
    """The model of a recipe, from ``init_checkpoint`` if set, with frozen BatchNorm if asked; for detection,
    the detector on the backbone ``config.model`` (``num_classes`` then counts the background)."""
    return get_task(config.task).build_model(config, num_classes)


def training_model(config: TrainConfig, num_classes: int) -> nn.Module:
    """:func:`build_model`, with every BatchNorm (the backbone's and the attention modules') synchronised when
    ``sync_bn`` is set. timm's converter, because torch's turns timm's norm + activation layers (BAM's) into
    plain SyncBatchNorm and drops their activation. Done here rather than by Lightning, which converts only
    under multi-process strategies; in one process SyncBatchNorm normalises exactly as BatchNorm does."""
    model = build_model(config, num_classes)
    return convert_sync_batchnorm(model) if config.sync_bn else model


def _precision(config: TrainConfig, accelerator: str) -> str:
    if config.precision == "amp":
        return PRECISIONS["bf16" if accelerator == "cpu" else "fp16"]
    if config.precision == "fp16" and accelerator == "cpu":
        raise ValueError("precision fp16 needs a GPU; on CPU use precision=bf16 or 32.")
    return PRECISIONS[config.precision]


def _check_output(output: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from (or None); refuses to overwrite an earlier run's checkpoints, and to start
    where nothing can be written."""
    _check_writable(output)
    last = output / "checkpoints" / "last.ckpt"
    if resume:
        if not last.is_file():
            raise FileNotFoundError(f"nothing to resume: {last} does not exist (start without --resume).")
        return last
    if last.exists():
        raise ValueError(
            f"{output} already holds a run ({last}); pass --resume to continue it or choose another --output."
        )
    return None


def _check_writable(output: Path) -> None:
    """ValueError before any training when ``output`` cannot be created or written to."""
    try:
        (output / "checkpoints").mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=output / "checkpoints").close()
    except OSError as err:
        raise ValueError(
            f"cannot write to the output folder {output} ({err.strerror or err}); choose another --output."
        ) from None


def _trainer(config: TrainConfig, output: Path, callbacks: Sequence[Callback], label: str) -> pl.Trainer:
    accelerator = "gpu" if config.accelerator == "auto" and torch.cuda.is_available() else config.accelerator
    accelerator = "cpu" if accelerator == "auto" else accelerator
    folder = output / "checkpoints"
    monitor = get_task(config.task).monitor
    best = ModelCheckpoint(folder, "best", monitor=monitor, mode="max", enable_version_counter=False)
    last = ModelCheckpoint(folder, "last", enable_version_counter=False)  # every epoch, replacing the previous
    progress = progress_callbacks(config.progress, label)
    # Convergence: its state is in every checkpoint, so a resumed run keeps counting epochs without improvement.
    stopping = [EarlyStopping(monitor, mode="max", patience=config.patience)] if config.patience else []
    # Lightning's Timer keeps the training time in every checkpoint, so a resumed run adds its time to the earlier
    # starts' (results.json's ``seconds``), and ``max_minutes`` bounds the run as a whole.
    timer = Timer({"minutes": config.max_minutes} if config.max_minutes else None, interval="step")
    loggers = [CSVLogger(output, name="logs")]
    if config.tensorboard:
        loggers.append(TensorBoardLogger(output, name="tensorboard"))
    return pl.Trainer(
        accelerator=accelerator,
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy=config.strategy,
        precision=_precision(config, accelerator),
        deterministic=config.deterministic,
        max_epochs=config.epochs,
        gradient_clip_val=config.grad_clip,
        use_distributed_sampler=False,  # the data modules shard with their own seeded sampler
        callbacks=[best, last, PreemptionCheckpoint(folder / "last.ckpt"), timer, *stopping, *progress, *callbacks],
        logger=loggers,
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=any(isinstance(c, ProgressBar) for c in progress),
        enable_model_summary=False,
        log_every_n_steps=config.log_every,
        num_sanity_val_steps=0,
        default_root_dir=output,
    )


def train(
    config: TrainConfig, *, resume: bool = False, callbacks: Sequence[Callback] = (), label: str | None = None
) -> TrainResult:
    """Train ``config.model`` on ``config.data``; resume from ``<output>/checkpoints/last.ckpt`` if asked.

    ``label`` names the run in its progress (default: the model name); see :mod:`cnnattn.engine.progress`.
    """
    output = Path(config.output) if config.output else default_output(config)
    ckpt_path = _check_output(output, resume)
    pl.seed_everything(config.seed, workers=True, verbose=False)
    task = get_task(config.task)
    data, config = task.data(config)
    config = config.replace(output=str(output))
    module = task.lightning_module(training_model(config, data.num_classes), config, data)
    callbacks = [*callbacks, *task.callbacks(config)]
    trainer = _trainer(config, output, callbacks, label or config.model)
    if trainer.is_global_zero:
        output.mkdir(parents=True, exist_ok=True)
        atomic_write_text(output / "config.yaml", _yaml(config))
    with warnings.catch_warnings():
        for pattern in NOISY_WARNINGS:
            warnings.filterwarnings("ignore", pattern)
        try:
            trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
        except SIGTERMException:
            raise _interrupted(trainer, output) from None
    return _result(trainer, output)


def _interrupted(trainer: pl.Trainer, output: Path) -> TrainingInterrupted:
    """Where a run stopped by SIGTERM stands, and how to continue it."""
    preemption = next(c for c in trainer.callbacks if isinstance(c, PreemptionCheckpoint))
    if not preemption.checkpoint.is_file():
        return TrainingInterrupted("stopped by SIGTERM before its first checkpoint.", "Nothing to resume: start again.")
    epoch, batches = preemption.saved_at or (trainer.current_epoch, 0)
    return TrainingInterrupted(
        f"stopped by SIGTERM; {preemption.checkpoint} holds the run at epoch {epoch + 1}, after {batches} of its "
        "batches.",
        f"Continue it with the same command plus --resume --output {output}.",
    )


def _yaml(config: TrainConfig) -> str:
    import yaml

    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def _result(trainer: pl.Trainer, output: Path) -> TrainResult:
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    best = trainer.checkpoint_callback.best_model_score  # the first ModelCheckpoint: best validation top-1 or AP
    best = float(best) if best is not None else float("nan")
    task = get_task(trainer.lightning_module.config.task)
    validation = {k.removeprefix("val/"): v for k, v in metrics.items() if k.startswith("val/")}
    result = TrainResult(
        output=str(output),
        num_classes=len(trainer.lightning_module.classes),
        loss=metrics.get("val/loss"),  # None for detectors: torchvision's give no loss in evaluation
        epochs=trainer.current_epoch,
        seconds=next(c for c in trainer.callbacks if isinstance(c, Timer)).time_elapsed("train"),
        last_checkpoint=str(output / "checkpoints" / "last.ckpt"),
        best_checkpoint=str(output / "checkpoints" / "best.ckpt"),
        task=task.name,
        **{"metrics": validation, **task.result_fields(validation, best)},
    )
    if trainer.is_global_zero:
        atomic_write_text(output / "results.json", json.dumps(result.to_dict(), indent=2) + "\n")
    return result
