"""Detectors with attention backbones: torchvision's Faster R-CNN, RetinaNet and FCOS on any cnnattn model name.

The backbone is the classification model ``create_model`` builds (attention at its default placement or the
one given), cut by torchvision's ``BackboneWithFPN``: P2–P6 for Faster R-CNN and P3–P7 for RetinaNet and FCOS
on ResNets, as torchvision builds them; MobileNetV2 gets torchvision's mobile FPN (its last two stages and a
max-pooled level) with anchors for three levels. Every other family (ConvNeXt, EfficientNet, MobileNetV3, RegNet,
VGG, DenseNet) is cut by timm's ``FeatureListNet`` at the ``feature_info`` levels of the same stages, which
torchvision's FPN then takes as it takes a ResNet's. As in torchvision, BatchNorm in the backbone is frozen and only
the last ``trainable_layers`` stages train; attention modules always train, and their own norms (DAS's
instance and layer norms, BAM's BatchNorm) are left as they are.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from timm.models import FeatureListNet
from torch import nn
from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock, LastLevelMaxPool, LastLevelP6P7

from .checkpoint import load_state, read_state_dict
from .factory import create_model, feature_net_placement, parse_model_name
from .norm import freeze_batch_norm
from .placement import Placement

__all__ = ["DETECTORS", "attention_modules", "create_detector"]

FPN_CHANNELS = 256
RESNET_TRAINABLE = ("layer4", "layer3", "layer2", "layer1", "conv1")  # torchvision's order, last first


MOBILE_STRIDES = (32, 32, 64)  # torchvision's mobile FPN: the outputs of the last two stages, then a max-pool


def _mobile_anchors(arch: str) -> dict[str, AnchorGenerator]:
    """Anchors for the three mobile pyramid levels: torchvision's for Faster R-CNN (its mobile detector); for
    RetinaNet and FCOS their own rule (4·stride with three scales; one point of size stride)."""
    if arch == "fasterrcnn":
        return {"rpn_anchor_generator": AnchorGenerator(((32, 64, 128, 256, 512),) * 3, ((0.5, 1.0, 2.0),) * 3)}
    if arch == "retinanet":
        sizes = tuple(tuple(round(4 * s * 2 ** (i / 3)) for i in range(3)) for s in MOBILE_STRIDES)
        return {"anchor_generator": AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * 3)}
    return {"anchor_generator": AnchorGenerator(tuple((s,) for s in MOBILE_STRIDES), ((1.0,),) * 3)}


# arch -> (torchvision class, ResNet stages returned to the FPN, extra FPN level factory)
DETECTORS: dict[str, tuple[type[nn.Module], tuple[int, ...], Callable[[], ExtraFPNBlock]]] = {
    "fasterrcnn": (FasterRCNN, (1, 2, 3, 4), LastLevelMaxPool),
    "retinanet": (RetinaNet, (2, 3, 4), lambda: LastLevelP6P7(FPN_CHANNELS, FPN_CHANNELS)),
    "fcos": (FCOS, (2, 3, 4), lambda: LastLevelP6P7(FPN_CHANNELS, FPN_CHANNELS)),
}


CLASSIFIERS = {
    "fasterrcnn": "roi_heads.box_predictor",
    "retinanet": "head.classification_head.cls_logits",
    "fcos": "head.classification_head.cls_logits",
}


def _qualified(placement: Placement, prefix: str, strip: str) -> Placement:
    """The placement record with module names as seen from the detector."""
    names = [prefix + name.removeprefix(strip) for name in placement.modules]
    return dataclasses.replace(placement, modules=names)


def _detector_names(placement: Placement, body: nn.Module, mobile: bool) -> Placement:
    """The placement record as seen from the detector, whose body is ``features`` (MobileNetV2), the model
    (ResNets) or its flattened ``FeatureListNet``."""
    if mobile:
        return _qualified(placement, "backbone.body.", "features.")
    if isinstance(body, FeatureListNet):
        placement = feature_net_placement(placement, body)
    return _qualified(placement, "backbone.body.", "")


def _load(detector: nn.Module, path: str | Path) -> None:
    """A detector checkpoint into the detector, or a classification backbone checkpoint into its body; warn
    which attention parameters the file lacks (they keep their initialisation)."""
    state = read_state_dict(path)
    is_detector = any(k.startswith("backbone.") for k in state)
    target, strip = (detector, "") if is_detector else (detector.backbone.body, "backbone.body.")
    own = target.state_dict()
    if not is_detector:  # the body keeps no pooling or classifier
        state = {k: v for k, v in state.items() if k in own or not k.startswith(("fc.", "classifier."))}
    names = tuple(f"{n.removeprefix(strip)}." for p in detector.cnnattn_placements for n in p.modules)
    attention = {k for k in own if k.startswith(names)}
    frozen_counters = {k for k in own if k.endswith("num_batches_tracked")}  # torchvision's frozen BN has none
    missing = load_state(target, state, path, allow_missing=attention | frozen_counters)
    lacking = sorted(set(missing) & attention)
    if lacking:
        warnings.warn(
            f"{path}: {len(lacking)} attention tensors are not in the checkpoint and keep their initialisation "
            f"(e.g. {', '.join(lacking[:3])}).",
            stacklevel=3,
        )


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """Every module cnnattn placed in ``model`` (gates and conv kinds), from its placement records."""
    return [model.get_submodule(n) for p in getattr(model, "cnnattn_placements", []) for n in p.modules]


def _resnet_body(model: nn.Module, stages: Sequence[int], trainable_layers: int) -> tuple[dict, list[int]]:
    trainable = list(RESNET_TRAINABLE[:trainable_layers]) + (["bn1"] if trainable_layers == 5 else [])
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(any(name.startswith(layer) for layer in trainable))
    channels = [model.feature_info[s]["num_chs"] for s in stages]
    return {f"layer{s}": str(i) for i, s in enumerate(stages)}, channels


def _stage_levels(model: nn.Module, stages: Sequence[int]) -> list[int]:
    """The ``feature_info`` level of each stage: the last level at reduction 4·2^(stage-1)."""
    reductions = [level["reduction"] for level in model.feature_info]
    missing = [s for s in stages if 2 ** (s + 1) not in reductions]
    if missing:
        raise ValueError(f"the backbone has no feature level at reductions {[2 ** (s + 1) for s in missing]}.")
    return [max(k for k, r in enumerate(reductions) if r == 2 ** (s + 1)) for s in stages]


def _features_body(model: nn.Module, stages: Sequence[int], trainable_layers: int) -> tuple[nn.Module, dict, list[int]]:
    """timm's ``FeatureListNet`` over the stages' feature levels; the last ``trainable_layers`` of (stem, stage 1,
    …, stage 4) train: a parameter belongs to the first level its module comes before or inside."""
    levels = _stage_levels(model, (1, 2, 3, 4))
    ends = _level_ends(model, levels)
    first_trainable = 5 - trainable_layers  # 0 = stem, 1..4 = stages
    modules = list(model.named_modules())
    order = {name: i for i, (name, _) in enumerate(modules)}
    for name, parameter in model.named_parameters():
        position = order[name.rpartition(".")[0]]
        level = next((k + 1 for k, end in enumerate(ends) if position <= end), 5)
        parameter.requires_grad_(level >= first_trainable and level < 5)
    wanted = [levels[s - 1] for s in stages]
    body = FeatureListNet(model, out_indices=tuple(wanted), flatten_sequential=True)
    channels = [model.feature_info[k]["num_chs"] for k in wanted]
    return body, {name: str(i) for i, name in enumerate(body.return_layers)}, channels


def _level_ends(model: nn.Module, levels: Sequence[int]) -> list[int]:
    """For each ``feature_info`` level, the registration-order index of the last module inside it."""
    order = [name for name, _ in model.named_modules()]
    names = [model.feature_info[k]["module"] for k in levels]
    return [max(i for i, n in enumerate(order) if n == name or n.startswith(f"{name}.")) for name in names]


def _mobilenet_body(model: nn.Module, trainable_layers: int) -> tuple[nn.Module, dict, list[int]]:
    """torchvision's mobile FPN extractor, on MobileNetV2's ``features``: the last two stages are returned."""
    features = model.features
    stage_indices = [0] + [i for i, b in enumerate(features) if getattr(b, "_is_cn", False)] + [len(features) - 1]
    freeze_before = len(features) if trainable_layers == 0 else stage_indices[-trainable_layers]
    for block in features[:freeze_before]:
        block.requires_grad_(False)
    returned = stage_indices[-2:]
    return features, {str(i): str(k) for k, i in enumerate(returned)}, [features[i].out_channels for i in returned]


def create_detector(
    arch: str,
    backbone: str = "resnet50",
    num_classes: int = 91,
    *,
    trainable_layers: int = 3,
    frozen_bn: bool = True,
    min_size: int = 800,
    max_size: int = 1333,
    checkpoint_path: str | Path | None = None,
    attn_stages: Sequence[int] | None = None,
    attn_position: str | None = None,
    attn_kwargs: dict[str, Any] | None = None,
    backbone_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """A torchvision detector on a cnnattn backbone.

    Args:
        arch: ``'fasterrcnn'``, ``'retinanet'`` or ``'fcos'``.
        backbone: Any classification model name cnnattn knows, e.g. ``'resnet50_das'``, ``'resnet101_aw'``,
            ``'mobilenetv2_cbam'`` (see ``cnnattn list``).
        num_classes: Classes including the background (torchvision's convention; COCO: 91).
        trainable_layers: Backbone stages that train, counted from the last (0–5 for ResNets, as torchvision);
            attention modules always train.
        frozen_bn: Freeze the backbone's BatchNorm (running statistics, no affine updates), as torchvision's
            detectors do; the attention modules' own norms are left as they are.
        min_size, max_size: Images are resized so their short side is ``min_size`` (long side at most
            ``max_size``) pixels.
        checkpoint_path: Local state dict of a detector (e.g. torchvision's ``fasterrcnn_resnet50_fpn``) or of
            the plain classification backbone (``body`` weights); attention keys, the classifier and, for a
            backbone checkpoint, the FPN and heads may be missing, and the error names anything else.
        attn_stages, attn_position, attn_kwargs: Override the attention's default placement.
        backbone_kwargs: Passed to ``create_model`` for the backbone (e.g. ``{'drop_path_rate': 0.1}``).
        **kwargs: Passed to the torchvision detector (e.g. ``box_score_thresh``, ``image_mean``).
    """
    if arch not in DETECTORS:
        raise ValueError(f"unknown detector {arch!r}; choose one of {sorted(DETECTORS)}.")
    if not 0 <= trainable_layers <= 5:
        raise ValueError(f"trainable_layers must be in 0..5 (stages from the last); got {trainable_layers}.")
    detector_class, stages, extra = DETECTORS[arch]
    base = parse_model_name(backbone).backbone
    mobile = base == "mobilenetv2"
    model = create_model(
        backbone,
        attn_stages=attn_stages,
        attn_position=attn_position,
        attn_kwargs=attn_kwargs,
        num_classes=1,
        **(backbone_kwargs or {}),
    )
    attention = attention_modules(model)
    extra_block: ExtraFPNBlock = LastLevelMaxPool() if mobile else extra()
    if mobile:
        body, return_layers, channels = _mobilenet_body(model, trainable_layers)
    elif hasattr(model, "layer4"):
        (return_layers, channels), body = _resnet_body(model, stages, trainable_layers), model
    else:
        body, return_layers, channels = _features_body(model, stages, trainable_layers)
    if frozen_bn:  # after the trainable stages are chosen: frozen norms keep no trainable affine parameters
        freeze_batch_norm(model, exclude=attention)
    for module in attention:
        module.requires_grad_(True)
    fpn = BackboneWithFPN(body, return_layers, channels, FPN_CHANNELS, extra_blocks=extra_block)
    anchors = _mobile_anchors(arch) if mobile else {}
    detector = detector_class(fpn, num_classes, min_size=min_size, max_size=max_size, **{**anchors, **kwargs})
    detector.cnnattn_placements = [_detector_names(p, body, mobile) for p in getattr(model, "cnnattn_placements", [])]
    detector.pretrained_cfg = {"classifier": CLASSIFIERS[arch]}  # a checkpoint of other classes re-inits it
    if checkpoint_path is not None:
        _load(detector, checkpoint_path)
    return detector
