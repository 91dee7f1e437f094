"""``capture``: what every attention module of a model applied in a forward pass, as named tensors.

    with cnnattn.capture(model) as maps:
        model(x)
    maps["layer4.1.attn_stage"]["gate"]      # DAS: (B, C, H, W) in (0, 1)

Each entry maps an attention module's qualified name to its parts (shapes per module below, B the batch):

========================  =====================================================================================
module                    parts
========================  =====================================================================================
se, eca                   ``channel`` (B, C, 1, 1) in (0, 1)
cbam                      ``channel`` (B, C, 1, 1), ``spatial`` (B, 1, H, W), both in (0, 1)
gc / gc_scale             ``spatial`` (B, 1, H, W) softmax over positions; ``context`` (B, C, 1, 1) added (gc) or
                          ``channel`` (B, C, 1, 1) gate in (0, 1) (gc_scale)
coord                     ``h`` (B, C, H, 1) and ``w`` (B, C, 1, W), in (0, 1)
nl                        ``rows`` (B, H, W): the attention of the query position over all positions (sums to 1)
bam                       ``channel`` (B, C, 1, 1), ``spatial`` (B, 1, H, W), ``map`` (B, C, H, W), in (0, 1)
triplet                   ``cw`` (B, C, 1, W), ``hc`` (B, C, H, 1), ``hw`` (B, 1, H, W), ``map`` (B, C, H, W)
das                       ``gate`` (B, C, H, W) in (0, 1), ``offsets`` (B, 2·G·k², H, W) in pixels ((dy, dx) per
                          tap), ``mask`` (B, G·k², H, W) when modulated
aa                        ``rows`` (B, heads, H, W): the query position's attention over the input (sums to 1)
eam                       ``rows`` (R, H, W): the Gaussian map at the query position; ``radius`` (R,) σ in pixels
aw                        ``stats`` (B, 4): mean, std, min, max of A; ``taps`` (B, k, k): mean |A| per kernel tap
========================  =====================================================================================

How: timm's modules are read from their own ``gate`` (and GC's ``conv_attn``/``mlp_add``) submodules as the
forward runs them; cnnattn's modules and timm's non-local block recompute their parts from the module's input
(``attention_parts``), with gradients off, BatchNorm statistics and the random generator restored, so the
model's outputs and state are exactly as without capture. Nothing is hooked outside the ``with`` block.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from functools import partial

import torch
import torch.nn.functional as F
from timm.layers.cbam import CbamModule
from timm.layers.coord_attn import CoordAttn
from timm.layers.eca import EcaModule
from timm.layers.global_context import GlobalContext
from timm.layers.non_local_attn import NonLocalAttn
from timm.layers.squeeze_excite import SEModule
from torch import nn

from ..attention.common import Query, query_index
from ..attention.registry import list_attention

__all__ = ["Maps", "attention_named_modules", "capture", "default_layer", "spatial_attention", "spatial_map"]

Maps = dict[str, dict[str, torch.Tensor]]
# Output transform of a hooked submodule: (output, module input) -> part.
Transform = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _same(output: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
    return output


def _channels(output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return output.reshape(x.shape[0], -1, 1, 1)


def _position_softmax(output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return F.softmax(output.flatten(1), dim=-1).view(x.shape[0], 1, *x.shape[-2:])


# timm modules: submodule -> the part names of its successive calls, and how to shape its output.
SUBMODULE_PARTS: dict[type, dict[str, tuple[tuple[str, ...], Transform]]] = {
    SEModule: {"gate": (("channel",), _same)},
    EcaModule: {"gate": (("channel",), _channels)},
    CbamModule: {"channel.gate": (("channel",), _same), "spatial.gate": (("spatial",), _same)},
    CoordAttn: {"gate": (("h", "w"), _same)},
    GlobalContext: {
        "conv_attn": (("spatial",), _position_softmax),
        "gate": (("channel",), _same),
        "mlp_add": (("context",), _same),
    },
}


def _non_local_parts(module: NonLocalAttn, x: torch.Tensor, query: Query) -> dict[str, torch.Tensor]:
    t, p = module.t(x).flatten(2), module.p(x).flatten(2)  # (B, C', HW)
    row = t[..., query_index(query, *x.shape[-2:])]  # (B, C')
    attention = F.softmax(torch.einsum("bc,bck->bk", row, p) * module.scale, dim=-1)
    return {"rows": attention.view(x.shape[0], *x.shape[-2:])}


RECOMPUTED: dict[type, Callable[[nn.Module, torch.Tensor, Query], dict[str, torch.Tensor]]] = {
    NonLocalAttn: _non_local_parts,
}


def _attention_types() -> tuple[type, ...]:
    """The registered attention classes, and the timm classes capture reads (cnnattn's SE and CBAM subclass
    timm's; a timm model built with ``attn_layer='cbam'`` holds timm's own)."""
    factories = (getattr(info.factory, "func", info.factory) for info in list_attention())
    return tuple({f for f in factories if isinstance(f, type)} | set(SUBMODULE_PARTS) | set(RECOMPUTED))


def attention_named_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(qualified name, module) of every attention module in ``model``: those ``attach`` recorded, else every
    module of a registered attention type (e.g. in a model built by hand)."""
    placed = [n for p in getattr(model, "cnnattn_placements", []) for n in p.modules]
    if placed:
        return [(n, model.get_submodule(n)) for n in placed]
    types = _attention_types()
    return [(n, m) for n, m in model.named_modules() if isinstance(m, types)]


