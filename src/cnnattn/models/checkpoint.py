"""Safe loading of local weights: safetensors or ``torch.load(..., weights_only=True)``, never arbitrary pickles."""

from __future__ import annotations

import re
import warnings
from collections.abc import Collection
from pathlib import Path

import torch
from torch import nn

__all__ = ["load_checkpoint", "load_state", "read_state_dict", "safe_torch_load"]

STATE_DICT_FILE = "a state dict saved as `torch.save(model.state_dict(), path)` (.pth) or as .safetensors"
_WRAPPER_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model")
_PREFIXES = ("module.", "model.", "_orig_mod.")


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    while isinstance(obj, dict) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        key = next((k for k in _WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
        if key is None:
            raise ValueError(
                f"{path}: no state dict found; expected a dict of tensors or one under one of the "
                f"keys {_WRAPPER_KEYS}; got keys {sorted(obj)[:8]}."
            )
        obj = obj[key]
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state dict (dict of tensors), got {type(obj).__name__}.")
    for prefix in _PREFIXES:
        if obj and all(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix) :]: v for k, v in obj.items()}
    return obj


def safe_torch_load(path: str | Path, expected: str, map_location: object = "cpu") -> object:
    """``torch.load(path, weights_only=True)`` whose failures are one ValueError naming ``path``, what is wrong
    with it and ``expected`` (what the caller wanted, e.g. "a checkpoint written by `cnnattn train`").

    Torch's own messages advise re-loading with ``weights_only=False``: they are never passed on, since that runs
    whatever code the file holds.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (expected {expected}).")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, KeyError... for bad files
        raise ValueError(f"{path}: {_why_unreadable(err, path)}; expected {expected}.") from None


def _why_unreadable(err: Exception, path: Path) -> str:
    """What a failed ``weights_only`` load says about the file, in a few words and without torch's advice."""
    text = str(err)
    if found := re.search(r"GLOBAL (\S+)", text):
        return (
            f"it holds a pickled Python object ({found.group(1)}), which cnnattn never loads since unpickling can "
            "run code (only tensors and plain data are read)"
        )
    if path.stat().st_size == 0:
        return "the file is empty"
    if "zip archive" in text or "central directory" in text or isinstance(err, EOFError):
        return "the file is truncated or corrupt (an interrupted copy or download?)"
    return "not a PyTorch file"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a torch file (loaded with ``weights_only=True``).

    Unwraps common containers (``state_dict``, ``model``, EMA variants) and ``module.``/``model.`` prefixes.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        return _unwrap(safe_torch_load(path, STATE_DICT_FILE), path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (expected {STATE_DICT_FILE}).")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except SafetensorError as err:
        raise ValueError(f"{path}: not a readable safetensors file ({err}); expected {STATE_DICT_FILE}.") from None


def _drop_mismatched_classifier(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> list[str]:
    """Remove classifier entries whose shape differs (another num_classes); return their keys."""
    own = model.state_dict()
    classifier = (getattr(model, "pretrained_cfg", None) or {}).get("classifier")
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    for key in mismatched:
        if classifier and key.startswith(f"{classifier}."):
            warnings.warn(
                f"{path}: {key} has shape {tuple(state[key].shape)} but the model expects "
                f"{tuple(own[key].shape)} (different num_classes); the classifier keeps its fresh "
                "initialisation.",
                stacklevel=3,
            )
            del state[key]
        else:
            raise ValueError(
                f"{path}: {key} has shape {tuple(state[key].shape)}, the model expects "
                f"{tuple(own[key].shape)}; is this a checkpoint of another architecture?"
            )
    return mismatched


def load_state(
    model: nn.Module, state: dict[str, torch.Tensor], path: str | Path, *, allow_missing: Collection[str] = ()
) -> list[str]:
    """Load ``state`` (read from ``path``) into ``model``; return the missing keys (all allowed).

    A classifier of another shape keeps its initialisation with a warning; any other missing key, and every
    unexpected key, raises ValueError naming them.
    """
    path = Path(path)
    allowed = set(allow_missing) | set(_drop_mismatched_classifier(model, state, path))
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if k not in allowed]
    if result.unexpected_keys or missing:
        name = (getattr(model, "pretrained_cfg", None) or {}).get("architecture") or type(model).__name__
        raise ValueError(
            f"{path} does not match {name}: missing {missing[:3]} ({len(missing)} in all), unexpected "
            f"{result.unexpected_keys[:3]} ({len(result.unexpected_keys)} in all); expected a state dict of {name} "
            "or of its plain backbone. Is it a checkpoint of another architecture?"
        )
    return list(result.missing_keys)


def load_checkpoint(model: nn.Module, path: str | Path, *, allow_missing: Collection[str] = ()) -> nn.Module:
    """Load weights from ``path`` into ``model`` and return it.

    Args:
        model: The model to fill.
        path: ``.safetensors`` or torch state-dict file.
        allow_missing: Keys the file may lack (e.g. attention added to a plain backbone checkpoint);
            any other missing key, and every unexpected key, raises ValueError.
    """
    load_state(model, read_state_dict(path), path, allow_missing=allow_missing)
    return model
