"""What every backbone adapter shares: block sites, attention slots on blocks, and the adapter registry.

An adapter knows one backbone family: which blocks form its four stages (found by type, never by comparing
names or by stride alone), and, for each block class, where the end of its residual branch, its k×k
convolutions, its output width and its expansion point are. Attention goes into a block through that block's
*attention-aware* class, a subclass whose ``forward`` calls up to four slots (``None`` when empty), as timm's
blocks call ``self.se``:

* ``attn``: at the end of the residual branch, before the add (position ``block``);
* ``attn_post``: on the block's output, after the add and activation (position ``after_block``);
* ``attn_stage``: after ``attn_post``, on the last block of a stage (position ``stage``);
* ``attn_exp``: after the spatial conv at mid width, the built-in SE's spot (position ``expansion``).

:meth:`BackboneAdapter.attention_block` switches a block to its attention-aware class in place (the
module, its parameters and its state-dict keys stay as they are), so attention is part of the module
tree and of ``forward``: SyncBatchNorm conversion, ``torch.compile``, ``torch.jit.script``, deepcopy,
pickling and module rebuilding (conv-BN fusion, norm replacement) all keep it.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from ...fast_paths import residual_in_place

__all__ = [
    "BASIC_LAYOUT",
    "BLOCK_POSITIONS",
    "BOTTLENECK_LAYOUT",
    "GATE_SLOTS",
    "SLOTS",
    "AttentionSlots",
    "BackboneAdapter",
    "BlockLayout",
    "BlockSite",
    "GroupedBlocksAdapter",
    "ResNetLayersAdapter",
    "backbone_stages",
    "block_stride",
    "children_named",
    "feature_levels",
    "find_adapter",
    "group_by_levels",
    "group_by_parent",
    "list_adapters",
    "module_width",
    "nominal_strides",
    "qualify",
    "register_adapter",
    "resolve_module",
    "spatial_convs",
    "unsupported_block",
]

SLOTS: dict[str, str] = {"block": "attn", "after_block": "attn_post", "stage": "attn_stage", "expansion": "attn_exp"}
GATE_SLOTS = tuple(SLOTS.values())


class AttentionSlots:
    """Mixin of attention-aware modules: the slots (``None`` until filled) and the post-block calls.

    Put it first in the bases, before the plain block class; the subclass's ``forward`` calls ``self.attn``
    at the end of the residual branch (and ``self.attn_exp`` at mid width, where the block has an expansion
    point) and returns ``self.post_block(out)``.
    """

    def init_slots(self) -> None:
        """Give every empty slot the value ``None`` (a plain attribute, no state-dict entry); ValueError if the
        plain block already owns an attribute of a slot's name (timm's ByobNet, CSPNet and NFNet blocks own
        ``attn``)."""
        for slot in GATE_SLOTS:
            if hasattr(self, slot):
                raise ValueError(
                    f"{type(self).__qualname__} already has an attribute {slot!r}: cnnattn cannot add its slot of "
                    "that name; place attention at position='stage' (the feature_info fallback) instead."
                )
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
        branch_end: The module whose output the ``block`` slot receives (the end of the residual branch: the last
            norm in ResNets, the layer-scale multiply after ``mlp`` in ConvNeXt; documentation only).
        convs: The k×k (k > 1) convolutions of the main path, which the ``conv`` position replaces.
        width: The module whose ``out_channels`` (conv), ``out_features`` (linear) or ``num_features`` (norm)
            is the block's output width.
        expansion: The module whose output the ``expansion`` slot receives (after the spatial conv, at mid width:
            the built-in SE's spot), or None where the block has no such point.
        builtin: The block's own attention at the expansion point (timm's ``se``), which ``replace_builtin``
            swaps out, or None.
    """

    branch_end: str
    convs: tuple[str, ...]
    width: str
    expansion: str | None = None
    builtin: str | None = None


