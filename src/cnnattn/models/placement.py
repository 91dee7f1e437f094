"""Attach attention to an existing backbone in place, keeping every original parameter's name and value.

Positions (README, "Placement"):

* ``block``: inside each block, on the output of its last norm, before the residual add (SE style),
  as ``<block>.attn``;
* ``after_block``: on each block's output (after the residual add and activation), as ``<block>.attn_post``;
* ``stage``: once per stage, on the output of its last block, as ``<last block>.attn_stage``;
* ``conv``: each k×k convolution of the block is replaced by a conv-kind attention built with the same
  ``in_channels, out_channels, kernel_size, stride`` (and ``dilation``/``groups`` where not 1). When the
  new module has a ``weight`` of the old shape, the old weight (and bias) is copied in.

Gates live in the module tree and in ``forward``: the backbone's adapter (:mod:`cnnattn.models.adapters`)
switches each receiving block to its attention-aware class, whose ``forward`` calls the slot. State-dict
keys of the plain backbone are unchanged, so a plain-backbone checkpoint still loads; the new modules add
keys under ``attn*`` (or inside the replaced conv).
"""

from __future__ import annotations

from collections.abc import Sequence
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
    validate_placement,
)
from .adapters import SLOTS, BackboneAdapter, BlockSite, find_adapter

__all__ = ["Placement", "attach"]


@dataclass
class Placement:
    """A record of one ``attach`` call, kept in ``model.cnnattn_placements``."""

    attention: str
    position: str
    stages: tuple[int, ...]
    kwargs: dict[str, Any]
    modules: list[str] = field(default_factory=list)


def _match_reference(new: nn.Module, reference: nn.Module) -> nn.Module:
    """Put ``new`` on the device, dtype and train/eval mode of ``reference``."""
    param = next(reference.parameters(), None)
    if param is not None:
        new = new.to(device=param.device, dtype=param.dtype if param.is_floating_point() else None)
    return new.train(reference.training)


def _attach_gate(adapter: BackboneAdapter, site: BlockSite, name: str, position: str, kwargs: dict[str, Any]) -> str:
    slot = SLOTS[position]
    if getattr(site.block, slot, None) is not None:
        raise ValueError(
            f"{site.name} already has attention at position {position!r} ({slot!r}); "
            "attach at most one module per block and position."
        )
    attention = _match_reference(create_attention(name, site.channels, **kwargs), site.block)
    setattr(adapter.attention_block(site.block), slot, attention)
    return f"{site.name}.{slot}"


def _conv_extras(conv: nn.Conv2d) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    if conv.dilation[0] != 1:
        extras["dilation"] = conv.dilation[0]
    if conv.groups != 1:
        extras["groups"] = conv.groups
    return extras


def _replace_conv(site: BlockSite, conv_name: str, name: str, kwargs: dict[str, Any]) -> str:
    old = site.block.get_submodule(conv_name)
    if old.kernel_size[0] != old.kernel_size[1] or old.stride[0] != old.stride[1]:
        raise ValueError(f"{site.name}.{conv_name}: only square kernels and strides can be replaced.")
    extras = _conv_extras(old)
    accepted = accepted_keywords(get_attention_info(name))
    if accepted is not None and not set(extras) <= set(accepted):
        raise ValueError(
            f"{name!r} cannot replace {site.name}.{conv_name} ({old}): it does not accept {sorted(extras)}; it takes "
            f"{', '.join(accepted)}."
        )
    try:
        new = create_attention(
            name, old.in_channels, old.out_channels, old.kernel_size[0], old.stride[0], **extras, **kwargs
        )
    except TypeError as err:
        raise ValueError(
            f"{name!r} cannot replace {site.name}.{conv_name} ({old}): it does not accept {sorted(extras)} ({err})."
        ) from err
    new = _match_reference(new, old)
    for attr in ("weight", "bias"):
        old_p, new_p = getattr(old, attr, None), getattr(new, attr, None)
        if isinstance(old_p, torch.Tensor) and isinstance(new_p, torch.Tensor) and old_p.shape == new_p.shape:
            with torch.no_grad():
                new_p.copy_(old_p)
    parent_name, _, leaf = conv_name.rpartition(".")
    parent = site.block.get_submodule(parent_name) if parent_name else site.block
    setattr(parent, leaf, new)
    return f"{site.name}.{conv_name}"


def attach(
    model: nn.Module,
    attention: str,
    *,
    stages: Sequence[int] = ALL_STAGES,
    position: str = "block",
    **attn_kwargs: Any,
) -> nn.Module:
    """Add a registered attention module to ``model`` in place and return the model.

    Args:
        model: torchvision ``ResNet`` (18–152, any norm layer) or a module holding its ``layer1``…``layer4``
            (e.g. a detector's ``backbone.body``), a timm ``ResNet``, or torchvision ``MobileNetV2``;
            pretrained or not (the families are :func:`cnnattn.models.adapters.list_adapters`). No original
            parameter is renamed or changed (except that a conv-kind attention of the same weight shape takes
            over the conv's weight, see module docs).
        attention: Registry name, e.g. ``'se'``, ``'cbam'``, ``'bam'`` (``cnnattn.list_attention()``).
        stages: Which of the four stages (1..4) receive attention.
        position: ``'block'``, ``'after_block'``, ``'stage'`` (gates) or ``'conv'`` (conv kinds).
        **attn_kwargs: Passed to every attention module's constructor.

    Returns:
        The same model, with ``model.cnnattn_placements`` recording what was attached where.

    Example::

        model = torchvision.models.resnet50()
        cnnattn.attach(model, "cbam", stages=(2, 3, 4))
    """
    info = get_attention_info(attention)
    stage_tuple = validate_placement(info.kind, stages, position, what=f"attention {attention!r}")
    check_keywords(attention, attn_kwargs)  # before any block changes
    adapter = find_adapter(model)
    all_stages = adapter.stages(model)
    record = Placement(attention, position, stage_tuple, dict(attn_kwargs))
    for stage in stage_tuple:
        sites = all_stages[stage - 1]
        if position == "conv":
            record.modules += [_replace_conv(s, c, attention, attn_kwargs) for s in sites for c in s.conv_names]
        else:
            targets = sites[-1:] if position == "stage" else sites
            record.modules += [_attach_gate(adapter, s, attention, position, attn_kwargs) for s in targets]
    placements = getattr(model, "cnnattn_placements", [])
    model.cnnattn_placements = [*placements, record]
    return model
