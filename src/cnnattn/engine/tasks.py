"""The two tasks a recipe trains, classification and detection: everything that differs between them, in one class
each, chosen once from the recipe's ``task`` (:func:`get_task`).

A task says which data module reads the data, which model and Lightning module it trains, which metric picks the best
checkpoint, which two metrics ``compare`` reports, how many outputs the model has (detectors count the background),
whether BatchNorm is frozen by default, and how a finished run's result reads.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from lightning.pytorch.callbacks import Callback
from torch import nn

from ..data import ClassificationData, DetectionData
from ..models import create_detector, create_model
from ..models.norm import freeze_batch_norm
from .config import COMPARE_RECIPE, TASKS, TrainConfig
from .detector_module import DetectorModule
from .module import ClassifierModule, RecipeModule

__all__ = ["Classification", "Detection", "Task", "TaskMetrics", "get_task"]

DETECTION_IMG_SIZE = 800  # torchvision's min_size
DETECTION_MAX_RATIO = 1333 / 800  # torchvision's max_size / min_size


@dataclass(frozen=True)
class TaskMetrics:
    """What a task's comparison reports: the main validation metric (judged for differences) and a second one,
    both in percent, as keys of ``TrainResult.metrics`` and as column labels."""

    main: str
    second: str
    main_label: str
    second_label: str

    def of(self, result: Any) -> tuple[float, float]:
        """(main, second) of one run's ``TrainResult``; results of older versions keep top-1/top-5 as attributes
        only."""
        return tuple(result.metrics.get(k, getattr(result, k, math.nan)) for k in (self.main, self.second))


class Task(abc.ABC):
    """One task. Subclasses set the class attributes and implement the four abstract methods."""

    name: ClassVar[str]
    metrics: ClassVar[TaskMetrics]
    background: ClassVar[int] = 0  # outputs beyond the data's classes
    detects: ClassVar[bool] = False  # the model returns boxes (pictures draw them)
    frozen_bn_default: ClassVar[bool] = False
    compare_recipe: ClassVar[dict[str, Any]] = {}  # ``cnnattn compare``'s recipe defaults, under the user's flags

    @property
    def monitor(self) -> str:
        """The logged metric whose maximum picks ``best.ckpt`` (and that ``patience`` watches)."""
        return f"val/{self.metrics.main}"

    def outputs(self, classes: int) -> int:
        """The model's output count for ``classes`` classes."""
        return classes + self.background

    def frozen_bn(self, config: TrainConfig) -> bool:
        """``freeze_bn`` resolved: unset means the task's default."""
        return self.frozen_bn_default if config.freeze_bn is None else config.freeze_bn

    @abc.abstractmethod
    def data(self, config: TrainConfig) -> tuple[ClassificationData | DetectionData, TrainConfig]:
        """The data module of the recipe, and the recipe with its image size resolved."""

    @abc.abstractmethod
    def build_model(self, config: TrainConfig, num_classes: int) -> nn.Module:
        """The model of a recipe with ``num_classes`` outputs (:meth:`outputs`), from ``init_checkpoint`` if set."""

    @abc.abstractmethod
    def lightning_module(self, model: nn.Module, config: TrainConfig, data: Any) -> RecipeModule:
        """The Lightning module that trains ``model`` on the data module ``data``."""

    @abc.abstractmethod
    def scores(self, result: Any) -> str:
        """One line of a finished run's validation scores (``cnnattn train``'s summary)."""

    def callbacks(self, config: TrainConfig) -> list[Callback]:
        """Callbacks the task adds to training."""
        return []

    def result_fields(self, metrics: dict[str, float], best: float) -> dict[str, Any]:
        """The task's fields of ``TrainResult`` from the validation metrics (keys without ``val/``) and the best
        monitored value."""
        return {}

    def describe(self, config: TrainConfig, img_size: int | None) -> tuple[str, str]:
        """(image size, task-specific setting) of a recipe, for ``compare``'s one-line description."""
        size = f"{img_size}×{img_size} px" if img_size else "the data's default size"
        return size, f"label smoothing {config.label_smoothing}"