@dataclass(frozen=True)
class BlockSite:
    """One block of a stage and the places inside it where attention attaches.

    Attributes:
        name: Qualified module name of the block, e.g. ``'layer2.0'`` or ``'features.4'``.
        block: The block module.
        branch_end: Path (inside the block) of the module ending the residual branch (position ``block``).
        conv_names: Qualified names (from the model) of its k×k (k > 1) convolutions, the ``conv`` position.
        channels: Channels of the block's output.
        stride: Output stride of the block relative to the input image (timm's ``feature_info`` calls it
            ``reduction``; in cnnattn ``reduction`` is always a channel ratio).
        expansion_channels: Width at the block's expansion point, or None if it has none.
        builtin: Qualified name of the block's own attention at the expansion point, or None.
    """

    name: str
    block: nn.Module
    branch_end: str
    conv_names: tuple[str, ...]
    channels: int
    stride: int
    expansion_channels: int | None = None
    builtin: str | None = None


def block_stride(block: nn.Module) -> int:
    """The block's own ``stride`` attribute (ResNet blocks) or else the largest stride of its convolutions."""
    stride = getattr(block, "stride", None)
    if isinstance(stride, int):
        return stride
    return max((m.stride[0] for m in block.modules() if isinstance(m, nn.Conv2d)), default=1)


def module_width(module: nn.Module) -> int:
    """Output channels of a conv (``out_channels``), linear (``out_features``) or norm (``num_features``)."""
    for attr in ("out_channels", "out_features", "num_features"):
        if isinstance(width := getattr(module, attr, None), int):
            return width
    raise ValueError(f"cannot tell the output width of {type(module).__qualname__}.")


