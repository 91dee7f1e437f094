"""Attach attention to an existing backbone in place, keeping every original parameter's name and value.

Positions (README, "Placement"):

* ``block``: inside each block, on the output of its last norm, before the residual add (SE style),
  as ``<block>.attn``;
* ``after_block``: on each block's output (after the residual add and activation), as ``<block>.attn_post``;
* ``stage``: once per stage, on the output of its last block, as ``<last block>.attn_stage``;
* ``expansion``: after the block's spatial conv at mid width, where EfficientNet's, MobileNetV3's and RegNetY's
  built-in SE sits, as ``<block>.attn_exp`` after that SE, or in its place with ``replace_builtin=True``;
* ``conv``: each k×k convolution of the block is replaced by a conv-kind attention built with the same
  ``in_channels, out_channels, kernel_size, stride`` (and ``dilation``/``groups``/``bias`` where the conv has
  them). When the new module has a ``weight`` (``bias``) of the old shape, the old one is copied in.

Gates live in the module tree and in ``forward``: the backbone's adapter (:mod:`cnnattn.models.adapters`)
switches each receiving block to its attention-aware class, whose ``forward`` calls the slot. State-dict
keys of the plain backbone are unchanged, so a plain-backbone checkpoint still loads; the new modules add
keys under ``attn*`` (or inside the replaced conv).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..attention.registry import (
    ALL_STAGES,
    accepted_keywords,
    check_keywords,
    create_attention,
    get_attention_info,
    list_attention,
    validate_placement,
)
from .adapters import BackboneAdapter, BlockSite, find_adapter

__all__ = ["Placement", "attach"]


@dataclass
class Placement:
    """A record of one ``attach`` call, kept in ``model.cnnattn_placements``.

    ``removed_keys`` lists the state-dict keys the placement took out of the model (a replaced built-in SE's,
    a conv bias the new conv kind has no place for); empty when every plain key was kept.
    """

    attention: str
    position: str
    stages: tuple[int, ...]
    kwargs: dict[str, Any]
    modules: list[str] = field(default_factory=list)
    replace_builtin: bool = False
    removed_keys: list[str] = field(default_factory=list)


def _match_reference(new: nn.Module, reference: nn.Module) -> nn.Module:
    """Put ``new`` on the device, dtype and train/eval mode of ``reference``."""
    param = next(reference.parameters(), None)
    if param is not None:
        new = new.to(device=param.device, dtype=param.dtype if param.is_floating_point() else None)
    return new.train(reference.training)


Change = Callable[[], None]


def _set_child(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, leaf, module)


def _plan_gate(
    model: nn.Module, adapter: BackboneAdapter, site: BlockSite, spec: tuple[str, str, dict[str, Any]], replace: bool
) -> tuple[str, Change]:
    """Check one gate site and build its module; return its qualified name and the change that places it."""
    name, position, kwargs = spec
    if position == "expansion":
        if replace and site.builtin is not None:
            gate = _match_reference(create_attention(name, site.expansion_channels, **kwargs), site.block)
            return site.builtin, functools.partial(_set_child, model, site.builtin, gate)
        channels = site.expansion_channels
    else:
        channels = site.channels
    owner_name, slot = adapter.slot_owner(model, site, position)
    owner = model.get_submodule(owner_name)
    if getattr(owner, slot, None) is not None:
        raise ValueError(
            f"{owner_name} already has attention at position {position!r} ({slot!r}); "
            "attach at most one module per block and position."
        )
    gate = _match_reference(create_attention(name, channels, **kwargs), site.block)

    def place() -> None:
        setattr(adapter.attention_block(owner), slot, gate)

    return f"{owner_name}.{slot}", place


def _conv_extras(conv: nn.Conv2d, accepted: list[str] | None) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    if conv.dilation[0] != 1:
        extras["dilation"] = conv.dilation[0]
    if conv.groups != 1:
        extras["groups"] = conv.groups
    if conv.bias is not None and accepted is not None and "bias" in accepted:
        extras["bias"] = True
    return extras


def _check_conv(name: str, old: nn.Module, attention: str) -> None:
    if type(old) is not nn.Conv2d:
        raise ValueError(
            f"{attention!r} cannot replace {name} ({type(old).__qualname__}): only plain nn.Conv2d layers are "
            "replaced (timm's Conv2dSame pads as TensorFlow does, MixedConv2d/CondConv2d hold several kernels)."
        )
    (kh, kw), (sh, sw), (dh, _) = old.kernel_size, old.stride, old.dilation
    if kh != kw or sh != sw or old.padding != (dh * (kh - 1) // 2,) * 2:
        raise ValueError(
            f"{attention!r} cannot replace {name} ({old}): only square kernels and strides with 'same' padding "
            "can be replaced."
        )


def _plan_conv(model: nn.Module, conv_name: str, attention: str, kwargs: dict[str, Any]) -> Change:
    """Check one conv site and build its replacement; return the change that swaps it in."""
    old = model.get_submodule(conv_name)
    _check_conv(conv_name, old, attention)
    info = get_attention_info(attention)
    accepted = accepted_keywords(info)
    extras = _conv_extras(old, accepted)
    needed = set(extras) - {"bias"}
    if (accepted is not None and not needed <= set(accepted)) or ("groups" in needed and not info.grouped):
        raise ValueError(
            f"{attention!r} cannot replace {conv_name} ({old}): it does not accept {sorted(needed)}; "
            f"{_grouped_hint(attention)}"
        )
    try:
        new = create_attention(
            attention, old.in_channels, old.out_channels, old.kernel_size[0], old.stride[0], **extras, **kwargs
        )
    except TypeError as err:
        raise ValueError(
            f"{attention!r} cannot replace {conv_name} ({old}): it does not accept {sorted(extras)} ({err})."
        ) from err
    new = _match_reference(new, old)
    for attr in ("weight", "bias"):
        old_p, new_p = getattr(old, attr, None), getattr(new, attr, None)
        if isinstance(old_p, torch.Tensor) and isinstance(new_p, torch.Tensor) and old_p.shape == new_p.shape:
            with torch.no_grad():
                new_p.copy_(old_p)
    return functools.partial(_set_child, model, conv_name, new)


def _grouped_hint(attention: str) -> str:
    grouped = [i.name for i in list_attention("conv") if i.grouped and i.name != attention]
    return f"conv kinds that replace grouped and depthwise convs: {', '.join(grouped) or 'none'}."


def _targets(sites: list[BlockSite], position: str) -> list[BlockSite]:
    if position == "stage":
        return sites[-1:]
    if position == "expansion":
        return [s for s in sites if s.expansion_channels is not None]
    return sites


def _plan(
    model: nn.Module,
    adapter: BackboneAdapter,
    spec: tuple[str, str, dict[str, Any]],
    stages: tuple[int, ...],
    replace: bool,
) -> tuple[list[str], list[Change]]:
    attention, position, kwargs = spec
    all_stages = adapter.stages(model)
    names: list[str] = []
    changes: list[Change] = []
    for stage in stages:
        sites = _targets(all_stages[stage - 1], position)
        if position == "conv":
            convs = [c for s in sites for c in s.conv_names]
            names += convs
            changes += [_plan_conv(model, c, attention, kwargs) for c in convs]
        else:
            for site in sites:
                name, change = _plan_gate(model, adapter, site, spec, replace)
                names.append(name)
                changes.append(change)
    if not names:
        raise ValueError(
            f"{adapter.name}: stages {stages} have no site for position {position!r} "
            f"({'no k×k convolution' if position == 'conv' else 'no block with an expansion point'})."
        )
    return names, changes


def attach(
    model: nn.Module,
    attention: str,
    *,
    stages: Sequence[int] = ALL_STAGES,
    position: str | None = None,
    replace_builtin: bool = False,
    **attn_kwargs: Any,
) -> nn.Module:
    """Add a registered attention module to ``model`` in place and return the model.

    Every site is checked and every module built before anything changes: a refused request leaves the model as
    it was.

    Args:
        model: a backbone of a supported family (``cnnattn.models.adapters.list_adapters()``: torchvision and timm
            ResNets/ResNeXts, ConvNeXts, EfficientNets, MobileNetV2/V3, RegNets, VGGs, DenseNets, any timm CNN
            with ``feature_info`` at position ``stage``), its ``features_only`` wrapper or a detector holding it;
            pretrained or not. No original parameter is renamed or changed (a conv-kind attention of the same
            weight shape takes over the conv's weight and bias, see module docs).
        attention: Registry name, e.g. ``'se'``, ``'cbam'``, ``'bam'`` (``cnnattn.list_attention()``).
        stages: Which of the four stages (1..4) receive attention.
        position: ``'block'``, ``'after_block'``, ``'stage'``, ``'expansion'`` (gates) or ``'conv'`` (conv kinds);
            each family has the positions its adapter lists. None: the attention's registry default, or where
            the family lacks it the family's stand-in (``after_block`` in VGG, ``stage`` in DenseNet and in the
            ``feature_info`` fallback).
        replace_builtin: With ``position='expansion'``: put the gate in place of the block's own SE (whose
            pretrained keys are then no longer used; they are listed in the placement's ``removed_keys``)
            instead of after it.
        **attn_kwargs: Passed to every attention module's constructor.

    Returns:
        The same model, with ``model.cnnattn_placements`` recording what was attached where.

    Example::

        model = torchvision.models.resnet50()
        cnnattn.attach(model, "cbam", stages=(2, 3, 4))
    """
    info = get_attention_info(attention)
    adapter = find_adapter(model)
    position = adapter.default_position(info.position) if position is None else position
    stage_tuple = validate_placement(info.kind, stages, position, what=f"attention {attention!r}")
    if replace_builtin and position != "expansion":
        raise ValueError(f"replace_builtin=True needs position='expansion' (the built-in SE's spot), not {position!r}.")
    check_keywords(attention, attn_kwargs)
    adapter.check_position(model, position)
    names, changes = _plan(model, adapter, (attention, position, dict(attn_kwargs)), stage_tuple, replace_builtin)
    keys = set(model.state_dict())
    for change in changes:  # nothing above changed the model
        change()
    removed = sorted(keys - set(model.state_dict()))
    record = Placement(attention, position, stage_tuple, dict(attn_kwargs), names, replace_builtin, removed)
    if removed and replace_builtin:
        warnings.warn(
            f"attach({attention!r}, replace_builtin=True) replaced the blocks' own SE: {len(removed)} keys of the "
            f"plain model are no longer used (e.g. {removed[0]!r}; all in model.cnnattn_placements[-1]"
            ".removed_keys), so a checkpoint of the plain model loads only with strict=False.",
            stacklevel=2,
        )
    placements = getattr(model, "cnnattn_placements", [])
    model.cnnattn_placements = [*placements, record]
    return model