@contextlib.contextmanager
def _state_kept(module: nn.Module, device: torch.device) -> Iterator[None]:
    """Run a recomputation without side effects: buffers (BatchNorm statistics) and RNG restored."""
    buffers = [(b, b.detach().clone()) for b in module.buffers()]
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        yield
    with torch.no_grad():
        for buffer, saved in buffers:
            buffer.copy_(saved)


def _recomputed(module: nn.Module) -> Callable[[nn.Module, torch.Tensor, Query], dict[str, torch.Tensor]] | None:
    """The recomputation of ``module``'s class or of its nearest base class in RECOMPUTED (cnnattn's non-local
    block subclasses timm's), or None."""
    return next((RECOMPUTED[cls] for cls in type(module).__mro__ if cls in RECOMPUTED), None)


def _recompute_hook(name: str, maps: Maps, query: Query, module: nn.Module, args: tuple, _: object) -> None:
    x = args[0]
    explain = getattr(module, "attention_parts", None)
    with _state_kept(module, x.device):
        parts = explain(x, query) if explain else _recomputed(module)(module, x, query)
    maps[name] = {k: v.detach() for k, v in parts.items()}


def _submodule_hook(
    name: str, maps: Maps, parts: tuple[str, ...], transform: Transform, calls: list[int], inputs: dict,
    module: nn.Module, args: tuple, output: torch.Tensor,
) -> None:  # fmt: skip
    index = calls[0] % len(parts)
    calls[0] += 1
    maps.setdefault(name, {})[parts[index]] = transform(output, inputs["x"]).detach()


def _hooks(name: str, module: nn.Module, maps: Maps, query: Query) -> list[torch.utils.hooks.RemovableHandle]:
    if callable(getattr(module, "attention_parts", None)) or _recomputed(module) is not None:
        return [module.register_forward_hook(partial(_recompute_hook, name, maps, query))]
    spec = next((SUBMODULE_PARTS[cls] for cls in type(module).__mro__ if cls in SUBMODULE_PARTS), None)
    if spec is None:
        raise TypeError(
            f"capture: no way to read {type(module).__name__} ({name}); give it an "
            "attention_parts(x, query) -> dict[str, Tensor] method."
        )
    inputs: dict[str, torch.Tensor] = {}

    def remember_input(_: nn.Module, args: tuple) -> None:
        inputs["x"] = args[0]
        for counter in counters:
            counter[0] = 0

    handles, counters = [module.register_forward_pre_hook(remember_input)], []
    for path, (parts, transform) in spec.items():
        sub = getattr_path(module, path)
        if sub is None:
            continue
        counters.append([0])
        hook = partial(_submodule_hook, name, maps, parts, transform, counters[-1], inputs)
        handles.append(sub.register_forward_hook(hook))
    return handles


