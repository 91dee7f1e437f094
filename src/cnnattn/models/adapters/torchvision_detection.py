"""torchvision detection models (Faster R-CNN, RetinaNet, FCOS, Mask R-CNN, ...): attention goes into the blocks
of ``model.backbone.body``, found by the adapter of the body's own family (a ResNet body cut by
``IntermediateLayerGetter``, or the ``features_only`` wrapper of any family that ``cnnattn.create_detector``
puts under torchvision's FPN). Names are qualified from the detector, e.g. ``backbone.body.layer2.0.attn``."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from torch import nn

from .base import BackboneAdapter, BlockLayout, BlockSite, list_adapters, qualify, register_adapter

__all__ = ["DetectorAdapter"]

BODY = "backbone.body"


def _prefixed(site: BlockSite) -> BlockSite:
    builtin = None if site.builtin is None else qualify(BODY, site.builtin)
    convs = tuple(qualify(BODY, c) for c in site.conv_names)
    return dataclasses.replace(site, name=qualify(BODY, site.name), conv_names=convs, builtin=builtin)


@register_adapter("torchvision_detection")
class DetectorAdapter(BackboneAdapter):
    """Any model with ``backbone.body`` that another adapter accepts (torchvision's detectors and
    ``cnnattn.create_detector``'s)."""

    block_classes: ClassVar[dict[type[nn.Module], type[nn.Module]]] = {}

    def _body(self, model: nn.Module) -> tuple[BackboneAdapter, nn.Module] | None:
        body = getattr(getattr(model, "backbone", None), "body", None)
        if not isinstance(body, nn.Module):
            return None
        adapter = next((a for a in list_adapters() if a is not self and a.matches(body)), None)
        return None if adapter is None else (adapter, body)

    def _body_adapter(self, model: nn.Module) -> tuple[BackboneAdapter, nn.Module]:
        found = self._body(model)
        if found is None:
            raise ValueError(f"{self.name}: no adapter takes the detector's backbone.body.")
        return found

    def matches(self, model: nn.Module) -> bool:
        return self._body(model) is not None

    def stage_blocks(self, model: nn.Module) -> list[list[tuple[str, nn.Module, int]]]:
        adapter, body = self._body_adapter(model)
        return [[(qualify(BODY, name), *rest) for name, *rest in stage] for stage in adapter.stage_blocks(body)]

    def stages(self, model: nn.Module) -> list[list[BlockSite]]:
        adapter, body = self._body_adapter(model)
        return [[_prefixed(site) for site in stage] for stage in adapter.stages(body)]

    def layout(self, block: nn.Module) -> BlockLayout:
        return self._block_adapter(block).layout(block)

    def check_position(self, model: nn.Module, position: str) -> None:
        adapter, body = self._body_adapter(model)
        adapter.check_position(body, position)

    def _block_adapter(self, block: nn.Module) -> BackboneAdapter:
        adapter = next((a for a in list_adapters() if a is not self and a.supports_block(block)), None)
        if adapter is None:
            raise ValueError(f"{self.name}: unsupported block class {type(block).__qualname__}.")
        return adapter

    def supports_block(self, block: nn.Module) -> bool:
        return any(a is not self and a.supports_block(block) for a in list_adapters())

    def attention_block(self, block: nn.Module) -> nn.Module:
        return self._block_adapter(block).attention_block(block)
