"""torchvision ResNets (``BasicBlock``, ``Bottleneck``), and the bodies detectors cut from them."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from .base import BASIC_LAYOUT, BOTTLENECK_LAYOUT, AttentionSlots, BlockLayout, ResNetLayersAdapter, register_adapter

__all__ = ["AttnBasicBlock", "AttnBottleneck", "TorchvisionResNetAdapter"]


class AttnBasicBlock(AttentionSlots, BasicBlock):
    """torchvision ``BasicBlock`` that calls ``attn`` after ``bn2`` and ``attn_post``/``attn_stage`` at its end."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.post_block(self.relu(self.attend_add(out, identity)))


class AttnBottleneck(AttentionSlots, Bottleneck):
    """torchvision ``Bottleneck`` that calls ``attn`` after ``bn3`` and ``attn_post``/``attn_stage`` at its end."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.post_block(self.relu(self.attend_add(out, identity)))


@register_adapter("torchvision_resnet")
class TorchvisionResNetAdapter(ResNetLayersAdapter):
    """``torchvision.models.ResNet`` (18–152, any norm layer, e.g. ``FrozenBatchNorm2d``) and any module with
    ``layer1``…``layer4`` of its blocks, such as a detector's ``backbone.body``."""

    block_classes: ClassVar[dict[type[nn.Module], type[nn.Module]]] = {
        BasicBlock: AttnBasicBlock,
        Bottleneck: AttnBottleneck,
    }
    layouts: ClassVar[dict[type[nn.Module], BlockLayout]] = {BasicBlock: BASIC_LAYOUT, Bottleneck: BOTTLENECK_LAYOUT}
