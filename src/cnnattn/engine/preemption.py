"""Preemption: SIGTERM (what a cluster scheduler sends before it kills a job) stops training at the next batch
with a resumable checkpoint, and ``--resume`` continues from that batch with the same result as no stop.

Lightning stops a run at the end of the batch in which SIGTERM arrived, by raising ``SIGTERMException`` (a
``SystemExit`` with status 0: the process would end as if training had finished), and writes no checkpoint. Here
``last.ckpt`` then holds the run where it stopped (written atomically), and ``train`` raises
:class:`~cnnattn.engine.errors.TrainingInterrupted` (the CLI exits with 143). On resume, the epoch's shuffled order
(a function of seed and epoch only, see :class:`cnnattn.data.EpochShardSampler`) continues after the batches already
trained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

from ..data.loading import EpochShardSampler

__all__ = ["PreemptionCheckpoint", "SIGTERMException"]


class PreemptionCheckpoint(Callback):
    """On SIGTERM in training, keep a resumable ``checkpoint`` where the run stops; on resume, skip the batches trained.

    In the middle of an epoch the run stops after the current batch and ``checkpoint`` is written there. In the
    epoch's last batch or its validation, the stop waits for the end of the epoch (a half-run validation does not
    resume exactly), where the run's ``last.ckpt`` is written as usual; in the final epoch the run just finishes.

    Args:
        checkpoint: The run's ``last.ckpt``, which ``--resume`` reads.
    """

    def __init__(self, checkpoint: str | Path) -> None:
        self.checkpoint = Path(checkpoint)
        self.saved_at: tuple[int, int] | None = None  # (epoch, batches done in it) where the run stopped
        self._deferred = False

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        done = _batches_done(trainer)
        sampler = getattr(trainer.train_dataloader, "sampler", None)
        mid_epoch = 0 < done < trainer.num_training_batches  # an end-of-epoch checkpoint has done == all batches
        if mid_epoch and isinstance(sampler, EpochShardSampler):  # resumed from a checkpoint written mid-epoch
            sampler.resume_at(trainer.current_epoch, done * trainer.train_dataloader.batch_size)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if _batches_done(trainer) + 1 == trainer.num_training_batches:  # the epoch's last: counted after this hook
            self._defer(trainer)

    def on_validation_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if not trainer.sanity_checking:
            self._defer(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Runs before the checkpoint callbacks of this hook; Lightning then stops after them (end of the epoch)."""
        if self._deferred and trainer.current_epoch + 1 < trainer.max_epochs:
            trainer._signal_connector.received_sigterm = True
        self._deferred = False

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        done = _batches_done(trainer)
        if done < trainer.num_training_batches:
            trainer.save_checkpoint(self.checkpoint)
            self.saved_at = (trainer.current_epoch, done)
        else:  # stopped at the end of the epoch, whose checkpoint is written; the epoch counter has moved on
            self.saved_at = (trainer.current_epoch - 1, done)

    def _defer(self, trainer: pl.Trainer) -> None:
        """Hide a SIGTERM from Lightning until the end of the epoch."""
        if trainer.received_sigterm:
            trainer._signal_connector.received_sigterm = False
            self._deferred = True


def _batches_done(trainer: pl.Trainer) -> int:
    """Training batches finished in the current epoch."""
    return trainer.fit_loop.epoch_loop.batch_progress.current.completed
