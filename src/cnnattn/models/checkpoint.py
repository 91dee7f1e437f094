"""Safe loading of local weights: safetensors or ``torch.load(..., weights_only=True)``, never arbitrary pickles."""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Collection
from pathlib import Path

import torch
from torch import nn

__all__ = ["load_checkpoint", "load_state", "read_state_dict"]

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


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a torch file (loaded with ``weights_only=True``).

    Unwraps common containers (``state_dict``, ``model``, EMA variants) and ``module.``/``model.`` prefixes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path} (expected a .pth/.pt/.bin or .safetensors file).")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path} holds pickled Python objects beyond tensors and was not loaded (cnnattn loads "
            "with weights_only=True). Re-save it as `torch.save(model.state_dict(), path)` or as "
            f"safetensors. Details: {str(err).splitlines()[0]}"
        ) from None
    return _unwrap(obj, path)


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
        raise ValueError(
            f"{path} does not match the model: missing {missing[:6]} "
            f"({len(missing)} in all), unexpected {result.unexpected_keys[:6]} "
            f"({len(result.unexpected_keys)} in all)."
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
