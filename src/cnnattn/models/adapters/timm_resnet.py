"""timm ResNets (``BasicBlock``, ``Bottleneck``): resnet18…152 and the variants built from the same blocks."""

from __future__ import annotations

from typing import ClassVar

import torch
from timm.models.resnet import BasicBlock, Bottleneck
from torch import nn

from .base import BASIC_LAYOUT, BOTTLENECK_LAYOUT, AttentionSlots, BlockLayout, ResNetLayersAdapter, register_adapter

__all__ = ["AttnBasicBlock", "AttnBottleneck", "TimmResNetAdapter"]


class _TimmSlots(AttentionSlots):
    def residual_add(self, out: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        """The residual branch after the last norm (cnnattn's ``attn``, timm's own ``se``, then drop-path) plus
        the shortcut; without ``se`` and drop-path, the attention may add the shortcut in its own pass."""
        if self.se is None and self.drop_path is None:
            return self.attend_add(out, shortcut)
        if self.attn is not None:
            out = self.attn(out)
        if self.se is not None:
            out = self.se(out)
        if self.drop_path is not None:
            out = self.drop_path(out)
        return out + shortcut


class AttnBasicBlock(_TimmSlots, BasicBlock):
    """timm ``BasicBlock`` that calls ``attn`` after ``bn2`` (before timm's own ``se``) and
    ``attn_post``/``attn_stage`` at its end."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.aa(self.act1(self.drop_block(self.bn1(self.conv1(x)))))
        out = self.bn2(self.conv2(out))
        return self.post_block(self.act2(self.residual_add(out, shortcut)))


class AttnBottleneck(_TimmSlots, Bottleneck):
    """timm ``Bottleneck`` that calls ``attn`` after ``bn3`` (before timm's own ``se``) and
    ``attn_post``/``attn_stage`` at its end."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.aa(self.act2(self.drop_block(self.bn2(self.conv2(out)))))
        out = self.bn3(self.conv3(out))
        return self.post_block(self.act3(self.residual_add(out, shortcut)))


@register_adapter("timm_resnet")
class TimmResNetAdapter(ResNetLayersAdapter):
    """``timm.models.ResNet`` built from timm's ``BasicBlock``/``Bottleneck`` (resnet18…152, ``output_stride``,
    ``drop_path_rate`` and the other block options)."""

    block_classes: ClassVar[dict[type[nn.Module], type[nn.Module]]] = {
        BasicBlock: AttnBasicBlock,
        Bottleneck: AttnBottleneck,
    }
    layouts: ClassVar[dict[type[nn.Module], BlockLayout]] = {BasicBlock: BASIC_LAYOUT, Bottleneck: BOTTLENECK_LAYOUT}
