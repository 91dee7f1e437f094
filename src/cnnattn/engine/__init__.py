"""Training and evaluation on PyTorch Lightning, and ``compare`` (several attention variants, one recipe).

Names are imported on first use, so ``cnnattn.engine.config`` (the recipe) loads without Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AtomicCheckpointIO": ".checkpoint_io",
    "load_training_checkpoint": ".checkpoint_io",
    "TrainConfig": ".config",
    "load_config": ".config",
    "parse_overrides": ".config",
    "NonFiniteLossError": ".errors",
    "ClassifierModule": ".module",
    "TrainResult": ".training",
    "build_model": ".training",
    "train": ".training",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)


def __dir__() -> list[str]:
    return __all__
