"""Expose cnnattn model names in timm's registry, so ``timm.create_model('resnet50_cbam')`` works.

Names timm already owns (its plain ``resnet18``...``resnet152``, same architecture and keys) are left to
timm. ``pretrained=True`` takes a local file through ``pretrained_cfg_overlay=dict(file=PATH)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from timm.models import is_model, model_entrypoint, register_model
from torch import nn

from ..attention.registry import AttentionInfo, add_registry_listener
from .factory import BACKBONES, MODEL_STACKS, ModelSpec, buildable, create_model

__all__ = ["register_timm_model"]


def _entrypoint(name: str) -> Callable[..., nn.Module]:
    def entrypoint(
        pretrained: bool = False,
        pretrained_cfg: Any = None,
        pretrained_cfg_overlay: dict[str, Any] | None = None,
        cache_dir: Any = None,
        **kwargs: Any,
    ) -> nn.Module:
        checkpoint = (pretrained_cfg_overlay or {}).get("file") if pretrained else None
        if pretrained and checkpoint is None:
            raise ValueError(
                f"{name}: no weights can be downloaded. Pass a local file: timm.create_model("
                f"{name!r}, pretrained=True, pretrained_cfg_overlay=dict(file='weights.pth')), "
                f"or cnnattn.create_model({name!r}, checkpoint_path='weights.pth')."
            )
        return create_model(name, checkpoint_path=checkpoint, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = f"cnnattn model {name} (see cnnattn.create_model)."
    return entrypoint


def register_timm_model(name: str) -> bool:
    """Register ``name`` in timm unless timm already has a model of that name; return whether it did."""
    if is_model(name) and model_entrypoint(name).__module__ != __name__:
        return False
    if not is_model(name):
        register_model(_entrypoint(name))
    return True


def _register_attention_models(info: AttentionInfo) -> None:
    for backbone in BACKBONES:
        if buildable(spec := ModelSpec(backbone, (info.name,))):
            register_timm_model(spec.name)


add_registry_listener(_register_attention_models)
for _backbone in BACKBONES:
    register_timm_model(_backbone)
    for _stack in MODEL_STACKS:
        register_timm_model(ModelSpec(_backbone, _stack).name)
