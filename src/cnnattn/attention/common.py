"""Pieces the attention modules share: timm's ``device``/``dtype`` factory keywords, the TorchScript refusal, and the
fused gate-and-shortcut product of residual blocks."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch
from torch import nn

__all__ = [
    "NotScriptable",
    "Query",
    "autocast_active",
    "capturing_graph",
    "exporting",
    "gated",
    "may_overwrite_temporaries",
    "query_index",
    "query_rows",
    "reference_arithmetic",
    "reference_arithmetic_active",
    "samples_per_call",
    "spatial_conv_input",
    "to_factory",
]  # fmt: skip

Query = tuple[float, float]  # (y, x) as fractions of the output grid's height and width, in [0, 1]


def to_factory(module: nn.Module, device: torch.device | str | None, dtype: torch.dtype | None) -> None:
    """Move a freshly built module's parameters and buffers to ``device``/``dtype`` (no-op when both are None).

    Every cnnattn attention accepts these keywords, as timm's layers do, so any of them can serve as timm's
    ``attn_layer`` (timm builds it as ``attn_layer(channels, device=..., dtype=...)``).
    """
    if device is not None or dtype is not None:
        module.to(device=device, dtype=dtype)


class NotScriptable:
    """Mixin: ``torch.jit.script`` on a model holding this module fails at once, naming the paths that work."""

    def __prepare_scriptable__(self) -> nn.Module:
        raise RuntimeError(
            f"{type(self).__name__} cannot be compiled by torch.jit.script (its forward uses Python that "
            "TorchScript lacks); use torch.jit.trace, torch.export.export, torch.compile or ONNX export instead."
        )


def gated(
    x: torch.Tensor, multiplier: torch.Tensor, shortcut: torch.Tensor | None = None, scratch: str = ""
) -> torch.Tensor:
    """``x ⊙ multiplier``, plus ``shortcut`` when given, in one pass (``torch.addcmul``).

    The contract of gates that fuse a residual block's shortcut: their class sets ``fuses_shortcut = True`` and
    their ``forward(x, shortcut=None)`` returns ``gated(x, multiplier, shortcut)``, so a block calls
    ``attn(out, shortcut)`` (hooks and all) and never materialises the gated tensor before adding the shortcut:
    one full-size write and read fewer per block. ``multiplier`` broadcasts against ``x`` (B, C, H, W).

    Where autograd records, the product is formed and the shortcut added into it in place instead: ``addcmul``'s
    backward multiplies each full-size factor by its scalar ``value`` (two full-size passes per block), ``mul``'s
    does not, and the in-place add costs one pass over memory already written.

    ``scratch`` (``"x"`` or ``"multiplier"``) names a full-size factor that is the caller's own temporary: without a
    shortcut, where :func:`may_overwrite_temporaries`, the product is written into it in place (no fresh full-size
    tensor, the same one pass). With a shortcut, ``addcmul``'s one pass stays: a product and an add in place
    measured 1.04× slower in ResNet-50 inference, although a single gate ran faster so (docs/benchmarks.md).
    """
    if shortcut is None and scratch and may_overwrite_temporaries():
        return multiplier.mul_(x) if scratch == "multiplier" else x.mul_(multiplier)
    if shortcut is None:
        return x * multiplier
    if torch.is_grad_enabled():
        return torch.mul(x, multiplier).add_(shortcut)
    return torch.addcmul(shortcut, x, multiplier)


def may_overwrite_temporaries() -> bool:
    """Whether a module may write into its own full-size temporaries in place: in eager inference (no autograd),
    outside graph capture and compilers, whose graphs stay free of in-place writes; never under TorchScript."""
    if torch.jit.is_scripting():
        return False
    return _may_overwrite_temporaries_eager()


@torch.jit.unused
def _may_overwrite_temporaries_eager() -> bool:
    return not (torch.is_grad_enabled() or capturing_graph() or torch.compiler.is_compiling())


def spatial_conv_input(pooled: torch.Tensor) -> torch.Tensor:
    """The pooled maps a spatial gate convolves to one channel, (B, 2, P, Q), in the layout that convolution is
    fastest in: channels-last on CPU where a gradient is recorded, else as given. oneDNN's input gradient of a
    convolution with one output channel is 3-4× faster channels-last (7×7 on (8, 2, 256, 40): forward and backward
    41 → 11 ms, one thread; docs/benchmarks.md), while its forward alone is as fast or slower. The one-channel output is
    contiguous either way. TorchScript and captured graphs (export, tracing) keep the given layout."""
    if torch.jit.is_scripting():
        return pooled
    return _spatial_conv_input_eager(pooled)


@torch.jit.unused
def _spatial_conv_input_eager(pooled: torch.Tensor) -> torch.Tensor:
    if capturing_graph() or not (torch.is_grad_enabled() and pooled.requires_grad and pooled.device.type == "cpu"):
        return pooled
    return pooled.contiguous(memory_format=torch.channels_last)


def exporting() -> bool:
    """Inside ``torch.export`` (ONNX's exporter too) or ``torch.jit.trace``: where a module must take one
    shape-independent path, so that batch and size stay symbolic and every op has an ONNX form."""
    return torch.compiler.is_exporting() or torch.jit.is_tracing()


def samples_per_call(x: torch.Tensor, bytes_per_sample: int, budget: int | None) -> int:
    """How many samples of ``x`` (B, ...) one call takes so that its temporaries of ``bytes_per_sample`` each fit
    ``budget`` bytes (at least one): on CPU, where large temporaries cost a fresh page fault per write and fall out
    of cache. All of them where ``budget`` is None, off the CPU, and when exported or traced (the batch stays
    symbolic)."""
    if budget is None or x.device.type != "cpu" or exporting():
        return x.shape[0]
    return max(1, min(x.shape[0], budget // max(1, bytes_per_sample)))


def capturing_graph() -> bool:
    """Exporting (:func:`exporting`) or tracing with ``torch.fx`` (timm's feature extraction too), where shapes and
    devices are symbols that a Python branch cannot read. (``is_fx_symbolic_tracing``, not ``is_fx_tracing``: the
    latter logs a warning on every first call, into every user's output.)"""
    return exporting() or torch.fx._symbolic_trace.is_fx_symbolic_tracing()


def autocast_active() -> bool:
    """Whether autocast (CPU or CUDA) is on. A Python bool, False while ``torch.fx`` traces, so a branch on it keeps
    models traceable. Used where a computation must run in float32 under autocast (attention logits, whose products
    of large activations lose too many digits in bfloat16 and overflow float16)."""
    return torch.is_autocast_enabled("cpu") or torch.is_autocast_enabled("cuda")


_COUNTING = threading.local()


@contextlib.contextmanager
def reference_arithmetic() -> Iterator[None]:
    """Inside, modules whose fast path does extra arithmetic (zero padding, one-hot products, as AA's fused
    attention) run their reference formulation instead, so that a FLOP counter counts the algorithm's MACs and
    not the kernel's. ``cnnattn.profile`` counts inside it; outputs are equal either way (up to rounding)."""
    previous = getattr(_COUNTING, "active", False)
    _COUNTING.active = True
    try:
        yield
    finally:
        _COUNTING.active = previous


def reference_arithmetic_active() -> bool:
    """Whether :func:`reference_arithmetic` is on (in this thread)."""
    return getattr(_COUNTING, "active", False)


def query_index(query: Query, height: int, width: int) -> int:
    """Flat index on a (height, width) grid of the position at fractions ``query`` = (y, x) in [0, 1]."""
    fy, fx = query
    if not (0 <= fy <= 1 and 0 <= fx <= 1):
        raise ValueError(f"query must be (y, x) fractions of the map in [0, 1], e.g. (0.5, 0.5); got {query}.")
    return min(int(fy * height), height - 1) * width + min(int(fx * width), width - 1)


def query_rows(rows: torch.Tensor, out_size: tuple[int, int], in_size: tuple[int, int], query: Query) -> torch.Tensor:
    """One query's attention over the input: rows (..., H'·W', H·W) → (..., H, W) at ``query`` on the H'×W' grid."""
    return rows[..., query_index(query, *out_size), :].unflatten(-1, in_size)
