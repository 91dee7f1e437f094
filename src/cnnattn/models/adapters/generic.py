"""The fallback for any timm CNN without an adapter: one gate after each feature level of its ``feature_info``.

timm's models list their feature levels (``feature_info``: module name, channels, reduction). The last four
levels past the stride-2 stem are stages 1–4; position ``stage`` gates each level's output by switching that
module to a subclass that calls ``attn_stage`` after its own ``forward`` (e.g. ``dla34``'s ``level2``…``level5``,
``cspresnet50``'s ``stages.0``…``3``). Other positions need knowledge of the block class: an adapter.

The subclasses are made on demand and named after their base class in this module, so pickling finds them
again. TorchScript cannot compile them (they call ``super().forward``); the family adapters' blocks script.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

import torch
from torch import nn

from .base import (
    AttentionSlots,
    BackboneAdapter,
    BlockLayout,
    BlockSite,
    feature_levels,
    register_adapter,
    resolve_module,
    unsupported_block,
)

__all__ = ["FeatureInfoAdapter", "staged_class"]

_PREFIX = "Staged__"
_DOT = "__dot__"


class _StagedSlots(AttentionSlots):
    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.post_block(super().forward(*args, **kwargs))  # type: ignore[misc]


def staged_class(base: type[nn.Module]) -> type[nn.Module]:
    """The subclass of ``base`` whose ``forward`` is ``base.forward`` followed by ``attn_post``/``attn_stage``."""
    name = _PREFIX + f"{base.__module__}.{base.__qualname__}".replace(".", _DOT)
    cls = globals().get(name)
    if cls is None:
        doc = f"{base.__qualname__} followed by cnnattn's attention slots (see cnnattn.models.adapters.generic)."
        cls = type(name, (_StagedSlots, base), {"__module__": __name__, "__qualname__": name, "__doc__": doc})
        globals()[name] = cls
    return cls


def __getattr__(name: str) -> type[nn.Module]:
    """Re-create a staged class on unpickling (PEP 562)."""
    if not name.startswith(_PREFIX):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module_name, _, qualname = name[len(_PREFIX) :].replace(_DOT, ".").rpartition(".")
    base: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        base = getattr(base, part)
    return staged_class(base)


@register_adapter("feature_info")
class FeatureInfoAdapter(BackboneAdapter):
    """Any model with timm's ``feature_info`` (four levels past the stem) that no family adapter takes: position
    ``stage`` only."""

    block_classes: ClassVar[dict[type[nn.Module], type[nn.Module]]] = {}
    positions: ClassVar[tuple[str, ...]] = ("stage",)
    fallback: ClassVar[bool] = True

    def _stages(self, model: nn.Module) -> list[tuple[str, nn.Module, int, int]]:
        levels = [level for level in feature_levels(model) if level.get("reduction", 0) > 2][-4:]
        found = []
        for level in levels:
            name = resolve_module(model, level["module"])
            if name is None:
                return []
            found.append((name, model.get_submodule(name), int(level["reduction"]), int(level["num_chs"])))
        return found if len(found) == 4 else []

    def matches(self, model: nn.Module) -> bool:
        return bool(self._stages(model))

    def stage_blocks(self, model: nn.Module) -> list[list[tuple[str, nn.Module, int]]]:
        return [[(name, module, stride)] for name, module, stride, _ in self._stages(model)]

    def stages(self, model: nn.Module) -> list[list[BlockSite]]:
        return [
            [BlockSite(name, module, "", (), channels, stride)]
            for name, module, stride, channels in self._stages(model)
        ]

    def layout(self, block: nn.Module) -> BlockLayout:
        raise TypeError("the feature_info fallback knows feature levels, not blocks.")

    def check_position(self, model: nn.Module, position: str) -> None:
        if position not in self.positions:
            kind = type(model)
            names = ", ".join(name for name, *_ in self._stages(model))
            raise ValueError(
                f"{kind.__module__}.{kind.__qualname__} has no backbone adapter{unsupported_block(model)}: only "
                f"position='stage' works, after each feature level ({names}); not {position!r}."
            )

    def attention_block(self, block: nn.Module) -> nn.Module:
        if not isinstance(block, AttentionSlots):
            staged = staged_class(type(block))
            staged.init_slots(block)  # type: ignore[attr-defined]
            block.__class__ = staged
        return block
