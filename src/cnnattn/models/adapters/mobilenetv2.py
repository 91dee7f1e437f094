"""torchvision MobileNetV2 (``InvertedResidual`` blocks), and its timm metadata.

MobileNetV2 has no stage modules; its inverted-residual blocks are grouped by output stride: stage 1 =
stride 4 (24 channels at width 1.0), stage 2 = stride 8 (32), stage 3 = stride 16 (64 and 96), stage 4 =
stride 32 (160 and 320). The stride-2 block ``features.1`` belongs to the stem.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn
from torchvision.models.mobilenetv2 import InvertedResidual

from .base import AttentionSlots, BackboneAdapter, BlockLayout, block_stride, register_adapter

__all__ = ["AttnInvertedResidual", "MobileNetV2Adapter", "pretrained_cfg"]

STAGE_STRIDES = (4, 8, 16, 32)


class AttnInvertedResidual(AttentionSlots, InvertedResidual):
    """torchvision ``InvertedResidual`` that calls ``attn`` after its last norm (before the residual add) and
    ``attn_post``/``attn_stage`` at its end."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        if self.use_res_connect:
            return self.post_block(self.attend_add(out, x))
        if self.attn is not None:
            out = self.attn(out)
        return self.post_block(out)


@register_adapter("mobilenetv2")
class MobileNetV2Adapter(BackboneAdapter):
    """Any model whose ``features`` is a Sequential holding torchvision ``InvertedResidual`` blocks
    (``torchvision.models.MobileNetV2``)."""

    block_classes: ClassVar[dict[type[nn.Module], type[nn.Module]]] = {InvertedResidual: AttnInvertedResidual}

    def matches(self, model: nn.Module) -> bool:
        features = getattr(model, "features", None)
        return isinstance(features, nn.Sequential) and any(self.supports_block(m) for m in features)

    def stage_blocks(self, model: nn.Module) -> list[list[tuple[str, nn.Module, int]]]:
        by_stride: dict[int, list[tuple[str, nn.Module, int]]] = {s: [] for s in STAGE_STRIDES}
        stride = 1
        for index, layer in enumerate(model.features):
            stride *= block_stride(layer)
            if self.supports_block(layer) and stride in by_stride:
                by_stride[stride].append((f"features.{index}", layer, stride))
        return [by_stride[s] for s in STAGE_STRIDES]

    def layout(self, block: nn.Module) -> BlockLayout:
        last = len(block.conv) - 1  # conv: [expand 1×1 (if any), depthwise k×k, project 1×1, norm]
        spatial = [n for n, m in block.conv.named_modules() if isinstance(m, nn.Conv2d) and max(m.kernel_size) > 1]
        convs = tuple(f"conv.{name}" for name in spatial)
        return BlockLayout(f"conv.{last}", convs, f"conv.{last - 1}")

    def feature_info(self, model: nn.Module) -> list[dict[str, Any]]:
        """timm's ``feature_info``: the stride-2 stem block, then the last block of each stage."""
        stem = model.features[1]
        return [dict(num_chs=stem.out_channels, reduction=2, module="features.1")] + [
            dict(num_chs=stage[-1].channels, reduction=stage[-1].stride, module=stage[-1].name)
            for stage in self.stages(model)
        ]


def pretrained_cfg(num_classes: int) -> dict[str, Any]:
    """timm's ``pretrained_cfg`` for torchvision's MobileNetV2 (ImageNet preprocessing, head names)."""
    return dict(
        input_size=(3, 224, 224),
        pool_size=(7, 7),
        interpolation="bilinear",
        crop_pct=0.875,
        mean=IMAGENET_DEFAULT_MEAN,
        std=IMAGENET_DEFAULT_STD,
        num_classes=num_classes,
        first_conv="features.0.0",
        classifier="classifier.1",
    )
