"""``--log-maps N``: every N epochs, a grid of attention maps of a few fixed validation images in TensorBoard."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger

__all__ = ["AttentionMapLogger"]


class AttentionMapLogger(Callback):
    """After validation of every ``every``-th epoch, draws what the model's attention applies to the first
    ``count`` validation images (the picture of ``cnnattn show --method attention``) as TensorBoard figure
    ``attention_maps``. Classification only; on the first process; the model's mode is restored."""

    def __init__(self, every: int, count: int = 4) -> None:
        self.every, self.count = every, count
        self._batch: tuple[torch.Tensor, torch.Tensor] | None = None

    def _images(self, trainer: pl.Trainer) -> tuple[torch.Tensor, torch.Tensor]:
        if self._batch is None:
            images, labels = next(iter(trainer.datamodule.val_dataloader()))
            self._batch = images[: self.count], labels[: self.count]
        return self._batch

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every or not trainer.is_global_zero or trainer.sanity_checking:
            return
        logger = next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
        if logger is None:
            return
        from ..data.samples import Sample, display_pixels
        from ..visualize.show import Subject, attention_cells, grid_figure

        images, labels = self._images(trainer)
        model, training = pl_module.model, pl_module.model.training
        device = next(model.parameters()).device
        subject = Subject(f"epoch {trainer.current_epoch + 1}", model.eval(), pl_module.classes, images.shape[-1])
        samples = [Sample(x.to(device), display_pixels(x), f"val {i}", int(y)) for i, (x, y) in
                   enumerate(zip(images, labels, strict=True))]  # fmt: skip
        try:
            cells, _ = attention_cells(subject, samples, "attention", None)
        finally:
            model.train(training)
        figure = grid_figure(samples, [cells])
        logger.experiment.add_figure("attention_maps", figure, global_step=trainer.global_step, close=False)
