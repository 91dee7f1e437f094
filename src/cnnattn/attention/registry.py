"""One registry for every attention module, with two kinds.

* ``gate``: shape-preserving ``x -> y`` (B, C, H, W) -> (B, C, H, W); built as ``factory(channels, **kwargs)``.
* ``conv``: replaces a k×k convolution (B, C_in, H, W) -> (B, C_out, H', W'); built as
  ``factory(in_channels, out_channels, kernel_size=3, stride=1, **kwargs)``.

Each entry also carries its default placement (``stages`` and ``position``) used by the model factory.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from torch import nn

__all__ = [
    "GATE_POSITIONS",
    "POSITIONS",
    "AttentionInfo",
    "accepted_keywords",
    "add_registry_listener",
    "check_keywords",
    "create_attention",
    "get_attention_info",
    "list_attention",
    "register_attention",
]

AttentionKind = Literal["gate", "conv"]
KINDS: tuple[str, ...] = ("gate", "conv")
GATE_POSITIONS: tuple[str, ...] = ("block", "after_block", "stage", "expansion")
POSITIONS: tuple[str, ...] = (*GATE_POSITIONS, "conv")
ALL_STAGES: tuple[int, ...] = (1, 2, 3, 4)


@dataclass(frozen=True)
class AttentionInfo:
    """A registry entry: the name, kind, one-line description and default placement of a module."""

    name: str
    kind: AttentionKind
    description: str
    factory: Callable[..., nn.Module]
    stages: tuple[int, ...] = ALL_STAGES
    position: str = "block"
    grouped: bool = True


_REGISTRY: dict[str, AttentionInfo] = {}
_LISTENERS: list[Callable[[AttentionInfo], None]] = []


def _first_doc_line(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def validate_placement(kind: str, stages: Sequence[int], position: str, *, what: str) -> tuple[int, ...]:
    """Check that ``position`` suits ``kind`` and ``stages`` lie in 1..4; return the stages as a tuple."""
    if position not in POSITIONS:
        raise ValueError(f"{what}: unknown position {position!r}; choose one of {POSITIONS}.")
    if kind == "gate" and position == "conv":
        raise ValueError(
            f"{what} is a gate (shape-preserving): place it at one of {GATE_POSITIONS}. "
            f"Position 'conv' replaces a k×k convolution and takes a conv-kind attention: "
            f"{[i.name for i in list_attention('conv')] or 'none registered'}."
        )
    if kind == "conv" and position != "conv":
        raise ValueError(
            f"{what} is a conv-kind attention (it replaces a k×k convolution): use position='conv', "
            f"not {position!r}. Gates for {GATE_POSITIONS}: {[i.name for i in list_attention('gate')]}."
        )
    try:
        stage_tuple = tuple(int(s) for s in stages)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: stages must be a sequence of integers in {ALL_STAGES}; got {stages!r}.") from None
    bad = [s for s in stage_tuple if s not in ALL_STAGES]
    if bad or not stage_tuple or len(set(stage_tuple)) != len(stage_tuple):
        raise ValueError(
            f"{what}: stages must be distinct values from {ALL_STAGES} (at least one); got {tuple(stages)!r}."
        )
    return tuple(sorted(stage_tuple))


def register_attention(
    name: str,
    *,
    kind: AttentionKind = "gate",
    description: str | None = None,
    stages: Sequence[int] = ALL_STAGES,
    position: str | None = None,
    grouped: bool = True,
    overwrite: bool = False,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding a module class (or factory function) to the registry under ``name``.

    Args:
        name: Registry name, lower case, e.g. ``'se'``. Used in model names (``resnet50_<name>``).
        kind: ``'gate'`` (factory takes ``channels``) or ``'conv'`` (factory takes ``in_channels,
            out_channels, kernel_size, stride``).
        description: One line for ``cnnattn list``; defaults to the first docstring line.
        stages: Default stages (1..4) used by the model factory.
        position: Default position; ``'block'`` for gates and ``'conv'`` for conv kinds when omitted.
        grouped: For conv kinds, whether the factory accepts ``groups`` (needed to replace depthwise convs,
            the only k×k convs of MobileNetV2); models it cannot build are not listed.
        overwrite: Replace an existing entry instead of raising.

    Example::

        @register_attention("myattn")
        class MyAttention(nn.Module):
            '''My gate.'''
            def __init__(self, channels: int): ...
    """
    if kind not in KINDS:
        raise ValueError(f"register_attention({name!r}): kind must be one of {KINDS}; got {kind!r}.")
    if not name or not name.replace("_", "").isalnum() or name != name.lower():
        raise ValueError(f"register_attention: name must be lower-case letters, digits and '_'; got {name!r}.")
    default_position = position or ("block" if kind == "gate" else "conv")
    stage_tuple = validate_placement(kind, stages, default_position, what=f"attention {name!r}")

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY and not overwrite:
            raise ValueError(f"attention {name!r} is already registered; pass overwrite=True to replace it.")
        info = AttentionInfo(
            name, kind, description or _first_doc_line(factory), factory, stage_tuple, default_position, grouped
        )
        _REGISTRY[name] = info
        for listener in _LISTENERS:
            listener(info)
        return factory

    return decorator


