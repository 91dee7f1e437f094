"""How a run shows its progress: a readable bar on a terminal, one line per epoch anywhere else.

On a terminal: one bar per epoch, described as ``<label> · epoch 2/5``, with ``loss 2.39 · val top-1 13.8 %``
beside it (no ``v_num``, no second bar for validation). When stdout is a file or a pipe (a cluster log, CI,
``> log.txt``): no carriage-return updates, one line per epoch with the same numbers and the elapsed time.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm

__all__ = ["EpochLines", "ReadableProgressBar", "progress_callbacks", "readable_metrics"]


def readable_metrics(trainer: pl.Trainer, *, epoch_loss: bool = False) -> str:
    """``'loss 2.390 · val top-1 13.8 %'`` from the trainer's latest metrics (what exists so far); the loss of
    the last step, or with ``epoch_loss`` the mean over the last finished epoch."""
    metrics = trainer.callback_metrics
    loss_keys = ("train/loss_epoch", "train/loss_step") if epoch_loss else ("train/loss_step", "train/loss_epoch")
    loss = next((float(metrics[k]) for k in loss_keys if k in metrics), None)
    parts = [] if loss is None else [f"loss {loss:.3f}"]
    if "val/top1" in metrics:
        parts.append(f"val top-1 {float(metrics['val/top1']):.1f} %")
    if "val/AP" in metrics:
        parts.append(f"val AP {float(metrics['val/AP']):.1f} · AP50 {float(metrics.get('val/AP50', float('nan'))):.1f}")
    return " · ".join(parts)


def _epoch(trainer: pl.Trainer) -> str:
    return f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"


def _elapsed(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"


class _ReadableTqdm(Tqdm):
    """A bar whose postfix is always ``describe()``, whatever Lightning passes to ``set_postfix``."""

    def __init__(self, describe: Callable[[], str], *args: Any, **kwargs: Any) -> None:
        self._describe = describe
        super().__init__(*args, **kwargs)

    def set_postfix(self, ordered_dict: Any = None, refresh: bool | None = True, **kwargs: Any) -> None:
        self.set_postfix_str(self._describe(), refresh=bool(refresh))


class ReadableProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar, described by the run's ``label`` and the epoch, with readable metrics; validation
    shows as ``validating`` beside it instead of as a second bar."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label, self._validating = label, False

    def _postfix(self) -> str:
        text = readable_metrics(self.trainer)
        return f"{text} · validating" if self._validating else text

    def init_train_tqdm(self) -> Tqdm:
        return _ReadableTqdm(
            self._postfix,
            desc=self.label,
            position=2 * self.process_position,
            disable=self.is_disabled,
            leave=True,
            dynamic_ncols=True,
            file=sys.stdout,
            smoothing=0,
            bar_format=self.BAR_FORMAT,
        )

    def init_validation_tqdm(self) -> Tqdm:
        return Tqdm(disable=True)

    def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(f"{self.label} · {_epoch(trainer)}")

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_start(trainer, pl_module)
        self._validating = True
        if trainer.state.fn == "fit":
            self.train_progress_bar.set_postfix()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._validating = False
        super().on_validation_end(trainer, pl_module)


class EpochLines(Callback):
    """One line per epoch on stdout: ``<label> · epoch 2/5 · loss 0.812 · val top-1 71.3 % · 1:05``."""

    def __init__(self, label: str) -> None:
        self.label, self.start = label, time.perf_counter()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            metrics = readable_metrics(trainer, epoch_loss=True)
            elapsed = _elapsed(time.perf_counter() - self.start)
            print(" · ".join(p for p in (self.label, _epoch(trainer), metrics, elapsed) if p), flush=True)


def progress_callbacks(enabled: bool, label: str) -> list[Callback]:
    """The progress callbacks of a run: none when disabled, a bar on a terminal, epoch lines otherwise."""
    if not enabled:
        return []
    return [ReadableProgressBar(label)] if sys.stdout.isatty() else [EpochLines(label)]
