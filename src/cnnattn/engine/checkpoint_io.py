"""Checkpoint files that survive a crash mid-write and never unpickle code."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..models.checkpoint import safe_torch_load
from ..utils import atomic_write
from .errors import CheckpointWriteError

__all__ = ["AtomicCheckpointIO", "atomic_torch_save", "load_training_checkpoint"]


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` through :func:`cnnattn.utils.atomic_write` (temporary file, fsync, rename)."""
    atomic_write(path, lambda f: torch.save(obj, f))


TRAINING_CHECKPOINT = (
    "a checkpoint written by `cnnattn train` (runs/<run>/checkpoints/last.ckpt or best.ckpt) or by timm's train.py"
)


def load_training_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """A checkpoint written by ``cnnattn train`` or timm's ``train.py``, loaded with ``weights_only=True`` (tensors and
    plain data; timm's ``args`` namespace is plain data too).

    ValueError naming the file for anything else: garbage, truncated, pickled objects, a bare state dict."""
    with torch.serialization.safe_globals([argparse.Namespace]):  # timm's train.py stores its args: plain data
        state = safe_torch_load(path, TRAINING_CHECKPOINT, map_location)
    if not isinstance(state, dict) or "state_dict" not in state:
        kind = "a state dict of model weights" if _is_state_dict(state) else f"a {type(state).__name__}"
        hint = " (start training from it with --init-checkpoint)" if _is_state_dict(state) else ""
        raise ValueError(f"{path}: it holds {kind}{hint}; expected {TRAINING_CHECKPOINT}.")
    return state


def _is_state_dict(obj: object) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O: atomic writes (temp file + rename), ``weights_only=True`` reads."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        try:
            atomic_torch_save(checkpoint, path)
        except OSError as err:
            raise CheckpointWriteError(
                f"could not write the checkpoint {path} ({err.strerror or err}); the previous one there is intact. "
                "Free disk space (or fix the folder's permissions) and continue with --resume."
            ) from None

    def load_checkpoint(self, path: str | Path, map_location: Any = None, weights_only: bool | None = None) -> dict:
        return load_training_checkpoint(path, map_location or "cpu")
