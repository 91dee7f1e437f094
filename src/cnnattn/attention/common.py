"""Pieces the attention modules share: timm's ``device``/``dtype`` factory keywords and the TorchScript refusal."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["NotScriptable", "to_factory"]


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
