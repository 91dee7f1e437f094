"""Networks without a residual add: VGG (timm and torchvision) and DenseNet (timm and torchvision).

**VGG**: ``features`` is a Sequential of conv units (conv, [BatchNorm], ReLU) split by max pools. A unit ends at
its ReLU, which becomes attention-aware (``attn_post``: position ``after_block``; ``attn_stage`` on the last
unit before a pool: position ``stage``); ``conv`` replaces every 3×3. Stage k is conv group k+1, whose output
after the pool has stride 4·2^(k-1); group 1 counts as the stem (an assumption: no paper fixes it).

**DenseNet**: a stage is a dense block (``denseblock1``…``4``): ``stage`` gates its concatenated output before
the transition, as SE-DenseNet does; ``conv`` replaces the 3×3 conv of every dense layer. A per-layer gate
would see only the layer's ``growth_rate`` new channels, so DenseNet has no ``block`` position.
"""

from __future__ import annotations

from typing import ClassVar

import timm.models.densenet as timm_densenet
import timm.models.vgg as timm_vgg
import torch
import torch.nn.functional as F
import torchvision.models.densenet as tv_densenet
import torchvision.models.vgg as tv_vgg
from torch import nn

from .base import (
    GATE_SLOTS,
    AttentionSlots,
    BackboneAdapter,
    BlockLayout,
    BlockSite,
    children_named,
    module_width,
    qualify,
    register_adapter,
)

__all__ = ["AttnDenseBlock", "AttnTvDenseBlock", "AttnUnitReLU", "DenseNetAdapter", "VGGAdapter"]


class AttnUnitReLU(AttentionSlots, nn.ReLU):
    """The ReLU ending a VGG conv unit, followed by ``attn_post`` and ``attn_stage``."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.post_block(F.relu(input, inplace=self.inplace))


@register_adapter("vgg")
class VGGAdapter(BackboneAdapter):
    """timm ``VGG`` and torchvision ``VGG`` (vgg11…19, with or without BatchNorm)."""

    block_classes: ClassVar[dict[type[nn.Module], type[nn.Module]]] = {nn.ReLU: AttnUnitReLU}
    positions: ClassVar[tuple[str, ...]] = ("after_block", "stage", "conv")

    def matches(self, model: nn.Module) -> bool:
        return isinstance(model, (tv_vgg.VGG, timm_vgg.VGG))

    def stage_blocks(self, model: nn.Module) -> list[list[tuple[str, nn.Module, int]]]:
        groups: list[list[tuple[str, nn.Module, int]]] = [[]]
        for index, layer in enumerate(model.features):
            if isinstance(layer, nn.MaxPool2d):
                groups.append([])
            elif self.supports_block(layer):
                groups[-1].append((f"features.{index}", layer, 2 ** len(groups)))
        groups = [g for g in groups if g]
        if len(groups) != 5:
            raise ValueError(f"{self.name}: expected 5 conv groups split by max pools; found {len(groups)}.")
        return groups[1:]

    def stages(self, model: nn.Module) -> list[list[BlockSite]]:
        """Each unit's ReLU, with the conv before it in ``features`` (its width and its ``conv`` site)."""
        features = model.features
        stages = []
        for stage in self.stage_blocks(model):
            sites = []
            for name, relu, stride in stage:
                index = int(name.rpartition(".")[2])
                conv = max(i for i in range(index) if isinstance(features[i], nn.Conv2d))
                channels = features[conv].out_channels
                sites.append(BlockSite(name, relu, "", (f"features.{conv}",), channels, stride))
            stages.append(sites)
        return stages

    def layout(self, block: nn.Module) -> BlockLayout:
        raise TypeError("a VGG unit's layout depends on its place in features: use VGGAdapter.stages().")


class _DenseSlots(AttentionSlots):
    def forward(self, init_features: torch.Tensor) -> torch.Tensor:
        """The concatenation of the input and every dense layer's output, then ``attn_stage`` (a child of the
        dict too, which the loop skips: TorchScript resolves ``hasattr`` on each child when it compiles)."""
        features = [init_features]
        for layer in self.values():
            if hasattr(layer, "norm1") and hasattr(layer, "conv2"):
                features.append(layer(features))
        return self.post_block(torch.cat(features, 1))


class AttnDenseBlock(_DenseSlots, timm_densenet.DenseBlock):
    """timm ``DenseBlock`` followed by ``attn_stage``."""


class AttnTvDenseBlock(_DenseSlots, tv_densenet._DenseBlock):
    """torchvision ``_DenseBlock`` followed by ``attn_stage``."""


@register_adapter("densenet")
class DenseNetAdapter(BackboneAdapter):
    """timm ``DenseNet`` and torchvision ``DenseNet`` (densenet121…201), their ``features_only`` wrappers and
    detector bodies: any module holding four dense blocks."""

    block_classes: ClassVar[dict[type[nn.Module], type[nn.Module]]] = {
        timm_densenet.DenseBlock: AttnDenseBlock,
        tv_densenet._DenseBlock: AttnTvDenseBlock,
    }
    positions: ClassVar[tuple[str, ...]] = ("stage", "conv")

    def _blocks(self, model: nn.Module) -> list[tuple[str, nn.Module]]:
        return children_named(model, "", tuple(self.block_classes))

    def matches(self, model: nn.Module) -> bool:
        return len(self._blocks(model)) == 4

    def stage_blocks(self, model: nn.Module) -> list[list[tuple[str, nn.Module, int]]]:
        return [[(name, block, 4 << i)] for i, (name, block) in enumerate(self._blocks(model))]

    def site(self, name: str, block: nn.Module, stride: int) -> BlockSite:
        layers = [layer for key, layer in block.items() if key not in GATE_SLOTS]
        channels = module_width(layers[0].norm1) + sum(layer.conv2.out_channels for layer in layers)
        convs = tuple(qualify(name, f"{key}.conv2") for key, _ in block.items() if key not in GATE_SLOTS)
        return BlockSite(name, block, "", convs, channels, stride)

    def layout(self, block: nn.Module) -> BlockLayout:
        raise TypeError("a dense block's width depends on all its layers: use DenseNetAdapter.site().")
