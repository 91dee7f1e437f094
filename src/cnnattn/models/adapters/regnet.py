"""RegNet X and Y: timm's ``regnet.Bottleneck`` and torchvision's ``ResBottleneckBlock``.

The ``block`` slot takes the branch after its last norm (timm ``conv3.bn``, torchvision ``f.c``), before
drop-path and the add; ``expansion`` is after the grouped 3×3 at bottleneck width, where RegNetY's built-in SE
sits (after it, or in its place with ``replace_builtin=True``). The only k×k conv is that grouped 3×3. Stages
are the blocks' parent modules (timm ``s1``…``s4``, torchvision ``trunk_output.block1``…``block4``).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from timm.models.regnet import Bottleneck
from torch import nn
from torchvision.models.regnet import ResBottleneckBlock

from .base import (
    AttentionSlots,
    BlockLayout,
    GroupedBlocksAdapter,
    register_adapter,
)

__all__ = ["AttnRegNetBottleneck", "AttnResBottleneckBlock", "RegNetAdapter"]


class AttnRegNetBottleneck(AttentionSlots, Bottleneck):
    """timm RegNet ``Bottleneck`` with ``attn_exp`` after its SE and ``attn`` after ``conv3``'s norm."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.se(self.conv2(self.conv1(x)))
        if self.attn_exp is not None:
            x = self.attn_exp(x)
        x = self.conv3(x)
        if self.attn is not None:
            x = self.attn(x)
        if self.downsample is not None:
            x = self.drop_path(x) + self.downsample(shortcut)
        return self.post_block(self.act3(x))


class AttnResBottleneckBlock(AttentionSlots, ResBottleneckBlock):
    """torchvision ``ResBottleneckBlock`` with ``attn_exp`` after ``f.b`` (and ``f.se``) and ``attn`` after
    ``f.c``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for index, layer in enumerate(self.f):
            out = layer(out)
            if self.attn_exp is not None and index == self.expansion_index:
                out = self.attn_exp(out)
        if self.attn is not None:
            out = self.attn(out)
        out = out + (x if self.proj is None else self.proj(x))
        return self.post_block(self.activation(out))


def _tv_layout(block: nn.Module) -> BlockLayout:
    builtin = "f.se" if hasattr(block.f, "se") else None
    return BlockLayout("f.c.1", ("f.b.0",), "f.c.0", "f.b.0", builtin)


@register_adapter("regnet")
class RegNetAdapter(GroupedBlocksAdapter):
    """timm ``RegNet`` (regnetx_*, regnety_*) and torchvision ``RegNet`` (regnet_x_*, regnet_y_*), their
    ``features_only`` wrappers and detector bodies."""

    block_classes: ClassVar[dict[type[nn.Module], type[nn.Module]]] = {
        Bottleneck: AttnRegNetBottleneck,
        ResBottleneckBlock: AttnResBottleneckBlock,
    }
    positions: ClassVar[tuple[str, ...]] = ("block", "after_block", "stage", "expansion", "conv")

    def layout(self, block: nn.Module) -> BlockLayout:
        if self.plain_class(block) is ResBottleneckBlock:
            return _tv_layout(block)
        return BlockLayout("conv3.bn", ("conv2.conv",), "conv3.conv", "conv2.conv", "se")

    def prepare(self, block: nn.Module) -> None:
        if isinstance(block, AttnResBottleneckBlock):
            names = [name for name, _ in block.f.named_children()]
            block.expansion_index = names.index("se" if "se" in names else "b")
