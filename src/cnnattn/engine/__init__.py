"""Training and evaluation on PyTorch Lightning, and ``compare`` (several attention variants, one recipe).

Names are imported on first use, so ``cnnattn.engine.config`` (the recipe) loads without Lightning.
"""

from __future__ import annotations

from ..utils import lazy_exports

_EXPORTS = {
    "AtomicCheckpointIO": ".checkpoint_io",
    "load_training_checkpoint": ".checkpoint_io",
    "TrainConfig": ".config",
    "load_config": ".config",
    "parse_overrides": ".config",
    "NonFiniteLossError": ".errors",
    "TrainingInterrupted": ".errors",
    "ClassifierModule": ".module",
    "TrainResult": ".training",
    "build_model": ".training",
    "train": ".training",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