class Classification(Task):
    name = "classify"
    metrics = TaskMetrics("top1", "top5", "top-1", "top-5")
    compare_recipe = COMPARE_RECIPE

    def data(self, config: TrainConfig) -> tuple[ClassificationData, TrainConfig]:
        data = ClassificationData(
            config.data,
            config.img_size,
            config.batch_size,
            config.workers,
            augment=config.augment,  # type: ignore[arg-type]
            hflip=config.hflip,
            seed=config.seed,
            on_bad_image=config.on_bad_image,  # type: ignore[arg-type]
            train_subset=config.train_subset,
        )
        return data, config.replace(img_size=data.img_size)

    def build_model(self, config: TrainConfig, num_classes: int) -> nn.Module:
        model = create_model(
            config.model,
            num_classes=num_classes,
            attn_kwargs=config.attn_kwargs or None,
            checkpoint_path=config.init_checkpoint,
            **config.model_kwargs,
        )
        return freeze_batch_norm(model) if self.frozen_bn(config) else model

    def lightning_module(self, model: nn.Module, config: TrainConfig, data: Any) -> RecipeModule:
        return ClassifierModule(model, config, data.classes)

    def callbacks(self, config: TrainConfig) -> list[Callback]:
        if not (config.log_maps and config.tensorboard):
            return []
        from .map_logger import AttentionMapLogger  # draws with matplotlib: loaded only when asked for

        return [AttentionMapLogger(config.log_maps)]

    def result_fields(self, metrics: dict[str, float], best: float) -> dict[str, Any]:
        nan = float("nan")
        return {"top1": metrics.get("top1", nan), "top5": metrics.get("top5", nan), "best_top1": best}

    def scores(self, result: Any) -> str:
        return f"val top-1 {result.top1:.2f} % (best {result.best_top1:.2f} %), top-5 {result.top5:.2f} %"


class Detection(Task):
    name = "detect"
    metrics = TaskMetrics("AP", "AP50", "AP", "AP50")
    background = 1
    detects = True
    frozen_bn_default = True  # torchvision's detectors train with frozen BatchNorm

    def data(self, config: TrainConfig) -> tuple[DetectionData, TrainConfig]:
        data = DetectionData(
            config.data,
            config.batch_size,
            config.workers,
            hflip=0.5 if config.hflip is None else config.hflip,
            val_fraction=config.val_fraction,
            seed=config.seed,
            on_bad_image=config.on_bad_image,
            train_subset=config.train_subset,
        )
        return data, config.replace(img_size=config.img_size or DETECTION_IMG_SIZE)

    def build_model(self, config: TrainConfig, num_classes: int) -> nn.Module:
        size = config.img_size or DETECTION_IMG_SIZE
        return create_detector(
            config.detector,
            config.model,
            num_classes,
            trainable_layers=config.trainable_layers,
            frozen_bn=self.frozen_bn(config),
            min_size=size,
            max_size=round(size * DETECTION_MAX_RATIO),
            checkpoint_path=config.init_checkpoint,
            attn_kwargs=config.attn_kwargs or None,
            backbone_kwargs=config.model_kwargs or None,
        )

    def lightning_module(self, model: nn.Module, config: TrainConfig, data: Any) -> RecipeModule:
        return DetectorModule(model, config, data.classes, data.split("val"))

    def result_fields(self, metrics: dict[str, float], best: float) -> dict[str, Any]:
        return {"metrics": {**metrics, "best_AP": best}}

    def scores(self, result: Any) -> str:
        m = result.metrics
        nan = float("nan")
        return f"val AP {m.get('AP', nan):.2f} (best {m['best_AP']:.2f}), AP50 {m.get('AP50', nan):.2f}"

    def describe(self, config: TrainConfig, img_size: int | None) -> tuple[str, str]:
        return (f"{img_size} px short side" if img_size else "the data's default size"), f"{config.detector} detector"


_TASKS: dict[str, Task] = {task.name: task for task in (Classification(), Detection())}
assert tuple(_TASKS) == TASKS, "engine.config.TASKS names the tasks of engine.tasks"


def get_task(name: str) -> Task:
    """The task named ``name`` (a recipe's ``task``); ValueError naming the choices otherwise."""
    try:
        return _TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(_TASKS)}.") from None
