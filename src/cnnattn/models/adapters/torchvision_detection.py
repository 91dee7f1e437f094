"""torchvision detection models (Faster R-CNN, RetinaNet, FCOS, Mask R-CNN, ...): attention goes into the blocks
of ``model.backbone.body``, found by the adapter of the body's own family (e.g. a ResNet body cut by
``IntermediateLayerGetter``). Names are qualified from the detector, e.g. ``backbone.body.layer2.0.attn``."""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from .base import BackboneAdapter, BlockLayout, list_adapters, register_adapter

__all__ = ["DetectorAdapter"]

BODY = "backbone.body"


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

    def _block_adapter(self, block: nn.Module) -> BackboneAdapter:
        adapter = next((a for a in list_adapters() if a is not self and a.supports_block(block)), None)
        if adapter is None:
            raise ValueError(f"{self.name}: unsupported block class {type(block).__qualname__}.")
        return adapter

    def matches(self, model: nn.Module) -> bool:
        return self._body(model) is not None

    def stage_blocks(self, model: nn.Module) -> list[list[tuple[str, nn.Module, int]]]:
        adapter, body = self._body(model)  # type: ignore[misc]
        return [[(f"{BODY}.{name}", *rest) for name, *rest in stage] for stage in adapter.stage_blocks(body)]

    def layout(self, block: nn.Module) -> BlockLayout:
        return self._block_adapter(block).layout(block)

    def supports_block(self, block: nn.Module) -> bool:
        return any(a is not self and a.supports_block(block) for a in list_adapters())

    def attention_block(self, block: nn.Module) -> nn.Module:
        return self._block_adapter(block).attention_block(block)
