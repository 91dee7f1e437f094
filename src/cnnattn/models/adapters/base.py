"""What every backbone adapter shares: block sites, attention slots on blocks, and the adapter registry.

An adapter knows one backbone family: which blocks form its four stages, and, for each block class,
where the block's last norm, its k×k convolutions and its output are. Attention goes into a block through
that block's *attention-aware* class, a subclass whose ``forward`` calls up to three slots (``None``
when empty), as timm's blocks call ``self.se``:

* ``attn``: on the output of the last norm, before the residual add (position ``block``);
* ``attn_post``: on the block's output, after the add and activation (position ``after_block``);
* ``attn_stage``: after ``attn_post``, on the last block of a stage (position ``stage``).

:meth:`BackboneAdapter.attention_block` switches a block to its attention-aware class in place (the
module, its parameters and its state-dict keys stay as they are), so attention is part of the module
tree and of ``forward``: SyncBatchNorm conversion, ``torch.compile``, ``torch.jit.script``, deepcopy,
pickling and module rebuilding (conv-BN fusion, norm replacement) all keep it.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import torch
from torch import nn

from ...fast_paths import residual_in_place

__all__ = [
    "BASIC_LAYOUT",
    "BOTTLENECK_LAYOUT",
    "SLOTS",
    "AttentionSlots",
    "BackboneAdapter",
    "BlockLayout",
    "BlockSite",
    "ResNetLayersAdapter",
    "backbone_stages",
    "find_adapter",
    "list_adapters",
    "register_adapter",
]

SLOTS: dict[str, str] = {"block": "attn", "after_block": "attn_post", "stage": "attn_stage"}


class AttentionSlots:
    """Mixin of attention-aware blocks: the three slots (``None`` until filled) and the post-block calls.

    Put it first in the bases, before the plain block class; the subclass's ``forward`` calls ``self.attn``
    after the last norm and returns ``self.post_block(out)``.
    """

    def init_slots(self) -> None:
        """Give every empty slot the value ``None`` (a plain attribute, no state-dict entry)."""
        for slot in SLOTS.values():
            if slot not in self._modules:  # type: ignore[attr-defined]
                setattr(self, slot, None)

    def attend_add(self, out: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        """``attn(out) + shortcut`` (``out + shortcut`` with the slot empty). A gate maps ``out`` to a tensor of the
        same shape; the block adds the shortcut, in place where :func:`cnnattn.fast_paths.residual_in_place` allows
        (torchvision's ``out += identity``)."""
        if self.attn is not None:
            out = self.attn(out)
        return out.add_(shortcut) if residual_in_place(out) else out + shortcut

    def post_block(self, out: torch.Tensor) -> torch.Tensor:
        """``attn_stage(attn_post(out))``, skipping empty slots."""
        if self.attn_post is not None:
            out = self.attn_post(out)
        if self.attn_stage is not None:
            out = self.attn_stage(out)
        return out


@dataclass(frozen=True)
class BlockLayout:
    """Where things are inside one block (paths relative to the block).

    Attributes:
        norm: The last norm of the main path, whose output the ``block`` position takes.
        convs: The k×k (k > 1) convolutions of the main path, which the ``conv`` position replaces.
        output_conv: The convolution whose ``out_channels`` is the block's output width.
    """

    norm: str
    convs: tuple[str, ...]
    output_conv: str


@dataclass(frozen=True)
class BlockSite:
    """One block of a stage and the places inside it where attention attaches.

    Attributes:
        name: Qualified module name of the block, e.g. ``'layer2.0'`` or ``'features.4'``.
        block: The block module.
        norm_name: Path (inside the block) of its last norm, the ``block`` position.
        conv_names: Paths (inside the block) of its k×k (k > 1) convolutions, the ``conv`` position.
        channels: Channels of the block's output.
        stride: Output stride of the block relative to the input image (timm's ``feature_info`` calls it
            ``reduction``; in cnnattn ``reduction`` is always a channel ratio).
    """

    name: str
    block: nn.Module
    norm_name: str
    conv_names: tuple[str, ...]
    channels: int
    stride: int


def block_stride(block: nn.Module) -> int:
    """The block's own ``stride`` attribute (ResNet blocks) or else the largest stride of its convolutions."""
    stride = getattr(block, "stride", None)
    if isinstance(stride, int):
        return stride
    return max((m.stride[0] for m in block.modules() if isinstance(m, nn.Conv2d)), default=1)


class BackboneAdapter(abc.ABC):
    """One backbone family. Subclasses set ``name`` and ``block_classes`` and implement three methods.

    ``block_classes`` maps each plain block class the family uses to its attention-aware subclass
    (which mixes in :class:`AttentionSlots`).
    """

    name: ClassVar[str]
    block_classes: ClassVar[dict[type[nn.Module], type[nn.Module]]]

    @abc.abstractmethod
    def matches(self, model: nn.Module) -> bool:
        """True if this adapter can place attention in ``model``."""

    @abc.abstractmethod
    def stage_blocks(self, model: nn.Module) -> list[list[tuple[str, nn.Module, int]]]:
        """The four stages, each a list of ``(qualified name, block, output stride)``."""

    @abc.abstractmethod
    def layout(self, block: nn.Module) -> BlockLayout:
        """Where the last norm, the k×k convs and the output conv of ``block`` are."""

    def plain_class(self, block: nn.Module) -> type[nn.Module] | None:
        """The family's plain block class of ``block`` (also for an attention-aware block), or None."""
        kind = type(block)
        for plain, aware in self.block_classes.items():
            if kind is plain or kind is aware:
                return plain
        return None

    def supports_block(self, block: nn.Module) -> bool:
        return self.plain_class(block) is not None

    def site(self, name: str, block: nn.Module, stride: int) -> BlockSite:
        layout = self.layout(block)
        channels = block.get_submodule(layout.output_conv).out_channels
        return BlockSite(name, block, layout.norm, layout.convs, channels, stride)

    def stages(self, model: nn.Module) -> list[list[BlockSite]]:
        """The :class:`BlockSite` of every block of the four stages."""
        return [[self.site(*entry) for entry in stage] for stage in self.stage_blocks(model)]

    def attention_block(self, block: nn.Module) -> nn.Module:
        """Switch ``block`` in place to its attention-aware class (no-op if it is one) and return it."""
        plain = self.plain_class(block)
        if plain is None:
            raise ValueError(f"{self.name}: unsupported block class {type(block).__qualname__}.")
        if not isinstance(block, AttentionSlots):
            block.__class__ = self.block_classes[plain]
            block.init_slots()  # type: ignore[attr-defined]
        return block


# The two ResNet block layouts, the same in torchvision and timm.
BASIC_LAYOUT = BlockLayout("bn2", ("conv1", "conv2"), "conv2")
BOTTLENECK_LAYOUT = BlockLayout("bn3", ("conv2",), "conv3")


class ResNetLayersAdapter(BackboneAdapter):
    """Families whose four stages are children ``layer1``…``layer4`` after a stride-4 stem (ResNets, and the
    bodies detectors cut from them, e.g. torchvision's ``IntermediateLayerGetter``). ``layouts`` maps each plain
    block class to its :class:`BlockLayout`."""

    layouts: ClassVar[dict[type[nn.Module], BlockLayout]]
    stem_stride: ClassVar[int] = 4

    def matches(self, model: nn.Module) -> bool:
        layers = [getattr(model, f"layer{i}", None) for i in range(1, 5)]
        return all(isinstance(layer, nn.Sequential) and len(layer) for layer in layers) and all(
            self.supports_block(block) for layer in layers for block in layer
        )

    def stage_blocks(self, model: nn.Module) -> list[list[tuple[str, nn.Module, int]]]:
        stages, stride = [], self.stem_stride
        for index in range(1, 5):
            stage = []
            for i, block in enumerate(getattr(model, f"layer{index}")):
                stride *= block_stride(block)
                stage.append((f"layer{index}.{i}", block, stride))
            stages.append(stage)
        return stages

    def layout(self, block: nn.Module) -> BlockLayout:
        return self.layouts[self.plain_class(block)]


_ADAPTERS: dict[str, BackboneAdapter] = {}
AdapterT = TypeVar("AdapterT", bound=type[BackboneAdapter])


def register_adapter(name: str) -> Callable[[AdapterT], AdapterT]:
    """Class decorator adding a :class:`BackboneAdapter` subclass to the registry under ``name``.

    Adapters are tried in registration order; the first whose ``matches(model)`` is true places attention.
    """

    def decorator(cls: AdapterT) -> AdapterT:
        if name in _ADAPTERS:
            raise ValueError(f"backbone adapter {name!r} is already registered.")
        cls.name = name
        _ADAPTERS[name] = cls()
        return cls

    return decorator


def list_adapters() -> list[BackboneAdapter]:
    """Every registered adapter, in the order they are tried."""
    return list(_ADAPTERS.values())


def find_adapter(model: nn.Module) -> BackboneAdapter:
    """The adapter for ``model``; ValueError naming the model class and the supported families if none."""
    for adapter in _ADAPTERS.values():
        if adapter.matches(model):
            return adapter
    raise ValueError(
        f"cannot place attention in {type(model).__module__}.{type(model).__qualname__}; supported backbone "
        f"families: {', '.join(_ADAPTERS)} (a new family is one adapter: see cnnattn.models.adapters)."
    )


def backbone_stages(model: nn.Module) -> list[list[BlockSite]]:
    """The blocks of each of the model's four stages; ValueError for an unsupported model."""
    return find_adapter(model).stages(model)
