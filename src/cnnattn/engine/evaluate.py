"""``evaluate``: a ``cnnattn train`` checkpoint on a dataset's validation split: top-1/top-5 for classifiers,
COCO metrics (pycocotools) for detectors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..data import ClassificationData, DataError, DetectionData
from .coco_eval import coco_metrics
from .config import TrainConfig
from .detector_module import ordered_predictions, predict_all
from .trained import load_trained_model

__all__ = ["INFERENCE_PRECISIONS", "evaluate"]

# Inference precisions: "32" is the float32 reference; the others run under torch.autocast, as `train --precision`
# does (matrix products and convolutions in the low type, reductions and softmax-like steps kept in float32).
INFERENCE_PRECISIONS = {"32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class _Request:
    """What ``evaluate`` was asked for: the checkpoint's model, recipe and classes, and the run's settings."""

    checkpoint: str | Path
    model: nn.Module
    config: TrainConfig
    classes: list[str]
    data: str
    precisions: list[str]
    img_size: int | None
    batch_size: int | None
    workers: int
    device: str


def _check_classes(data: object, found: list[str], classes: list[str]) -> None:
    """DataError unless the data's classes are the checkpoint's (a timm checkpoint's, named by index: as many)."""
    by_index = classes == [str(i) for i in range(len(classes))]
    if found != classes and not (by_index and len(found) == len(classes)):
        raise DataError(
            f"{data}: its classes ({len(found)}: {found[:5]}...) differ from the checkpoint's "
            f"({len(classes)}: {classes[:5]}...); evaluate on the dataset the model was trained on."
        )


def _evaluate_detection(r: _Request) -> dict:
    """COCO metrics (percent, pycocotools) of a detector on the validation split of ``r.data``."""
    if r.precisions != ["32"]:
        raise ValueError("--precision compares classifiers' top-1; evaluate a detector in float32.")
    checkpoint, model, config, classes, data, device = r.checkpoint, r.model, r.config, r.classes, r.data, r.device
    # the training batch size by default: a detector pads each batch to its largest image, which moves boxes
    batch_size = r.batch_size or config.batch_size
    module = DetectionData(data, batch_size, r.workers, seed=config.seed, val_fraction=config.val_fraction)
    _check_classes(data, module.classes, classes)
    val = module.split("val")
    predictions = predict_all(model.to(device), module.val_dataloader(), device)
    metrics = coco_metrics(val, ordered_predictions(val, predictions))
    info = {"checkpoint": str(checkpoint), "model": config.model, "detector": config.detector, "data": str(data)}
    return {**info, "img_size": config.img_size, "images": len(predictions), **metrics}


def _check_precisions(precisions: Sequence[str], device: str) -> list[str]:
    """The precisions to run, float32 first (the reference); ValueError naming the fix for a bad request."""
    unknown = [p for p in precisions if p not in INFERENCE_PRECISIONS]
    if unknown:
        raise ValueError(f"unknown precision(s) {', '.join(unknown)}; choose from {', '.join(INFERENCE_PRECISIONS)}.")
    if "fp16" in precisions and torch.device(device).type != "cuda":
        raise ValueError("fp16 inference runs on CUDA only (--device cuda); on CPU compare bf16.")
    return ["32", *dict.fromkeys(p for p in precisions if p != "32")]


@dataclass
class _Tally:
    """Running top-1/top-5 hits, loss sum and top-1 agreement with the float32 reference."""

    correct1: int = 0
    correct5: int = 0
    agree: int = 0
    loss_sum: float = 0.0

    def add(self, logits: torch.Tensor, y: torch.Tensor, reference: torch.Tensor, k: int) -> torch.Tensor:
        top = logits.float().topk(k, dim=1).indices
        self.correct1 += int((top[:, 0] == y).sum())
        self.correct5 += int((top == y[:, None]).any(dim=1).sum())
        self.agree += int((top[:, 0] == reference).sum())
        self.loss_sum += float(F.cross_entropy(logits.float(), y, reduction="sum"))
        return top[:, 0]

    def metrics(self, images: int) -> dict[str, float]:
        return {
            "top1": 100 * self.correct1 / images,
            "top5": 100 * self.correct5 / images,
            "loss": self.loss_sum / images,
            "agreement": 100 * self.agree / images,
        }


@torch.no_grad()
def evaluate(
    checkpoint: str | Path,
    data: str | None = None,
    *,
    img_size: int | None = None,
    batch_size: int | None = None,
    workers: int = 2,
    device: str = "cpu",
    precisions: Sequence[str] = ("32",),
) -> dict:
    """Top-1/top-5 (percent) and mean loss on the validation split of ``data`` (default: the run's data); for a
    detector, AP, AP50, AP75, APs/m/l, AR1/10/100, ARs/m/l (percent; None where no object has that size).

    The classes of the data must match the checkpoint's (same names, same order; for a timm ``train.py``
    checkpoint, whose classes are indices, the same count), otherwise DataError.
    ``batch_size`` defaults to 128, and for a detector to its training batch size (a detector pads each batch
    to its largest image, so the batch size moves boxes slightly). ``precisions`` beyond ``"32"`` (``bf16``;
    ``fp16`` on CUDA) run the same images under autocast and add ``precisions[p]``: their top-1/top-5/loss and
    ``agreement``, the percentage of images whose top-1 class equals float32's.
    """
    chosen = _check_precisions(precisions, device)
    model, config, classes = load_trained_model(checkpoint)
    request = _Request(checkpoint, model, config, classes, data or config.data, chosen, img_size, batch_size, workers,
                       device)  # fmt: skip
    return EVALUATORS[config.task](request)


def _evaluate_classifier(r: _Request) -> dict:
    """Top-1/top-5 and mean loss of a classifier on the validation split of ``r.data``, in each precision."""
    checkpoint, model, config, classes, data, device, chosen = (
        r.checkpoint, r.model, r.config, r.classes, r.data, r.device, r.precisions
    )  # fmt: skip
    module = ClassificationData(data, r.img_size or config.img_size, r.batch_size or 128, r.workers, seed=config.seed)
    _check_classes(data, module.classes, classes)
    model.to(device)
    tallies = {p: _Tally() for p in chosen}
    images, k = 0, min(5, len(classes))
    for batch in module.val_dataloader():
        if batch is None:
            continue
        x, y = (t.to(device) for t in batch)
        reference = model(x)
        predicted = tallies["32"].add(reference, y, reference.argmax(dim=1), k)
        for precision in chosen[1:]:
            with torch.autocast(torch.device(device).type, dtype=INFERENCE_PRECISIONS[precision]):
                tallies[precision].add(model(x), y, predicted, k)
        images += len(y)
    if images == 0:
        raise DataError(f"{data}: no readable images in the validation split.")
    reference_metrics = tallies["32"].metrics(images)
    del reference_metrics["agreement"]
    result = {
        "checkpoint": str(checkpoint),
        "model": config.model,
        "data": str(data),
        "img_size": module.img_size,
        "images": images,
        **reference_metrics,
    }
    if len(chosen) > 1:
        result["precisions"] = {p: tallies[p].metrics(images) for p in chosen[1:]}
    return result


EVALUATORS: dict[str, Callable[[_Request], dict]] = {"classify": _evaluate_classifier, "detect": _evaluate_detection}
