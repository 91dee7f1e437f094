"""EfficientNet, EfficientNetV2, MobileNetV3 and MNASNet blocks: timm's ``_efficientnet_blocks``
(``DepthwiseSeparableConv``, ``InvertedResidual``, ``EdgeResidual``, ``ConvBnAct``) and torchvision's ``MBConv``,
``FusedMBConv`` and MobileNetV3 ``InvertedResidual``.

Two gate spots per block: ``block``, after the projection norm at the block's output width (before drop-path and
the add; blocks without a skip gate their output), and ``expansion``, after the depthwise (or fused k×k) conv at
mid width, where the built-in SE sits: after that SE, or in its place with ``replace_builtin=True``.

Stages are the model's last four ``feature_info`` levels where it has them (timm's models and ``features_only``
wrappers: a level ends at its module, so ``output_stride=16`` still gives four stages). Elsewhere (torchvision's
models, detector bodies) they follow the blocks' reductions: after the stride-2 stem, each block that strides
(or dilates further) starts the next level; level 2 (stride 4) is stage 1 … level 5 is stage 4, and the blocks
at stride 2 belong to the stem.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from timm.models._efficientnet_blocks import ConvBnAct, DepthwiseSeparableConv, EdgeResidual
from timm.models._efficientnet_blocks import InvertedResidual as TimmInvertedResidual
from torch import nn
from torchvision.models.efficientnet import FusedMBConv, MBConv
from torchvision.models.mobilenetv3 import InvertedResidual as TvInvertedResidual
from torchvision.ops.misc import SqueezeExcitation

from .base import (
    AttentionSlots,
    BackboneAdapter,
    BlockLayout,
    children_named,
    group_by_levels,
    register_adapter,
    spatial_convs,
)

__all__ = [
    "AttnConvBnAct",
    "AttnDepthwiseSeparableConv",
    "AttnEdgeResidual",
    "AttnFusedMBConv",
    "AttnMBConv",
    "AttnMobileNetV3InvertedResidual",
    "AttnTimmInvertedResidual",
    "EfficientNetAdapter",
]


class _TimmSlots(AttentionSlots):
    def expand(self, x: torch.Tensor) -> torch.Tensor:
        """timm's ``se`` (an identity where the block has none), then ``attn_exp``."""
        x = self.se(x)
        if self.attn_exp is not None:
            x = self.attn_exp(x)
        return x

    def finish(self, x: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        """``attn``, then drop-path and the skip (where the block has one), then the post-block slots."""
        if self.attn is not None:
            x = self.attn(x)
        if self.has_skip:
            x = self.drop_path(x) + shortcut
        return self.post_block(x)


class AttnDepthwiseSeparableConv(_TimmSlots, DepthwiseSeparableConv):
    """timm ``DepthwiseSeparableConv`` with ``attn_exp`` after its SE and ``attn`` after ``bn2``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if self.conv_s2d is not None:
            x = self.bn_s2d(self.conv_s2d(x))
        x = self.expand(self.aa(self.bn1(self.conv_dw(x))))
        return self.finish(self.bn2(self.conv_pw(x)), shortcut)


class AttnTimmInvertedResidual(_TimmSlots, TimmInvertedResidual):
    """timm ``InvertedResidual`` (MBConv) with ``attn_exp`` after its SE and ``attn`` after ``bn3``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if self.conv_s2d is not None:
            x = self.bn_s2d(self.conv_s2d(x))
        x = self.bn1(self.conv_pw(x))
        x = self.expand(self.aa(self.bn2(self.conv_dw(x))))
        return self.finish(self.bn3(self.conv_pwl(x)), shortcut)


class AttnEdgeResidual(_TimmSlots, EdgeResidual):
    """timm ``EdgeResidual`` (FusedMBConv) with ``attn_exp`` after its SE and ``attn`` after ``bn2``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.expand(self.aa(self.bn1(self.conv_exp(x))))
        return self.finish(self.bn2(self.conv_pwl(x)), shortcut)


class AttnConvBnAct(_TimmSlots, ConvBnAct):
    """timm ``ConvBnAct`` with ``attn`` after ``bn1`` (it has no expansion point)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.finish(self.aa(self.bn1(self.conv(x))), x)


class _SequentialSlots(AttentionSlots):
    """torchvision blocks whose main path is the Sequential ``block``; ``expansion_index`` is the layer after which
    ``attn_exp`` runs (-1: none)."""

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        for index, layer in enumerate(self.block):
            x = layer(x)
            if self.attn_exp is not None and index == self.expansion_index:
                x = self.attn_exp(x)
        if self.attn is not None:
            x = self.attn(x)
        return x


class _StochasticResidualSlots(_SequentialSlots):
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        result = self.branch(input)
        if self.use_res_connect:
            result = self.stochastic_depth(result) + input
        return self.post_block(result)


class AttnMBConv(_StochasticResidualSlots, MBConv):
    """torchvision ``MBConv`` with ``attn_exp`` after its SE and ``attn`` after the projection norm."""


class AttnFusedMBConv(_StochasticResidualSlots, FusedMBConv):
    """torchvision ``FusedMBConv`` with ``attn_exp`` after its fused k×k expansion and ``attn`` at the end."""


class AttnMobileNetV3InvertedResidual(_SequentialSlots, TvInvertedResidual):
    """torchvision MobileNetV3 ``InvertedResidual`` with ``attn_exp`` after its depthwise conv (and SE) and
    ``attn`` after the projection norm."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        result = self.branch(input)
        if self.use_res_connect:
            result = result + input
        return self.post_block(result)


_TIMM_LAYOUTS: dict[type[nn.Module], BlockLayout] = {
    DepthwiseSeparableConv: BlockLayout("bn2", ("conv_dw",), "bn2", "bn1", "se"),
    TimmInvertedResidual: BlockLayout("bn3", ("conv_dw",), "bn3", "bn2", "se"),
    EdgeResidual: BlockLayout("bn2", ("conv_exp",), "bn2", "bn1", "se"),
}


def _sequential_layout(block: nn.Module) -> BlockLayout:
    """Layout of a torchvision block: the last layer of ``block`` projects (conv, norm); the expansion point is the
    SE, or else the layer holding the depthwise/fused k×k conv, unless that conv is also the projection."""
    layers = list(block.block)
    last = len(layers) - 1
    se = next((i for i, layer in enumerate(layers) if isinstance(layer, SqueezeExcitation)), None)
    spatial = next(i for i, layer in enumerate(layers) if spatial_convs(layer))
    expansion = se if se is not None else (spatial if spatial < last else None)
    convs = tuple(f"block.{i}.{path}" for i, layer in enumerate(layers) for path in spatial_convs(layer))
    return BlockLayout(
        f"block.{last}.1",
        convs,
        f"block.{last}.0",
        None if expansion is None else f"block.{spatial}.0",
        None if se is None else f"block.{se}",
    )


def _level_change(block: nn.Module, dilation: int) -> tuple[bool, int]:
    """Whether ``block`` starts a new reduction level (it strides, or dilates further), and its dilation."""
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    stride = max(m.stride[0] for m in convs)
    new_dilation = max(m.dilation[0] for m in convs)
    return stride > 1 or new_dilation > dilation, max(dilation, new_dilation)


@register_adapter("efficientnet")
class EfficientNetAdapter(BackboneAdapter):
    """timm ``EfficientNet``/``MobileNetV3`` (efficientnet_*, efficientnetv2_*, tf_*, mobilenetv3_*, mnasnet_*,
    timm's mobilenetv2_*) and torchvision ``EfficientNet`` (B0–B7, V2) and ``MobileNetV3``, their
    ``features_only`` wrappers and detector bodies."""

    block_classes: ClassVar[dict[type[nn.Module], type[nn.Module]]] = {
        DepthwiseSeparableConv: AttnDepthwiseSeparableConv,
        TimmInvertedResidual: AttnTimmInvertedResidual,
        EdgeResidual: AttnEdgeResidual,
        ConvBnAct: AttnConvBnAct,
        MBConv: AttnMBConv,
        FusedMBConv: AttnFusedMBConv,
        TvInvertedResidual: AttnMobileNetV3InvertedResidual,
    }
    positions: ClassVar[tuple[str, ...]] = ("block", "after_block", "stage", "expansion", "conv")

    def _blocks(self, model: nn.Module) -> list[tuple[str, nn.Module]]:
        return children_named(model, "", tuple(self.block_classes))

    def matches(self, model: nn.Module) -> bool:
        blocks = self._blocks(model)
        return bool(blocks) and all(self.supports_block(b) for _, b in blocks)

    def stage_blocks(self, model: nn.Module) -> list[list[tuple[str, nn.Module, int]]]:
        blocks = self._blocks(model)
        levels = group_by_levels(model, blocks)
        if levels is not None:
            stages = [[(name, block, 4 << k) for name, block in level] for k, level in enumerate(levels)]
        else:
            stages = self._stages_by_reduction(blocks)
        if not all(stages):
            raise ValueError(
                f"{self.name}: expected blocks at strides 4, 8, 16 and 32; got {[len(s) for s in stages]}."
            )
        return stages

    @staticmethod
    def _stages_by_reduction(blocks: list[tuple[str, nn.Module]]) -> list[list[tuple[str, nn.Module, int]]]:
        stages: list[list[tuple[str, nn.Module, int]]] = [[] for _ in range(4)]
        level, dilation = 1, 1  # the stem reduces by 2
        for name, block in blocks:
            changed, dilation = _level_change(block, dilation)
            level += changed
            if 2 <= level <= 5:
                stages[level - 2].append((name, block, 2**level))
        return stages

    def layout(self, block: nn.Module) -> BlockLayout:
        plain = self.plain_class(block)
        if plain is ConvBnAct:
            return BlockLayout("bn1", spatial_convs(block), "bn1")
        return _TIMM_LAYOUTS[plain] if plain in _TIMM_LAYOUTS else _sequential_layout(block)

    def prepare(self, block: nn.Module) -> None:
        if isinstance(block, _SequentialSlots):
            layout = _sequential_layout(block)
            point = layout.builtin or layout.expansion
            block.expansion_index = -1 if point is None else int(point.split(".")[1])
