"""Where attention can go in a supported backbone: its four stages and the blocks in each.

Supported: torchvision ``ResNet`` (BasicBlock, Bottleneck), timm ``ResNet`` family, and torchvision
``MobileNetV2``. MobileNetV2 has no stage modules; its inverted-residual blocks are grouped by output
stride: stage 1 = stride 4 (24 channels at width 1.0), stage 2 = stride 8 (32), stage 3 = stride 16
(64 and 96), stage 4 = stride 32 (160 and 320). The stride-2 block ``features.1`` belongs to the stem.
"""

from __future__ import annotations

from dataclasses import dataclass

import timm.models.resnet as timm_resnet
import torchvision.models as tvm
from torch import nn
from torchvision.models.mobilenetv2 import InvertedResidual

__all__ = ["SUPPORTED_MODELS", "BlockSite", "backbone_stages"]

SUPPORTED_MODELS: tuple[type[nn.Module], ...] = (tvm.ResNet, timm_resnet.ResNet, tvm.MobileNetV2)
_NORMS = (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)


@dataclass(frozen=True)
class BlockSite:
    """One residual block and the places inside it where attention attaches.

    Attributes:
        name: Qualified module name of the block, e.g. ``'layer2.0'`` or ``'features.4'``.
        block: The block module.
        norm_name: Path (inside the block) of its last norm, the 'block' position.
        conv_names: Paths (inside the block) of its k×k (k > 1) convolutions, the 'conv' position.
        channels: Channels of the block's output.
        reduction: Output stride of the block relative to the input image.
    """

    name: str
    block: nn.Module
    norm_name: str
    conv_names: tuple[str, ...]
    channels: int
    reduction: int


def _on_main_path(name: str) -> bool:
    """True for a block's own layers: direct children (ResNet) or layers of its ``conv`` Sequential
    (MobileNetV2). Excludes the shortcut (``downsample``) and any attention attached by cnnattn."""
    parts = name.split(".")
    return len(parts) == 1 or parts[0] == "conv"


def _last_norm(block: nn.Module) -> tuple[str, nn.Module]:
    norms = [(n, m) for n, m in block.named_modules() if isinstance(m, _NORMS) and _on_main_path(n)]
    if not norms:
        raise ValueError(f"block {type(block).__name__} has no normalisation layer to attach after.")
    return norms[-1]


def _spatial_convs(block: nn.Module) -> tuple[str, ...]:
    """Names of the block's own k×k (k > 1) convolutions."""
    return tuple(
        n for n, m in block.named_modules() if isinstance(m, nn.Conv2d) and max(m.kernel_size) > 1 and _on_main_path(n)
    )


def _stride(module: nn.Module) -> int:
    return max((m.stride[0] for m in module.modules() if isinstance(m, nn.Conv2d)), default=1)


def _site(name: str, block: nn.Module, reduction: int) -> BlockSite:
    norm_name, norm = _last_norm(block)
    return BlockSite(name, block, norm_name, _spatial_convs(block), norm.num_features, reduction)


def _resnet_stages(model: nn.Module) -> list[list[BlockSite]]:
    stages, reduction = [], 4
    for index in range(1, 5):
        layer = getattr(model, f"layer{index}")
        reduction *= 1 if index == 1 else 2
        stages.append([_site(f"layer{index}.{i}", block, reduction) for i, block in enumerate(layer)])
    return stages


def _mobilenet_v2_stages(model: tvm.MobileNetV2) -> list[list[BlockSite]]:
    by_reduction: dict[int, list[BlockSite]] = {4: [], 8: [], 16: [], 32: []}
    reduction = 1
    for index, layer in enumerate(model.features):
        reduction *= _stride(layer)
        if isinstance(layer, InvertedResidual) and reduction in by_reduction:
            by_reduction[reduction].append(_site(f"features.{index}", layer, reduction))
    return [by_reduction[r] for r in (4, 8, 16, 32)]


def backbone_stages(model: nn.Module) -> list[list[BlockSite]]:
    """The blocks of each of the model's four stages; ValueError for an unsupported model class."""
    if isinstance(model, tvm.ResNet | timm_resnet.ResNet):
        return _resnet_stages(model)
    if isinstance(model, tvm.MobileNetV2):
        return _mobilenet_v2_stages(model)
    names = ", ".join(f"{c.__module__}.{c.__name__}" for c in SUPPORTED_MODELS)
    raise ValueError(
        f"cannot place attention in {type(model).__module__}.{type(model).__name__}; supported model classes: {names}."
    )
