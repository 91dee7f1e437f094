"""Backbone adapters: one file per backbone family, one registry (see :mod:`.base`).

Built in: torchvision and timm ResNets (ResNeXt, Wide, ResNet-D: the same block classes),
torchvision MobileNetV2, ConvNeXt, EfficientNet/EfficientNetV2/MobileNetV3/MNASNet, RegNet, VGG and DenseNet
(timm's and torchvision's each), torchvision detectors (their ``backbone.body``, through the body's adapter), and
last the ``feature_info`` fallback (position ``stage`` in any timm CNN). A new family is one new file: subclass
:class:`BackboneAdapter`, give each of its block classes an attention-aware subclass (mix in
:class:`AttentionSlots`), decorate the adapter with ``@register_adapter("name")`` and import it here.
"""

import timm.models.resnet as _timm_resnet
import torchvision.models as _tvm

from . import (  # noqa: F401  (registration side effects)
    convnext,
    dense_plain,
    efficientnet,
    generic,
    mobilenetv2,
    regnet,
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
