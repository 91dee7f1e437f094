"""A trained run's model from its checkpoint: the recipe it stores, the model that recipe builds with the checkpoint's
weights, and that model as a subject for :mod:`cnnattn.visualize`.

Checkpoints of ``cnnattn train`` carry the whole recipe and the class names. Checkpoints of timm's ``train.py``
(``arch``, ``state_dict``, ``args``; run with ``--device-modules cnnattn`` or ``cnnattn timm train.py``) carry
the model name, its keywords, the data folder and the image size, but no class names: their classes are the
indices ``0``…``n-1``, and evaluation checks only their count against the data's.
"""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path
from typing import Any

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
    if is_timm_checkpoint(state):
        config, classes = timm_recipe(state)
        weights = state.get("state_dict_ema") or state["state_dict"]
    else:
        config, classes = training_recipe(state, checkpoint)
        prefix = "ema.module." if config.ema_decay else "model."
        weights = {k.removeprefix(prefix): v for k, v in state["state_dict"].items() if k.startswith(prefix)}
    outputs = get_task(config.task).outputs(len(classes))  # detectors count the background as a class
    model = build_model(config.replace(init_checkpoint=None), outputs)  # weights: the checkpoint
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


def is_timm_checkpoint(state: dict) -> bool:
    """Whether a loaded checkpoint is one of timm's ``train.py`` (``arch`` and ``args`` beside ``state_dict``)."""
    return CHECKPOINT_KEY not in state and isinstance(state.get("arch"), str) and "args" in state


def timm_recipe(state: dict) -> tuple[TrainConfig, list[str]]:
    """The recipe of a timm ``train.py`` checkpoint (model, keywords, data folder, image size) and its classes,
    named by index; ValueError when it names no model cnnattn builds."""
    args: dict[str, Any] = vars(state["args"]) if isinstance(state["args"], Namespace) else dict(state["args"] or {})
    kwargs = dict(args.get("model_kwargs") or {})
    kwargs.update({k: args[k] for k in ("in_chans", "global_pool") if args.get(k) is not None})
    size = args.get("img_size") or (args.get("input_size") or [None])[-1]
    num_classes = args.get("num_classes") or _classifier_rows(state["state_dict"])
    data = args.get("data_dir") or args.get("data") or TrainConfig.data
    config = TrainConfig(model=state["arch"], data=str(data), img_size=size, model_kwargs=kwargs)
    return config, [str(i) for i in range(num_classes)]


def _classifier_rows(weights: dict) -> int:
    """The class count of a state dict: the rows of its last 2-D weight (the classifier's)."""
    return next(w.shape[0] for w in reversed(list(weights.values())) if getattr(w, "ndim", 0) == 2)


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
