"""Training and evaluation on PyTorch Lightning, and ``compare`` (several attention variants, one recipe)."""

from .checkpoint_io import AtomicCheckpointIO, load_training_checkpoint
from .config import TrainConfig, load_config, parse_overrides
from .module import ClassifierModule, NonFiniteLossError
from .train import TrainResult, build_model, train

__all__ = [
    "AtomicCheckpointIO",
    "ClassifierModule",
    "NonFiniteLossError",
    "TrainConfig",
    "TrainResult",
    "build_model",
    "load_config",
    "load_training_checkpoint",
    "parse_overrides",
    "train",
]