def getattr_path(module: nn.Module, path: str) -> nn.Module | None:
    """``module.get_submodule(path)``, or None where it is absent or None (e.g. GC without ``mlp_add``)."""
    try:
        return module.get_submodule(path)
    except AttributeError:
        return None


@contextlib.contextmanager
def capture(model: nn.Module, query: Query = (0.5, 0.5)) -> Iterator[Maps]:
    """Record what each attention module of ``model`` applies during the forward passes inside the block.

    Args:
        model: Any model holding cnnattn or timm attention modules (placed by ``attach``, built by
            ``create_model``/``create_detector``, or loaded from a training checkpoint).
        query: (y, x) fractions of a map's height and width: the query position whose attention rows are
            recorded for non-local, AA and EAM modules (default: the centre).

    Yields:
        ``maps``: module name → part name → tensor (see the module docs), filled by each forward pass (a later
        pass overwrites an earlier one). The model's outputs are unchanged; hooks are removed on exit.
    """
    query_index(query, 1, 1)  # validates the fractions
    maps: Maps = {}
    handles = [h for name, module in attention_named_modules(model) for h in _hooks(name, module, maps, query)]
    try:
        yield maps
    finally:
        for handle in handles:
            handle.remove()


MIN_DEFAULT_SIDE = 4  # the default attention layer: the deepest whose map is at least this many pixels a side
PART_ORDER = ("map", "gate", "spatial", "rows", "hw")


def spatial_attention(parts: dict[str, torch.Tensor], batch: int) -> torch.Tensor | None:
    """One spatial map per image (B, H, W) from a module's captured parts: the full map or gate (channel
    mean), a spatial gate, attention rows (head/radius mean), coordinate attention's h ⊗ w; None for
    channel-only modules (SE, ECA) and AW, which have no spatial map."""
    if "h" in parts and "w" in parts:
        return (parts["h"] * parts["w"]).float().mean(dim=1)
    for key in PART_ORDER:
        if key not in parts:
            continue
        value = parts[key].float()
        if key == "rows" and value.ndim == 4:  # AA (B, heads, H, W)
            value = value.mean(dim=1)
        elif key == "rows" and value.shape[0] != batch:  # EAM (R, H, W): the same map for every sample
            value = value.mean(dim=0, keepdim=True).expand(batch, -1, -1)
        found = spatial_map(value)
        if found is not None:
            return found
    return None


def default_layer(maps: Maps, batch: int) -> str | None:
    """The layer ``cnnattn show`` draws by default: the deepest whose spatial map (:func:`spatial_attention`) is at
    least ``MIN_DEFAULT_SIDE`` pixels a side, else the one with the widest map; None if no module has one."""
    spatial = {n: m for n, parts in maps.items() if (m := spatial_attention(parts, batch)) is not None}
    if not spatial:
        return None
    large = [n for n, m in spatial.items() if min(m.shape[-2:]) >= MIN_DEFAULT_SIDE]
    return large[-1] if large else max(spatial, key=lambda n: spatial[n].shape[-1])


def spatial_map(part: torch.Tensor) -> torch.Tensor | None:
    """A captured part as one spatial map per image (B, H, W): channel mean of (B, C, H, W) or (B, 1, H, W)
    parts; None for parts without a spatial extent (channel gates (B, C, 1, 1), statistics)."""
    if part.ndim == 4 and min(part.shape[-2:]) > 1:
        return part.float().mean(dim=1)
    if part.ndim == 3 and min(part.shape[-2:]) > 1:
        return part.float()
    return None