def qualify(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix and name else prefix or name


def spatial_convs(module: nn.Module) -> tuple[str, ...]:
    """Paths (inside ``module``) of its ``nn.Conv2d`` layers with a kernel larger than 1×1, in order."""
    return tuple(n for n, m in module.named_modules() if isinstance(m, nn.Conv2d) and max(m.kernel_size) > 1)


BLOCK_POSITIONS = ("block", "after_block", "stage", "conv")


class BackboneAdapter(abc.ABC):
    """One backbone family. Subclasses set ``name`` and ``block_classes`` and implement three methods.

    ``block_classes`` maps each plain block class the family uses to its attention-aware subclass
    (which mixes in :class:`AttentionSlots`); ``positions`` lists the positions the family has.
    """

    name: ClassVar[str]
    block_classes: ClassVar[dict[type[nn.Module], type[nn.Module]]]
    positions: ClassVar[tuple[str, ...]] = BLOCK_POSITIONS
    fallback: ClassVar[bool] = False  # tried after every other adapter

    @abc.abstractmethod
    def matches(self, model: nn.Module) -> bool:
        """True if this adapter can place attention in ``model``."""

    @abc.abstractmethod
    def stage_blocks(self, model: nn.Module) -> list[list[tuple[str, nn.Module, int]]]:
        """The four stages, each a list of ``(qualified name, block, output stride)``."""

    @abc.abstractmethod
    def layout(self, block: nn.Module) -> BlockLayout:
        """Where the branch end, the k×k convs, the output width and the expansion point of ``block`` are."""

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
        channels = module_width(block.get_submodule(layout.width))
        expansion = None if layout.expansion is None else module_width(block.get_submodule(layout.expansion))
        convs = tuple(qualify(name, c) for c in layout.convs)
        builtin = None if layout.builtin is None else qualify(name, layout.builtin)
        return BlockSite(name, block, layout.branch_end, convs, channels, stride, expansion, builtin)

    def stages(self, model: nn.Module) -> list[list[BlockSite]]:
        """The :class:`BlockSite` of every block of the four stages."""
        return [[self.site(*entry) for entry in stage] for stage in self.stage_blocks(model)]

    def check_position(self, model: nn.Module, position: str) -> None:
        """ValueError naming the family's positions if it has no ``position``."""
        if position not in self.positions:
            raise ValueError(
                f"backbone family {self.name!r} has no position {position!r}; it has {', '.join(self.positions)}."
            )

    def default_position(self, position: str) -> str:
        """The family's stand-in for an attention's registry default ``position``: the position itself where the
        family has it, else the nearest gate position it has (VGG: ``after_block``; DenseNet: ``stage``)."""
        if position in self.positions:
            return position
        return next((p for p in ("block", "after_block", "stage") if p in self.positions), position)

    def slot_owner(self, model: nn.Module, site: BlockSite, position: str) -> tuple[str, str]:
        """``(qualified name of the module holding the slot, slot attribute)`` for ``position`` at ``site``."""
        return site.name, SLOTS[position]

    def attention_block(self, block: nn.Module) -> nn.Module:
        """Switch ``block`` in place to its attention-aware class (no-op if it is one) and return it."""
        plain = self.plain_class(block)
        if plain is None:
            raise ValueError(f"{self.name}: unsupported block class {type(block).__qualname__}.")
        if not isinstance(block, AttentionSlots):
            aware = self.block_classes[plain]
            aware.init_slots(block)  # type: ignore[attr-defined]  (checks names before the switch)
            block.__class__ = aware
            self.prepare(block)
        return block

    def prepare(self, block: nn.Module) -> None:  # noqa: B027  (a hook; most families need nothing)
        """Set what the attention-aware ``forward`` of a just-switched block needs (default: nothing)."""


# The two ResNet block layouts, the same in torchvision and timm.
BASIC_LAYOUT = BlockLayout("bn2", ("conv1", "conv2"), "conv2")
BOTTLENECK_LAYOUT = BlockLayout("bn3", ("conv2",), "conv3")


def children_named(module: nn.Module, prefix: str, classes: tuple[type[nn.Module], ...]) -> list[tuple[str, nn.Module]]:
    """``(qualified name, module)`` of every descendant of one of ``classes``, in registration order, not looking
    inside the modules found."""
    found: list[tuple[str, nn.Module]] = []

    def walk(parent: nn.Module, path: str) -> None:
        for child_name, child in parent.named_children():
            name = qualify(path, child_name)
            if isinstance(child, classes):
                found.append((name, child))
            else:
                walk(child, name)

    walk(module, prefix)
    return found


def group_by_parent(blocks: list[tuple[str, nn.Module]]) -> list[list[tuple[str, nn.Module]]]:
    """Blocks grouped by the module that holds them (a stage's ``blocks`` Sequential), in order."""
    groups: dict[str, list[tuple[str, nn.Module]]] = {}
    for name, block in blocks:
        groups.setdefault(name.rpartition(".")[0], []).append((name, block))
    return list(groups.values())


def nominal_strides(stages: list[list[tuple[str, nn.Module]]]) -> list[list[tuple[str, nn.Module, int]]]:
    """Four stages of blocks with their nominal strides 4, 8, 16 and 32; ValueError unless there are four."""
    if len(stages) != 4:
        raise ValueError(f"expected 4 stages of blocks; found {len(stages)} ({[s[0][0] for s in stages if s]}).")
    return [[(name, block, 4 << index) for name, block in stage] for index, stage in enumerate(stages)]


def feature_levels(model: nn.Module) -> list[dict[str, Any]]:
    """timm's ``feature_info`` of ``model`` as a list of dicts (``module``, ``num_chs``, ``reduction``), or []."""
    info = getattr(model, "feature_info", None)
    levels = list(getattr(info, "info", info) or ())
    return [level for level in levels if isinstance(level, dict) and "module" in level]


def resolve_module(model: nn.Module, name: str) -> str | None:
    """``name`` or its ``features_only`` spelling (timm's ``FeatureListNet`` joins the top path with ``_``), or
    None if ``model`` has neither."""
    head, _, tail = name.partition(".")
    for candidate in dict.fromkeys((name, f"{head}_{tail}" if tail else name, name.replace(".", "_"))):
        try:
            model.get_submodule(candidate)
        except AttributeError:
            continue
        return candidate
    return None


def group_by_levels(model: nn.Module, blocks: list[tuple[str, nn.Module]]) -> list[list[tuple[str, nn.Module]]] | None:
    """Blocks grouped by the model's last four ``feature_info`` levels (each level ends at its module, in
    registration order; blocks up to the level before them are the stem), or None without such levels."""
    levels = feature_levels(model)
    names = [resolve_module(model, level["module"]) for level in levels]
    if len(levels) < 4 or None in names:
        return None
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    ends = [max(i for n, i in order.items() if n == name or n.startswith(f"{name}.")) for name in names]
    stem_end, stage_ends = (ends[-5] if len(ends) > 4 else -1), ends[-4:]
    stages: list[list[tuple[str, nn.Module]]] = [[] for _ in stage_ends]
    for name, block in blocks:
        position = order[name]
        level = next((k for k, end in enumerate(stage_ends) if position <= end), None)
        if position > stem_end and level is not None:
            stages[level].append((name, block))
    return stages


class GroupedBlocksAdapter(BackboneAdapter):
    """Families whose four stages are the four modules holding their blocks (timm's ``stages.i.blocks`` or
    ``s1``…``s4``, torchvision's ``features.1/3/5/7`` or ``trunk_output.block1``…``4``), found by block type: the
    classifier, its ``features_only`` wrapper and a detector body alike."""

    def _stages(self, model: nn.Module) -> list[list[tuple[str, nn.Module]]]:
        return group_by_parent(children_named(model, "", tuple(self.block_classes)))

    def matches(self, model: nn.Module) -> bool:
        return len(self._stages(model)) == 4

    def stage_blocks(self, model: nn.Module) -> list[list[tuple[str, nn.Module, int]]]:
        return nominal_strides(self._stages(model))


class ResNetLayersAdapter(BackboneAdapter):
    """Families whose four stages are children ``layer1``…``layer4`` after a stride-4 stem (ResNets, and the
    bodies detectors cut from them, e.g. torchvision's ``IntermediateLayerGetter``). ``layouts`` maps each plain
    block class to its :class:`BlockLayout`."""

    layouts: ClassVar[dict[type[nn.Module], BlockLayout]]
    stem_stride: ClassVar[int] = 4

    @staticmethod
    def layers(model: nn.Module) -> list[nn.Module | None]:
        return [getattr(model, f"layer{i}", None) for i in range(1, 5)]

    def matches(self, model: nn.Module) -> bool:
        layers = self.layers(model)
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

    Adapters are tried in registration order (those with ``fallback = True`` last); the first whose
    ``matches(model)`` is true places attention.
    """

    def decorator(cls: AdapterT) -> AdapterT:
        if name in _ADAPTERS:
            raise ValueError(f"backbone adapter {name!r} is already registered.")
        cls.name = name
        _ADAPTERS[name] = cls()
        return cls

    return decorator


def list_adapters() -> list[BackboneAdapter]:
    """Every registered adapter, in the order they are tried: registration order, fallbacks last."""
    return sorted(_ADAPTERS.values(), key=lambda adapter: adapter.fallback)


def unsupported_block(model: nn.Module) -> str:
    """A clause naming the first block of a ``layer1``…``layer4`` model that no adapter knows, or ''."""
    for index, layer in enumerate(ResNetLayersAdapter.layers(model), start=1):
        for i, block in enumerate(layer if isinstance(layer, nn.Sequential) else ()):
            if not any(a.supports_block(block) for a in _ADAPTERS.values()):
                kind = f"{type(block).__module__}.{type(block).__qualname__}"
                return f" (its block layer{index}.{i} is a {kind}, a class no adapter knows)"
    return ""


def find_adapter(model: nn.Module) -> BackboneAdapter:
    """The adapter for ``model``; ValueError naming the model class and the supported families if none."""
    for adapter in list_adapters():
        if adapter.matches(model):
            return adapter
    kind = type(model)
    raise ValueError(
        f"cannot place attention in {kind.__module__}.{kind.__qualname__}{unsupported_block(model)}; supported "
        f"backbone families: {', '.join(a.name for a in list_adapters())} (a new family is one adapter: see "
        "cnnattn.models.adapters)."
    )


def backbone_stages(model: nn.Module) -> list[list[BlockSite]]:
    """The blocks of each of the model's four stages; ValueError for an unsupported model."""
    return find_adapter(model).stages(model)
