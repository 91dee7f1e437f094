"""ConvNeXt (V1 and V2): timm's ``ConvNeXtBlock`` and torchvision's ``CNBlock``.

The block has no norm at the end of its residual branch: the ``block`` slot takes the branch after the
layer-scale multiply (``gamma`` / ``layer_scale``), before drop-path and the add, the spot ConvNeXt's
maintainers name for an SE-style gate. The width comes from the last ``nn.Linear`` (or 1×1 conv with
``conv_mlp``); the only k×k conv is the 7×7 depthwise ``conv_dw`` (with a bias, which a conv kind keeps).
Stages are the blocks' parent modules in order (timm ``stages.i.blocks``, torchvision ``features.1/3/5/7``),
found by type, so the classifier, its ``features_only`` wrapper and a detector body all work.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from timm.models.convnext import ConvNeXtBlock
from torch import nn
from torchvision.models.convnext import CNBlock

from .base import (
    AttentionSlots,
    BlockLayout,
    GroupedBlocksAdapter,
    register_adapter,
)

__all__ = ["AttnCNBlock", "AttnConvNeXtBlock", "ConvNeXtAdapter"]


class AttnConvNeXtBlock(AttentionSlots, ConvNeXtBlock):
    """timm ``ConvNeXtBlock`` that calls ``attn`` after the layer scale (before drop-path and the add) and
    ``attn_post``/``attn_stage`` at its end."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.conv_dw(x)
        if self.use_conv_mlp:
            x = self.mlp(self.norm(x))
        else:
            x = self.mlp(self.norm(x.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        if self.gamma is not None:
            x = x.mul(self.gamma.reshape(1, -1, 1, 1))
        if self.attn is not None:
            x = self.attn(x)
        return self.post_block(self.drop_path(x) + self.shortcut(shortcut))


class AttnCNBlock(AttentionSlots, CNBlock):
    """torchvision ``CNBlock`` that calls ``attn`` after the layer scale (before stochastic depth and the add)
    and ``attn_post``/``attn_stage`` at its end."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        result = self.layer_scale * self.block(input)
        if self.attn is not None:
            result = self.attn(result)
        return self.post_block(self.stochastic_depth(result) + input)


_LAYOUTS: dict[type[nn.Module], BlockLayout] = {
    ConvNeXtBlock: BlockLayout("gamma", ("conv_dw",), "mlp.fc2"),
    CNBlock: BlockLayout("layer_scale", ("block.0",), "block.5"),
}


@register_adapter("convnext")
class ConvNeXtAdapter(GroupedBlocksAdapter):
    """timm ``ConvNeXt`` (convnext_atto … xxlarge, ConvNeXt-V2) and torchvision ``ConvNeXt`` (tiny … large), their
    ``features_only`` wrappers and detector bodies: any module holding four groups of their blocks."""

    block_classes: ClassVar[dict[type[nn.Module], type[nn.Module]]] = {
        ConvNeXtBlock: AttnConvNeXtBlock,
        CNBlock: AttnCNBlock,
    }

    def layout(self, block: nn.Module) -> BlockLayout:
        return _LAYOUTS[self.plain_class(block)]
