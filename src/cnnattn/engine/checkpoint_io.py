"""Checkpoint files that survive a crash mid-write and never unpickle code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..utils import atomic_write
from .errors import CheckpointWriteError

__all__ = ["AtomicCheckpointIO", "atomic_torch_save", "load_training_checkpoint"]


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` through :func:`cnnattn.utils.atomic_write` (temporary file, fsync, rename)."""
    atomic_write(path, lambda f: torch.save(obj, f))


def load_training_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """A checkpoint written by ``cnnattn train``, loaded with ``weights_only=True`` (tensors and plain data)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found.")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise ValueError(f"{path}: not a readable cnnattn checkpoint ({type(err).__name__}: {err}).") from None


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
