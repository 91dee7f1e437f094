"""Expose cnnattn model names in timm's registry, so ``timm.create_model('resnet50_cbam')`` works.

Names timm already owns (its plain ``resnet18``...``resnet152``, same architecture and keys) are left to
timm. ``pretrained=True`` takes a local file through ``pretrained_cfg_overlay=dict(file=PATH)``, or the weights
of a Hub-layout folder (``timm.create_model('local-dir:DIR', pretrained=True)``, ``'hf-hub:user/repo'``) written
by ``cnnattn export --format hf`` or timm's ``save_for_hf``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from timm.models import is_model, load_pretrained, model_entrypoint, register_model
from torch import nn

from ..attention.registry import AttentionInfo, add_registry_listener
from .factory import BACKBONES, HUB_SOURCES, MODEL_STACKS, ModelSpec, buildable, create_model, features_net

__all__ = ["register_timm_model"]


def _entrypoint(name: str) -> Callable[..., nn.Module]:
    def entrypoint(
        pretrained: bool = False,
        pretrained_cfg: Any = None,
        pretrained_cfg_overlay: dict[str, Any] | None = None,
        cache_dir: Any = None,
        **kwargs: Any,
    ) -> nn.Module:
        saved = dict(pretrained_cfg) if isinstance(pretrained_cfg, dict) else {}
        if saved.get("source") in HUB_SOURCES:
            return _from_hub_layout(name, saved, pretrained, **kwargs)
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


def _from_hub_layout(name: str, saved: dict[str, Any], pretrained: bool, **kwargs: Any) -> nn.Module:
    """The model a Hub-layout ``config.json`` describes (its ``pretrained_cfg`` kept), with the folder's or
    repository's weights when ``pretrained`` (timm's loader: safetensors first, ``weights_only``)."""
    kwargs.pop("pretrained_model_args", None)
    features_only, out_indices = kwargs.pop("features_only", False), kwargs.pop("out_indices", None)
    model = create_model(name, **kwargs)
    model.pretrained_cfg = model.default_cfg = {**model.pretrained_cfg, **saved, "architecture": name}
    if pretrained:
        in_chans = model.pretrained_cfg.get("input_size", (3,))[0]
        load_pretrained(model, model.pretrained_cfg, num_classes=model.num_classes, in_chans=in_chans)
    return features_net(model, out_indices) if features_only else model


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