def add_registry_listener(listener: Callable[[AttentionInfo], None]) -> None:
    """Call ``listener(info)`` for every registered entry, now and on each future registration."""
    _LISTENERS.append(listener)
    for info in list(_REGISTRY.values()):
        listener(info)


def get_attention_info(name: str) -> AttentionInfo:
    """Return the registry entry for ``name``; ValueError listing the available names if unknown."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown attention {name!r}; available: {', '.join(sorted(_REGISTRY))}.") from None


def list_attention(kind: AttentionKind | None = None) -> list[AttentionInfo]:
    """All registry entries (optionally of one kind), sorted by kind then name."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"list_attention: kind must be one of {KINDS} or None; got {kind!r}.")
    infos = [i for i in _REGISTRY.values() if kind is None or i.kind == kind]
    return sorted(infos, key=lambda i: (KINDS.index(i.kind), i.name))


def _check_positive_int(value: object, arg: str, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"create_attention({name!r}): {arg} must be a positive int; got {value!r}.")


def accepted_keywords(info: AttentionInfo) -> list[str] | None:
    """The constructor keywords of a registered module beyond its channel arguments (``channels`` for gates,
    ``in_channels, out_channels, kernel_size, stride`` for conv kinds), or None where it takes any (``**kwargs``)."""
    try:
        parameters = list(inspect.signature(info.factory).parameters.values())
    except (TypeError, ValueError):  # a builtin or C extension without a signature: accept anything
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    named = [p.name for p in parameters if p.kind is not inspect.Parameter.VAR_POSITIONAL]
    if info.kind == "gate":
        return named[1:]
    return [n for n in named[2:] if n not in ("kernel_size", "stride")]


def check_keywords(name: str, kwargs: dict[str, object]) -> None:
    """ValueError naming the module, the keywords it does not take and those it does, for any unknown keyword."""
    info = get_attention_info(name)
    accepted = accepted_keywords(info)
    fixed = ("channels",) if info.kind == "gate" else ("in_channels", "out_channels", "kernel_size", "stride")
    unknown = [k for k in kwargs if accepted is not None and k not in accepted and k not in fixed]
    if unknown:
        source = getattr(info.factory, "func", info.factory)
        hint = " (a channel reduction r is rd_ratio=1/r)" if "reduction" in unknown and "rd_ratio" in accepted else ""
        raise ValueError(
            f"attention {name!r} ({getattr(source, '__qualname__', source)}) takes no keyword "
            f"{', '.join(map(repr, unknown))}; it takes: {', '.join(accepted) or 'no keywords'}{hint}."
        )


def create_attention(name: str, *args: object, **kwargs: object) -> nn.Module:
    """Build a registered attention module.

    Gates: ``create_attention(name, channels, **kwargs)``.
    Conv kinds: ``create_attention(name, in_channels, out_channels, kernel_size=3, stride=1, **kwargs)``.
    ValueError for an unknown name, bad channel arguments or a keyword the module does not take (naming the ones
    it does).
    """
    info = get_attention_info(name)
    check_keywords(name, kwargs)
    if info.kind == "gate":
        if len(args) != 1:
            raise ValueError(
                f"create_attention({name!r}) builds a gate: call it as "
                f"create_attention({name!r}, channels, **kwargs); got {len(args)} positional args."
            )
        _check_positive_int(args[0], "channels", name)
        return info.factory(*args, **kwargs)
    if not 2 <= len(args) <= 4:
        raise ValueError(
            f"create_attention({name!r}) builds a conv: call it as create_attention({name!r}, "
            "in_channels, out_channels, kernel_size=3, stride=1, **kwargs)."
        )
    defaults = (kwargs.pop("kernel_size", 3), kwargs.pop("stride", 1))
    in_channels, out_channels, kernel_size, stride = (*args, *defaults[len(args) - 2 :])
    for arg, value in (
        ("in_channels", in_channels),
        ("out_channels", out_channels),
        ("kernel_size", kernel_size),
        ("stride", stride),
    ):
        _check_positive_int(value, arg, name)
    return info.factory(in_channels, out_channels, kernel_size=kernel_size, stride=stride, **kwargs)
