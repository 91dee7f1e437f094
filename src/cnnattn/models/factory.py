"""Model names ``<backbone>[_<attention>]`` and the factory that builds them.

Backbones: ``resnet18/34/50/101/152`` are timm's ResNets (same layers and state-dict keys as
torchvision's), ``mobilenetv2`` is torchvision's MobileNetV2 (width 1.0, torchvision's keys) with timm's model
interface, and the bases of :data:`TIMM_BASES` (ResNeXt, Wide ResNet, ConvNeXt, EfficientNet, MobileNetV3, RegNetY,
VGG, DenseNet) are timm's models of those names, keys included. ``<attention>`` is any registered attention (or
an ``_``-joined stack of them, e.g. ``aw_se``), placed at its registry default, or where a family lacks that
position at the family's stand-in (``after_block`` in VGG, ``stage`` in DenseNet).
Every ResNet also takes ``stem='cifar'``: the CIFAR input stem (3×3 conv, stride 1, no max pool), so a
32-px image keeps 32×32 maps in stage 1 instead of 8×8.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import timm
from timm.models import FeatureListNet
from torch import nn

from ..attention.registry import get_attention_info, list_attention
from .checkpoint import load_checkpoint
from .mobilenetv2 import TimmMobileNetV2
from .placement import Placement, attach

__all__ = [
    "BACKBONES",
    "STEMS",
    "ModelSpec",
    "buildable",
    "cifar_stem",
    "create_model",
    "feature_net_placement",
    "features_net",
    "list_models",
    "parse_model_name",
]


STEMS = ("imagenet", "cifar")
HUB_SOURCES = ("local-dir", "hf-hub")  # timm's model sources: a name ``local-dir:DIR`` is a saved model
CIFAR_INPUT_SIZE = 32


def _timm_model(arch: str, num_classes: int, stem: str = "imagenet", **kwargs: Any) -> nn.Module:
    if stem not in STEMS:
        raise ValueError(f"unknown stem {stem!r}; choose one of {list(STEMS)} (cifar: 3×3 conv, stride 1, no maxpool).")
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes, **kwargs)
    return cifar_stem(model) if stem == "cifar" else model


def cifar_stem(model: nn.Module) -> nn.Module:
    """Give a timm ResNet the CIFAR input stem in place: ``conv1`` becomes a 3×3 stride-1 convolution (same
    channels, so ``bn1`` and every stage stay as they are) and ``maxpool`` an identity. The feature maps are then
    4× larger at every stage (strides 1, 1, 2, 4, 8 instead of 2, 4, 8, 16, 32); ``feature_info`` and
    ``pretrained_cfg`` (32×32 input) say so."""
    stem = getattr(model, "conv1", None)
    if not isinstance(stem, nn.Conv2d):
        raise ValueError("stem='cifar' needs the single-conv ResNet stem (timm stem_type=''), not a deep stem.")
    model.conv1 = nn.Conv2d(stem.in_channels, stem.out_channels, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    for info in model.feature_info:
        info["reduction"] = max(1, info["reduction"] // 4)
    size = CIFAR_INPUT_SIZE
    final = size // model.feature_info[-1]["reduction"]
    cfg = {k: v for k, v in model.pretrained_cfg.items() if k not in ("url", "hf_hub_id", "test_input_size")}
    input_size = (stem.in_channels, size, size)
    cfg.update(input_size=input_size, pool_size=(final, final), crop_pct=1.0)  # the ImageNet weights do not fit
    model.pretrained_cfg = model.default_cfg = cfg
    return model


def _mobilenet_v2(num_classes: int, stem: str = "imagenet", **kwargs: Any) -> nn.Module:
    if stem != "imagenet":
        raise ValueError(f"stem={stem!r} is for ResNets; MobileNetV2 has only its own stem (stem='imagenet').")
    return TimmMobileNetV2(num_classes=num_classes, **kwargs)


# timm models of other families with cnnattn names of their own (``convnext_tiny_das``): timm's architecture,
# keys and pretrained_cfg; the attention goes where the family's adapter puts it.
TIMM_BASES = (
    "resnext50_32x4d",
    "wide_resnet50_2",
    "convnext_atto",
    "convnext_tiny",
    "efficientnet_b0",
    "mobilenetv3_large_100",
    "regnety_016",
    "vgg16_bn",
    "densenet121",
)
# Bases whose only k×k convs are grouped or depthwise: conv kinds that take no ``groups`` have no place in them.
GROUPED_BASES = frozenset(
    {"mobilenetv2", "resnext50_32x4d", "convnext_atto", "convnext_tiny", "efficientnet_b0", "mobilenetv3_large_100"}
    | {"regnety_016"}
)
BACKBONES: dict[str, Callable[..., nn.Module]] = {
    **{f"resnet{d}": partial(_timm_model, f"resnet{d}") for d in (18, 34, 50, 101, 152)},
    "mobilenetv2": _mobilenet_v2,
    **{base: partial(_timm_model, base) for base in TIMM_BASES},
}
# Bases whose feature levels sit inside a Sequential (``blocks.2``, ``features.5``): features_only flattens it.
_FLATTEN_FEATURES = {"mobilenetv2", *TIMM_BASES} - {"resnext50_32x4d", "wide_resnet50_2"}
# Stacks of attentions with model names of their own: AW-convolution with an activation gate (docs/aw.md).
MODEL_STACKS: list[tuple[str, ...]] = [("aw", "se"), ("aw", "cbam")]
# pretrained_cfg fields that describe where a base's published weights come from: cnnattn's models have none.
_WEIGHT_SOURCE_FIELDS = ("tag", "url", "hf_hub_id", "hf_hub_filename", "file", "source", "state_dict", "license")
_WEIGHT_SOURCE_FIELDS += ("origin_url", "paper_ids", "paper_name", "notes", "custom_load", "test_input_size")
_WEIGHT_SOURCE_FIELDS += ("test_crop_pct", "test_pool_size")


def own_pretrained_cfg(cfg: dict[str, Any], name: str, num_classes: int) -> dict[str, Any]:
    """timm's ``pretrained_cfg`` of a built cnnattn model: the base's preprocessing and layer names, under the
    cnnattn ``name``, without the base's weight source (its tag, URL, licence, paper)."""
    cfg = {k: v for k, v in dict(cfg).items() if k not in _WEIGHT_SOURCE_FIELDS}
    return {**cfg, "architecture": name, "num_classes": num_classes}


