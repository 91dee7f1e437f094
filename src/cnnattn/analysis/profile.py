"""``cnnattn.profile``: parameters, executed MACs and dense-equivalent MACs, overall and per module.

Dense-equivalent MACs follow the paper-table convention for layers that compute something more cheaply
than its dense form (e.g. an explicit attention map applied separably): such a module defines
``dense_equivalent_macs(input, output) -> int``, the MACs of its dense computation for that call, and
the profile counts that instead of what it executed. For every other module the two counts are equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..utils import format_table
from .complexity import counted_forward

__all__ = ["ModuleCost", "Profile", "profile"]


@dataclass(frozen=True)
class ModuleCost:
    """Inclusive cost of one submodule (its children included)."""

    name: str
    type: str
    params: int
    macs: int
    dense_macs: int


@dataclass
class Profile:
    """Cost of one forward pass of ``batch_size`` images of ``input_size``."""

    params: int
    macs: int
    dense_macs: int
    input_size: tuple[int, ...]
    batch_size: int
    modules: list[ModuleCost] = field(default_factory=list)
    attention: list[str] = field(default_factory=list)

    def module(self, name: str) -> ModuleCost:
        """The cost of the submodule ``name`` (e.g. ``'layer1.0.attn'``)."""
        for cost in self.modules:
            if cost.name == name:
                return cost
        raise KeyError(f"no module {name!r} in this profile")

    @property
    def attention_params(self) -> int:
        return sum(self.module(n).params for n in self.attention)

    @property
    def attention_macs(self) -> int:
        return sum(self.module(n).macs for n in self.attention)

    def table(self, depth: int = 1) -> str:
        """Markdown table of the modules at most ``depth`` levels deep, plus attention and total rows."""
        rows = [
            (c.name, c.type, f"{c.params / 1e6:.3f}", f"{c.macs / 1e9:.4f}", f"{c.dense_macs / 1e9:.4f}")
            for c in self.modules
            if c.name.count(".") < depth
        ]
        if self.attention:
            rows.append(
                (
                    f"attention ({len(self.attention)} modules)",
                    "",
                    f"{self.attention_params / 1e6:.3f}",
                    f"{self.attention_macs / 1e9:.4f}",
                    "",
                )
            )
        rows.append(("total", "", f"{self.params / 1e6:.3f}", f"{self.macs / 1e9:.4f}", f"{self.dense_macs / 1e9:.4f}"))
        return format_table(("module", "type", "params (M)", "GMACs", "dense GMACs"), rows)

    def detector_parts(self) -> dict[str, dict[str, int]]:
        """A detector's ``backbone`` (``backbone.body``), ``fpn`` (``backbone.fpn``) and ``heads`` (the rest:
        RPN and RoI heads, or the one-stage head), each with params, MACs and dense-equivalent MACs."""
        body, fpn = self.module("backbone.body"), self.module("backbone.fpn")
        parts = {name: {"params": c.params, "macs": c.macs, "dense_macs": c.dense_macs} for name, c in
                 (("backbone", body), ("fpn", fpn))}  # fmt: skip
        parts["heads"] = {
            "params": self.params - body.params - fpn.params,
            "macs": self.macs - body.macs - fpn.macs,
            "dense_macs": self.dense_macs - body.dense_macs - fpn.dense_macs,
        }
        return parts

    def to_dict(self) -> dict:
        return asdict(self)


def _dense_deltas(model: nn.Module) -> tuple[dict[str, int], list[torch.utils.hooks.RemovableHandle]]:
    """Hooks recording, per module that defines it, dense-equivalent MACs of each call."""
    dense: dict[str, int] = {}
    handles = []
    for name, module in model.named_modules():
        if callable(getattr(module, "dense_equivalent_macs", None)):

            def hook(mod: nn.Module, args: tuple, output: torch.Tensor, name: str = name) -> None:
                dense[name] = dense.get(name, 0) + int(mod.dense_equivalent_macs(args[0], output))

            handles.append(module.register_forward_hook(hook))
    return dense, handles


@torch.no_grad()
def profile(model: nn.Module, input_size: Sequence[int] = (3, 224, 224), batch_size: int = 1) -> Profile:
    """Params, executed MACs and dense-equivalent MACs of ``model`` (run once in eval mode), per module too.

    Args:
        model: Any module taking a (B, *input_size) tensor.
        input_size: (C, H, W) of one input.
        batch_size: Images per forward pass (MACs scale with it; params do not).
    """
    if len(input_size) != 3 or not all(isinstance(v, int) and v > 0 for v in input_size):
        raise ValueError(f"profile: input_size must be (C, H, W) positive ints; got {tuple(input_size)!r}.")
    dense, handles = _dense_deltas(model)
    try:
        counter = counted_forward(model, input_size, batch_size)
    finally:
        for handle in handles:
            handle.remove()
    counts = counter.get_flop_counts()
    root = type(model).__name__
    executed = {
        name: sum(counts.get(f"{root}.{name}" if name else root, {}).values()) // 2 for name, _ in model.named_modules()
    }
    macs = counter.get_total_flops() // 2
    delta = {name: dense_macs - executed[name] for name, dense_macs in dense.items()}

    def dense_of(name: str) -> int:
        return executed[name] + sum(d for n, d in delta.items() if n == name or n.startswith(f"{name}."))

    modules = [
        ModuleCost(
            name, type(module).__name__, sum(p.numel() for p in module.parameters()), executed[name], dense_of(name)
        )
        for name, module in model.named_modules()
        if name
    ]
    attention = [n for p in getattr(model, "cnnattn_placements", []) for n in p.modules]
    return Profile(
        sum(p.numel() for p in model.parameters()),
        macs,
        macs + sum(delta.values()),
        tuple(input_size),
        batch_size,
        modules,
        attention,
    )
