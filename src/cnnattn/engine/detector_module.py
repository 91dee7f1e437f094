"""``DetectorModule``: the LightningModule that trains a torchvision detector and validates it with COCO metrics."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..data.detection import DetectionSet
from .coco_eval import coco_metrics
from .config import TrainConfig
from .module import CHECKPOINT_KEY, RecipeModule

__all__ = ["LOGGED_METRICS", "DetectorModule", "predict_all"]

LOGGED_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")


def _empty_prediction() -> dict[str, torch.Tensor]:
    return {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}


def ordered_predictions(dataset: DetectionSet, by_image: dict[int, dict[str, torch.Tensor]]) -> list[dict]:
    """Predictions in record order (an image the model never saw, e.g. unreadable, predicts nothing)."""
    return [by_image.get(record.image_id, _empty_prediction()) for record in dataset.records]


@torch.no_grad()
def predict_all(model: nn.Module, batches: Any, device: torch.device | str = "cpu") -> dict[int, dict]:
    """``{image_id: prediction}`` of a detector in eval mode over ``(images, targets)`` batches."""
    predictions = {}
    for batch in batches:
        if batch is None:
            continue
        images, targets = batch
        outputs = model([image.to(device) for image in images])
        for target, output in zip(targets, outputs, strict=True):
            predictions[int(target["image_id"])] = {k: v.detach().cpu() for k, v in output.items()}
    return predictions


DETECTION_LR_BASE = 0.02  # SGD, per global batch of 16 images


class DetectorModule(RecipeModule):
    """The detector's own losses (summed) for training; AP, AP50, AP75, APs/m/l and AR100 (percent, pycocotools)
    on the validation split, gathered from every process.

    Args:
        model: A torchvision-style detector (``model(images, targets)`` → losses; ``model(images)`` → boxes).
        config: The recipe.
        classes: Class names (without the background).
        val_set: The validation split, the ground truth of the metrics.
    """

    def peak_lr(self, world_size: int) -> float:
        """With SGD, 0.02 per global batch of 16 images (torchvision's and Detectron2's recipes)."""
        if self.config.opt == "sgd":
            return self.config.resolved_lr(world_size, DETECTION_LR_BASE, per_images=16)
        return super().peak_lr(world_size)

    def __init__(self, model: nn.Module, config: TrainConfig, classes: list[str], val_set: DetectionSet) -> None:
        super().__init__(model, config, classes)
        self.val_set = val_set
        self._predictions: dict[int, dict[str, torch.Tensor]] = {}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint[CHECKPOINT_KEY]["category_ids"] = list(self.val_set.category_ids)  # the data's own ids

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        if batch is None:  # every image of the batch was unreadable (each one warned)
            return None
        images, targets = batch
        losses = self._train_forward(images, targets)
        loss = sum(losses.values())
        self.check_finite(loss)
        size = len(images)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=size, sync_dist=True)
        for name, value in losses.items():
            self.log(f"train/{name}", value, on_step=False, on_epoch=True, batch_size=size, sync_dist=True)
        self.log("lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False, batch_size=size)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._predictions.update(predict_all(self.eval_model(), [batch], self.device))

    def on_validation_epoch_end(self) -> None:
        predictions, self._predictions = self._predictions, {}
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            shards: list[dict] = [{} for _ in range(dist.get_world_size())]
            dist.all_gather_object(shards, predictions)
            predictions = {k: v for shard in shards for k, v in shard.items()}
        metrics = coco_metrics(self.val_set, ordered_predictions(self.val_set, predictions))
        for name in LOGGED_METRICS:
            if metrics[name] is not None:  # None: no ground truth of that size
                self.log(f"val/{name}", metrics[name], prog_bar=name == "AP")
