"""A trained run's model from its ``cnnattn train`` checkpoint: the recipe it stores, the model that recipe builds with
the checkpoint's weights, and that model as a subject for :mod:`cnnattn.visualize`."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ..visualize.show import Subject
from .checkpoint_io import TRAINING_CHECKPOINT, load_training_checkpoint
from .config import TrainConfig
from .module import CHECKPOINT_KEY
from .tasks import get_task
from .training import build_model

__all__ = ["load_trained_model", "trained_subject", "training_recipe"]


def load_trained_model(checkpoint: str | Path) -> tuple[nn.Module, TrainConfig, list[str]]:
    """The model of a training checkpoint (its EMA weights when the run used EMA), its recipe and classes."""
    state = load_training_checkpoint(checkpoint)
    config, classes = training_recipe(state, checkpoint)
    outputs = get_task(config.task).outputs(len(classes))  # detectors count the background as a class
    model = build_model(config.replace(init_checkpoint=None), outputs)  # weights: the checkpoint
    prefix = "ema.module." if config.ema_decay else "model."
    weights = {k.removeprefix(prefix): v for k, v in state["state_dict"].items() if k.startswith(prefix)}
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise ValueError(
            f"{checkpoint}: its weights do not fit the model its recipe names ({config.model}, {len(classes)} "
            f"classes): {str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else err}"
        ) from None
    return model.eval(), config, classes


def training_recipe(state: dict, checkpoint: str | Path) -> tuple[TrainConfig, list[str]]:
    """The recipe and class names stored in a training checkpoint; ValueError naming the file if they are not."""
    meta = state.get(CHECKPOINT_KEY)
    if not isinstance(meta, dict) or not {"config", "classes"} <= meta.keys():
        raise ValueError(f"{checkpoint}: no {CHECKPOINT_KEY!r} recipe entry; expected {TRAINING_CHECKPOINT}.")
    try:
        return TrainConfig(**meta["config"]), list(meta["classes"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{checkpoint}: its recipe is not one this cnnattn version reads ({err}).") from None


def trained_subject(checkpoint: str | Path, img_size: int | None = None) -> Subject:
    """The model of a training checkpoint (as ``cnnattn eval`` loads it) to look at, labelled by its run."""
    network, config, classes = load_trained_model(checkpoint)
    side = img_size or config.img_size or 224
    detects = get_task(config.task).detects
    return Subject(_checkpoint_label(Path(checkpoint)), network.eval(), classes, side, detects)


def _checkpoint_label(path: Path) -> str:
    """``runs/das-s0/checkpoints/last.ckpt`` → ``das-s0/last``; any other file → its stem."""
    if path.parent.name == "checkpoints":
        return f"{path.parent.parent.name}/{path.stem}"
    return path.stem