def model_args(kwargs: dict[str, Any], **attn: Any) -> dict[str, Any]:
    """The keywords that rebuild a model (``model._model_args``, written by timm's ``save_for_hf``): the
    backbone's and the attention overrides that were given, without drop rates (training settings, as in timm)."""
    args = {k: v for k, v in kwargs.items() if not k.endswith(("drop_rate", "drop_path_rate", "drop_block_rate"))}
    return {**args, **{k: v for k, v in attn.items() if v is not None and v != {}}}


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model name: the backbone and the attentions (in attach order) it carries."""

    backbone: str
    attentions: tuple[str, ...]

    @property
    def name(self) -> str:
        return "_".join((self.backbone, *self.attentions))


def _split_attentions(rest: str) -> tuple[str, ...] | None:
    """Split ``'aw_se'`` into registered names, longest first; None if impossible."""
    names = {i.name for i in list_attention()}
    if rest in names:
        return (rest,)
    parts = rest.split("_")
    for cut in range(len(parts) - 1, 0, -1):
        head, tail = "_".join(parts[:cut]), "_".join(parts[cut:])
        if head in names and (tail_split := _split_attentions(tail)):
            return (head, *tail_split)
    return None


def parse_model_name(name: str) -> ModelSpec:
    """Parse ``'resnet50_cbam'`` into ``ModelSpec('resnet50', ('cbam',))``; ValueError if unknown."""
    for backbone in sorted(BACKBONES, key=len, reverse=True):
        if name == backbone:
            return ModelSpec(backbone, ())
        if name.startswith(backbone + "_") and (attentions := _split_attentions(name[len(backbone) + 1 :])):
            return ModelSpec(backbone, attentions)
    raise ValueError(
        f"unknown model {name!r}: expected <backbone>[_<attention>] with backbone in "
        f"{sorted(BACKBONES)} and attention in {[i.name for i in list_attention()]}; "
        "see `cnnattn list`."
    )


def buildable(spec: ModelSpec) -> bool:
    """False where the backbone has nothing the attention can take: the only k×k convs of MobileNetV2, ResNeXt,
    ConvNeXt, EfficientNet, MobileNetV3 and RegNet are grouped or depthwise, so conv kinds that do not accept
    ``groups`` have no place in them."""
    if spec.backbone not in GROUPED_BASES:
        return True
    infos = [get_attention_info(a) for a in spec.attentions]
    return all(i.kind == "gate" or i.grouped for i in infos)


def list_models(pattern: str = "*") -> list[str]:
    """All model names (every backbone, plain and with every registered attention), filtered by a glob."""
    suffixes = [(i.name,) for i in list_attention()] + MODEL_STACKS
    specs = [ModelSpec(b, ()) for b in BACKBONES] + [ModelSpec(b, s) for b in BACKBONES for s in suffixes]
    return sorted(s.name for s in specs if buildable(s) and fnmatch.fnmatch(s.name, pattern))


def feature_net_placement(placement: Placement, features: nn.Module) -> Placement:
    """The placement record with module names as seen from timm's ``FeatureListNet`` over the model, which
    joins a flattened Sequential's name with its child's (``blocks.2.0.attn`` → ``blocks_2.0.attn``)."""
    names = []
    for name in placement.modules:
        head, _, rest = name.partition(".")
        child, _, tail = rest.partition(".")
        flat = f"{head}_{child}"
        names.append(f"{flat}.{tail}" if child and tail and flat in features._modules else name)
    return dataclasses.replace(placement, modules=names)


def create_model(
    name: str,
    num_classes: int | None = None,
    *,
    pretrained: bool = False,
    checkpoint_path: str | Path | None = None,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    attn_stages: Sequence[int] | None = None,
    attn_position: str | None = None,
    attn_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a backbone with attention at its default placement (or the one given).

    Args:
        name: ``<backbone>[_<attention>]``, e.g. ``'resnet50_cbam'`` (see :func:`list_models`), or a Hub-layout
            model with its weights: ``'local-dir:DIR'`` (a folder written by ``cnnattn export --format hf``) or
            ``'hf-hub:user/repo'``, built by timm from its ``config.json``.
        num_classes: Classifier outputs (default 1000, or the Hub-layout model's own; another count gives a
            freshly initialised classifier).
        pretrained: Not available (no weights are downloaded); raises ValueError. Use ``checkpoint_path``.
        checkpoint_path: Local ``.pth``/``.safetensors`` state dict, of this model or of the plain backbone
            (attention parameters then keep their initialisation), loaded with ``weights_only=True``.
        features_only: Return timm's ``FeatureListNet`` giving the feature maps at ``out_indices`` (the model's
            ``feature_info`` levels: for ResNets and MobileNetV2 0 = stride 2 stem, 1..4 = stages).
        out_indices: Feature levels for ``features_only``; None: all of them.
        attn_stages, attn_position, attn_kwargs: Override the registry default placement and constructor
            arguments (single-attention models only).
        **kwargs: Backbone arguments: ``stem='cifar'`` for the CIFAR input stem of a ResNet (3×3 conv, stride
            1, no max pool; default ``'imagenet'``), timm's keywords (``in_chans``, ``drop_rate``,
            ``drop_path_rate``, ``global_pool``, ``output_stride``...) for the timm bases, torchvision MobileNetV2's
            ``width_mult``, ``dropout``...
    """
    if name.partition(":")[0] in HUB_SOURCES:
        given = {"num_classes": num_classes, "attn_stages": attn_stages, "attn_position": attn_position}
        given = {k: v for k, v in {**given, "attn_kwargs": attn_kwargs}.items() if v is not None}
        return timm.create_model(name, pretrained=True, features_only=features_only, out_indices=out_indices,
                                 **given, **kwargs)  # fmt: skip
    num_classes = 1000 if num_classes is None else num_classes
    spec = parse_model_name(name)
    if pretrained:
        raise ValueError(
            f"pretrained=True: cnnattn hosts no weights and downloads nothing. Pass "
            f"checkpoint_path='path/to/weights.pth' (a state dict of {name} or of the plain "
            f"{spec.backbone}, e.g. torchvision's or timm's ImageNet weights saved locally)."
        )
    overrides = attn_stages is not None or attn_position is not None or attn_kwargs
    if overrides and len(spec.attentions) != 1:
        raise ValueError(
            f"attn_stages/attn_position/attn_kwargs need a model with exactly one attention; "
            f"{name!r} has {len(spec.attentions)}. Use cnnattn.attach() on the plain backbone."
        )
    model = BACKBONES[spec.backbone](num_classes, **kwargs)
    backbone_keys = set(model.state_dict())
    for attention in spec.attentions:
        info = get_attention_info(attention)
        attach(
            model,
            attention,
            stages=info.stages if attn_stages is None else attn_stages,
            position=attn_position,
            **(attn_kwargs or {}),
        )
    model.pretrained_cfg = model.default_cfg = own_pretrained_cfg(model.pretrained_cfg, name, num_classes)
    attn = {"attn_stages": attn_stages, "attn_position": attn_position, "attn_kwargs": attn_kwargs}
    model._model_args = {"num_classes": num_classes, **model_args(kwargs, **attn)}
    if checkpoint_path is not None:
        new_keys = set(model.state_dict()) - backbone_keys
        load_checkpoint(model, checkpoint_path, allow_missing=new_keys)
    return features_net(model, out_indices) if features_only else model


def features_net(model: nn.Module, out_indices: Sequence[int] | None = None) -> FeatureListNet:
    """timm's ``FeatureListNet`` over a built cnnattn model: its feature maps at ``out_indices`` (None: every
    ``feature_info`` level), with the model's ``pretrained_cfg`` and placement records."""
    cfg = model.pretrained_cfg
    backbone = parse_model_name(cfg["architecture"]).backbone
    levels = tuple(range(len(model.feature_info))) if out_indices is None else tuple(out_indices)
    placements = getattr(model, "cnnattn_placements", [])
    features = FeatureListNet(model, out_indices=levels, flatten_sequential=backbone in _FLATTEN_FEATURES)
    features.pretrained_cfg = features.default_cfg = cfg
    if placements:
        features.cnnattn_placements = [feature_net_placement(p, features) for p in placements]
    return features
