"""LightningModules: ``RecipeModule`` (what every task shares) and ``ClassifierModule`` for classifiers."""

from __future__ import annotations

import random
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from timm.optim import create_optimizer_v2
from timm.utils import ModelEmaV3
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from .. import __version__
from .config import TrainConfig
from .errors import NonFiniteLossError
from .schedule import WarmupSchedule

__all__ = ["CHECKPOINT_KEY", "ClassifierModule", "NonFiniteLossError", "RecipeModule"]

CHECKPOINT_KEY = "cnnattn"


class RecipeModule(pl.LightningModule):
    """What every task's LightningModule shares: the recipe's optimiser and schedule, EMA weights, channels-last,
    ``torch.compile`` of the training forward, the NaN stop, and checkpoint metadata (config, classes, RNG).

    Args:
        model: The network.
        config: The recipe.
        classes: Class names, stored in checkpoints so that ``cnnattn eval`` can check the data.
    """

    def __init__(self, model: nn.Module, config: TrainConfig, classes: list[str]) -> None:
        super().__init__()
        self.model, self.config, self.classes = model, config, list(classes)
        if config.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.ema = ModelEmaV3(model, decay=config.ema_decay) if config.ema_decay else None
        self._compiled = None

    def forward(self, *args: Any) -> Any:
        return self.model(*args)

    def _train_forward(self, *args: Any) -> Any:
        if self.config.compile and self._compiled is None:
            # object.__setattr__ keeps the compiled wrapper out of the module tree: checkpoint keys stay the model's
            object.__setattr__(self, "_compiled", torch.compile(self.model))
        return (self.model if self._compiled is None else self._compiled)(*args)

    def check_finite(self, loss: torch.Tensor) -> None:
        """NonFiniteLossError naming the epoch and step when ``loss`` is NaN or Inf."""
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"the training loss became {loss.item()} at epoch {self.current_epoch}, step {self.global_step}; "
                "the last good checkpoint is kept. Lower the learning rate, add grad_clip, or use precision=32."
            )

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update(self.model, step=self.global_step)

    def eval_model(self) -> nn.Module:
        """The weights that are evaluated: the EMA copy when EMA is on."""
        return self.ema.module if self.ema is not None else self.model

    def peak_lr(self, world_size: int) -> float:
        """The peak learning rate of the recipe for ``world_size`` processes (per 256 images)."""
        return self.config.resolved_lr(world_size)

    def configure_optimizers(self) -> dict[str, Any]:
        config = self.config
        lr = self.peak_lr(self.trainer.world_size)
        optimizer = create_optimizer_v2(  # frozen parameters (a detector's first stages) are left out
            self.model, opt=config.opt, lr=lr, weight_decay=config.resolved_weight_decay(), momentum=config.momentum
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        steps_per_epoch = max(1, total // config.epochs)
        schedule = WarmupSchedule(
            config.sched,
            total,
            warmup_steps=round(config.warmup_epochs * steps_per_epoch),
            step_size=config.step_epochs * steps_per_epoch,
            gamma=config.step_gamma,
            min_ratio=config.min_lr / max(lr, 1e-12),
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = {
            "version": __version__,
            "config": self.config.to_dict(),
            "classes": self.classes,
            "rng": {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])},
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        rng = checkpoint.get(CHECKPOINT_KEY, {}).get("rng")
        if rng:
            torch.set_rng_state(rng["torch"])
            random.setstate((3, tuple(rng["python"]), None))


class ClassifierModule(RecipeModule):
    """Cross-entropy training (label smoothing), top-1/top-5 validation, optional EMA weights.

    Args:
        model: Maps (B, 3, H, W) images to (B, num_classes) logits.
        config: The recipe (optimiser, schedule, EMA, channels-last, compile).
        classes: Class names, stored in checkpoints so that ``cnnattn eval`` can check the data.
    """

    def __init__(self, model: nn.Module, config: TrainConfig, classes: list[str]) -> None:
        super().__init__(model, config, classes)
        top5 = min(5, len(classes))
        self.top1 = MulticlassAccuracy(len(classes), top_k=1, average="micro")
        self.top5 = MulticlassAccuracy(len(classes), top_k=top5, average="micro")

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.config.channels_last else x

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        if batch is None:  # every image of the batch was unreadable (each one warned)
            return None
        x, y = batch
        loss = F.cross_entropy(self._train_forward(self._prepare(x)), y, label_smoothing=self.config.label_smoothing)
        self.check_finite(loss)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(y), sync_dist=True)
        self.log("lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False, batch_size=len(y))
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        if batch is None:
            return
        x, y = batch
        logits = self.eval_model()(self._prepare(x))
        self.top1(logits, y)
        self.top5(logits, y)
        self.log("val/loss", F.cross_entropy(logits, y), on_epoch=True, batch_size=len(y), sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        """Top-1/top-5 in percent over the whole split (synchronised across processes)."""
        self.log("val/top1", self.top1.compute() * 100, prog_bar=True)
        self.log("val/top5", self.top5.compute() * 100)
        self.top1.reset()
        self.top5.reset()
