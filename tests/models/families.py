"""Small instances of every backbone family the adapters know (timm's and torchvision's), for the family contract
suite: the real block classes at a few thousand to a few million parameters, 64×64 inputs (stage 4 at 2×2)."""

from __future__ import annotations

from collections.abc import Callable

import timm
import timm.models.convnext as timm_convnext
import timm.models.densenet as timm_densenet
import timm.models.efficientnet as timm_efficientnet
import timm.models.mobilenetv3 as timm_mobilenetv3
import timm.models.regnet as timm_regnet
import timm.models.resnet as timm_resnet
import timm.models.vgg as timm_vgg
import torchvision.models as tvm
from torch import nn
from torchvision.models.convnext import CNBlockConfig
from torchvision.models.efficientnet import FusedMBConvConfig, MBConvConfig, _efficientnet_conf
from torchvision.models.regnet import BlockParams
from torchvision.models.resnet import Bottleneck
from torchvision.models.vgg import make_layers

NUM_CLASSES = 5
IMG_SIZE = 64
VGG_CFG = [8, "M", 16, "M", 16, "M", 24, "M", 32, "M"]


def _tv_vgg() -> nn.Module:
    model = tvm.VGG(make_layers(VGG_CFG, batch_norm=True), num_classes=NUM_CLASSES, init_weights=False)
    model.classifier = nn.Linear(32 * 7 * 7, NUM_CLASSES)  # torchvision's 4096-wide head is beside the point here
    return model


def _tv_efficientnet_v2() -> nn.Module:
    settings = [
        FusedMBConvConfig(1, 3, 1, 8, 8, 1),
        FusedMBConvConfig(4, 3, 2, 8, 16, 1),
        FusedMBConvConfig(4, 3, 2, 16, 24, 1),
        MBConvConfig(4, 3, 2, 24, 32, 1),
        MBConvConfig(6, 3, 2, 32, 40, 2),
    ]
    return tvm.EfficientNet(settings, 0.0, last_channel=64, num_classes=NUM_CLASSES)


FAMILIES: dict[str, Callable[[], nn.Module]] = {
    "timm_resnext": lambda: timm_resnet.ResNet(
        timm_resnet.Bottleneck, [1, 1, 1, 1], cardinality=4, base_width=4, num_classes=NUM_CLASSES
    ),
    "tv_resnext": lambda: tvm.ResNet(Bottleneck, [1, 1, 1, 1], groups=4, width_per_group=4, num_classes=NUM_CLASSES),
    "timm_convnext": lambda: timm_convnext.ConvNeXt(depths=(1, 1, 2, 1), dims=(8, 16, 24, 32), num_classes=NUM_CLASSES),
    "tv_convnext": lambda: tvm.ConvNeXt(
        [CNBlockConfig(8, 16, 1), CNBlockConfig(16, 24, 1), CNBlockConfig(24, 32, 2), CNBlockConfig(32, None, 1)],
        num_classes=NUM_CLASSES,
    ),
    "timm_efficientnet": lambda: timm_efficientnet._gen_efficientnet(
        "efficientnet_b0", channel_multiplier=0.25, depth_multiplier=0.25, num_classes=NUM_CLASSES
    ),
    "timm_efficientnetv2": lambda: timm_efficientnet._gen_efficientnetv2_s(
        "efficientnetv2_s", channel_multiplier=0.25, depth_multiplier=0.25, num_classes=NUM_CLASSES
    ),
    "timm_mobilenetv3": lambda: timm_mobilenetv3._gen_mobilenet_v3(
        "mobilenetv3_small_050", 0.25, num_classes=NUM_CLASSES
    ),
    "tv_efficientnet": lambda: tvm.EfficientNet(
        _efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.25)[0], 0.0, num_classes=NUM_CLASSES
    ),
    "tv_efficientnetv2": _tv_efficientnet_v2,
    "tv_mobilenetv3": lambda: tvm.mobilenet_v3_small(width_mult=0.25, num_classes=NUM_CLASSES),
    "timm_regnet": lambda: timm_regnet.RegNet(
        timm_regnet.RegNetCfg(depth=6, w0=8, wa=8.0, wm=1.5, group_size=4, se_ratio=0.25), num_classes=NUM_CLASSES
    ),
    "tv_regnet": lambda: tvm.RegNet(
        BlockParams.from_init_params(depth=6, w_0=8, w_a=8.0, w_m=1.5, group_width=4, se_ratio=0.25),
        num_classes=NUM_CLASSES,
    ),
    "timm_vgg": lambda: timm_vgg.VGG(VGG_CFG, num_classes=NUM_CLASSES, mlp_ratio=0.25),
    "tv_vgg": _tv_vgg,
    "timm_densenet": lambda: timm_densenet.DenseNet(growth_rate=16, block_config=(1, 1, 2, 1), num_classes=NUM_CLASSES),
    "tv_densenet": lambda: tvm.DenseNet(
        growth_rate=16, block_config=(1, 1, 2, 1), num_init_features=8, bn_size=2, num_classes=NUM_CLASSES
    ),
    "timm_dla": lambda: timm.create_model("dla46_c", num_classes=NUM_CLASSES),
}
# The adapter each family must land on.
ADAPTERS = {
    "timm_resnext": "timm_resnet",
    "tv_resnext": "torchvision_resnet",
    **{f: "convnext" for f in ("timm_convnext", "tv_convnext")},
    **{
        f: "efficientnet"
        for f in (
            "timm_efficientnet",
            "timm_efficientnetv2",
            "timm_mobilenetv3",
            "tv_efficientnet",
            "tv_efficientnetv2",
            "tv_mobilenetv3",
        )
    },
    **{f: "regnet" for f in ("timm_regnet", "tv_regnet")},
    **{f: "vgg" for f in ("timm_vgg", "tv_vgg")},
    **{f: "densenet" for f in ("timm_densenet", "tv_densenet")},
    "timm_dla": "feature_info",
}
