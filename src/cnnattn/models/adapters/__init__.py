"""Backbone adapters: one file per backbone family, one registry (see :mod:`.base`).

Built in: torchvision ResNets (and detector bodies with ``layer1``…``layer4``), timm ResNets, torchvision
MobileNetV2, and torchvision detectors (their ``backbone.body``, through the body's adapter). A new family
is one new file: subclass :class:`BackboneAdapter`, give each of its block classes an attention-aware
subclass (mix in :class:`AttentionSlots`), and decorate the adapter with ``@register_adapter("name")``.
"""

import timm.models.resnet as _timm_resnet
import torchvision.models as _tvm

from . import (  # noqa: F401  (registration side effects)
    mobilenetv2,
    timm_resnet,
    torchvision_detection,
    torchvision_resnet,
)
from .base import (
    SLOTS,
    AttentionSlots,
    BackboneAdapter,
    BlockLayout,
    BlockSite,
    ResNetLayersAdapter,
    backbone_stages,
    find_adapter,
    list_adapters,
    register_adapter,
)

# The model classes the built-in adapters were written for (attach also takes any module an adapter matches).
SUPPORTED_MODELS = (_tvm.ResNet, _timm_resnet.ResNet, _tvm.MobileNetV2)

__all__ = [
    "SLOTS",
    "SUPPORTED_MODELS",
    "AttentionSlots",
    "BackboneAdapter",
    "BlockLayout",
    "BlockSite",
    "ResNetLayersAdapter",
    "backbone_stages",
    "find_adapter",
    "list_adapters",
    "register_adapter",
]
