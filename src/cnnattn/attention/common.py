"""Pieces the attention modules share: timm's ``device``/``dtype`` factory keywords, the TorchScript refusal, the
gate product, autocast's state and attention-row queries. Fast-path switches and thresholds are in
:mod:`cnnattn.fast_paths`."""

from __future__ import annotations

import torch
from torch import nn

from ..fast_paths import may_overwrite_temporaries

__all__ = ["NotScriptable", "Query", "autocast_active", "gated", "query_index", "query_rows", "to_factory"]

Query = tuple[float, float]  # (y, x) as fractions of the output grid's height and width, in [0, 1]


def to_factory(module: nn.Module, device: torch.device | str | None, dtype: torch.dtype | None) -> None:
    """Move a freshly built module's parameters and buffers to ``device``/``dtype`` (no-op when both are None).

    Every cnnattn attention accepts these keywords, as timm's layers do, so any of them can serve as timm's
    ``attn_layer`` (timm builds it as ``attn_layer(channels, device=..., dtype=...)``).
    """
    if device is not None or dtype is not None:
        module.to(device=device, dtype=dtype)


class NotScriptable:
    """Mixin: ``torch.jit.script`` on a model holding this module fails at once, naming the paths that work."""

    def __prepare_scriptable__(self) -> nn.Module:
        raise RuntimeError(
            f"{type(self).__name__} cannot be compiled by torch.jit.script (its forward uses Python that "
            "TorchScript lacks); use torch.jit.trace, torch.export.export, torch.compile or ONNX export instead."
        )


def gated(x: torch.Tensor, multiplier: torch.Tensor, scratch: str = "") -> torch.Tensor:
    """``x ⊙ multiplier``, the product every gate returns (``multiplier`` broadcasts against ``x`` (B, C, H, W)).

    ``scratch`` (``"x"`` or ``"multiplier"``) names a full-size factor that is the caller's own temporary: where
    :func:`cnnattn.fast_paths.may_overwrite_temporaries`, the product is written into it in place (no fresh
    full-size tensor, the same one pass).
    """
    if scratch and may_overwrite_temporaries():
        return multiplier.mul_(x) if scratch == "multiplier" else x.mul_(multiplier)
    return x * multiplier


def autocast_active() -> bool:
    """Whether autocast (CPU or CUDA) is on. A Python bool, False while ``torch.fx`` traces, so a branch on it keeps
    models traceable. Used where a computation must run in float32 under autocast (attention logits, whose products
    of large activations lose too many digits in bfloat16 and overflow float16)."""
    return torch.is_autocast_enabled("cpu") or torch.is_autocast_enabled("cuda")


def query_index(query: Query, height: int, width: int) -> int:
    """Flat index on a (height, width) grid of the position at fractions ``query`` = (y, x) in [0, 1]."""
    fy, fx = query
    if not (0 <= fy <= 1 and 0 <= fx <= 1):
        raise ValueError(f"query must be (y, x) fractions of the map in [0, 1], e.g. (0.5, 0.5); got {query}.")
    return min(int(fy * height), height - 1) * width + min(int(fx * width), width - 1)


def query_rows(rows: torch.Tensor, out_size: tuple[int, int], in_size: tuple[int, int], query: Query) -> torch.Tensor:
    """One query's attention over the input: rows (..., H'·W', H·W) → (..., H, W) at ``query`` on the H'×W' grid."""
    return rows[..., query_index(query, *out_size), :].unflatten(-1, in_size)
