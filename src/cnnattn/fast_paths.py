"""Every fast path's switch, tuned thresholds and predicates, in one place (as timm's ``layers/config.py``).

Each module's ``forward`` computes its reference formula; where a faster formulation of the same numbers exists
(a layout, a chunked batch, a fused reduction, an in-place write into the module's own temporary), the module asks
this module whether to take it. One switch turns every fast path off:

>>> import cnnattn
>>> cnnattn.set_fast_paths(False)   # every module runs its reference formula; CNNATTN_FAST_PATHS=0 does the same

Outputs are equal either way up to float rounding (tested for every registered attention and the deformable op).
The thresholds are per device type (:func:`tuning`); those for the CPU were measured on a 2-core AMD EPYC with the
scripts under ``benchmarks/`` (docs/benchmarks.md). TorchScript runs the reference formulas (its blocks add
the shortcut in place where no gradient is recorded, as torchvision's do).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import torch

__all__ = [
    "Tuning",
    "aw_factored_is_faster",
    "capturing_graph",
    "compiling",
    "dsc_channels_last",
    "exporting",
    "fast_paths",
    "fast_paths_enabled",
    "may_overwrite_temporaries",
    "reference_arithmetic",
    "reference_arithmetic_active",
    "residual_in_place",
    "samples_per_call",
    "set_fast_paths",
    "spatial_conv_input",
    "tuning",
]  # fmt: skip


@dataclass(frozen=True)
class Tuning:
    """The thresholds of the fast paths on one device type (sizes in pixels of a map, budgets in bytes).

    Attributes:
        dsc_channels_last_min_pixels: DAS runs its depthwise-separable conv channels-last on maps of at least this
            many pixels (None: never).
        deform_single_gemm_max_pixels: the sampled deformable conv multiplies all samples' columns in one GEMM on
            output maps of at most this many pixels, else one GEMM per sample.
        deform_max_chunk_bytes: largest sampled-column buffer of one call of the sampled deformable conv without
            autograd (the batch is split to fit).
        aw_bmm_max_pixels: AW convolves per-sample kernels as unfold + batched matmul on output maps of at most
            this many pixels, else as a batch-grouped conv.
        aw_max_kernel_bytes: ``(training, inference)``: AW forms at most this many bytes of per-sample kernels per
            call (None: the whole batch).
        aw_train_max_samples: with autograd, AW's batch-grouped conv takes at most this many samples per call (None:
            as ``aw_max_kernel_bytes`` allows).
        aw_per_sample_min_kernel_bytes: ``(training, inference)``: AW convolves sample by sample, forming each kernel
            just before its convolution, where one sample's kernel has at least this many bytes (None: never).
        aw_factored_max_pixels: ``(least C_in·C_out, least batch, max pixels when training, max pixels at
            inference)`` rows, the first that a layer's width and batch reach decides where AW's ``impl='auto'``
            takes the factored path (empty: never).
        aw_factored_train_max_bytes: with autograd, AW's factored path takes as many samples per call as fit this
            many bytes of its per-tap, per-factor products (k²·C·R·H'·W' values per sample; None: the whole batch).
        aa_max_attention_bytes: AA's fused attention takes at most this many bytes of augmented q/k/v per call
            (None: the whole batch).
        spatial_conv_channels_last: spatial gates' 2→1 convolutions read their pooled maps channels-last where a
            gradient is recorded.
    """

    dsc_channels_last_min_pixels: int | None
    deform_single_gemm_max_pixels: int
    deform_max_chunk_bytes: int
    aw_bmm_max_pixels: int
    aw_max_kernel_bytes: tuple[int, int] | None
    aw_train_max_samples: int | None
    aw_per_sample_min_kernel_bytes: tuple[int, int] | None
    aw_factored_max_pixels: tuple[tuple[int, int, int, int], ...]
    aw_factored_train_max_bytes: int | None
    aa_max_attention_bytes: int | None
    spatial_conv_channels_last: bool


CPU = Tuning(
    dsc_channels_last_min_pixels=32 * 32,  # oneDNN's depthwise conv: several times faster channels-last from 32×32
    deform_single_gemm_max_pixels=128,  # one GEMM wins at 7×7, ties at 14×14, loses at 56×56
    deform_max_chunk_bytes=512 * 2**20,
    aw_bmm_max_pixels=64,  # unfold + bmm wins at 7×7, the batch-grouped conv from 14×14
    # inference: 2 MiB in fresh processes 0.85-0.95x the time of 8 MiB at 128 @28², batch 8-32; warm, a tie
    aw_max_kernel_bytes=(8 * 2**20, 2 * 2**20),
    # training, samples per call, interleaved: 64→64 @56², batch 64, 4: 271-273 ms, 16: 283-324; batch 32, 4: 118-121,
    # 16: 129-130; 128→128 @28², batch 8, 4: 30-31, 8 (all): 36-38; at 128 ch, batch 32-64, 4, 8 and 16 tie
    aw_train_max_samples=4,
    aw_per_sample_min_kernel_bytes=(8 * 2**20, 2**20),  # benchmarks/awconv.py speed (docs/benchmarks.md)
    # 512→512 @7², training, batch 2-64: factored 0.84-0.93× the per-sample path's time; batch 1: 1.28×
    aw_factored_max_pixels=(
        (512 * 512, 2, 49, 16),
        (512 * 512, 1, 25, 16),
        (256 * 256, 1, 16, 16),
        (128 * 128, 1, 9, 9),
        (0, 1, 9, 1),
    ),
    # 512→512 @7², training: 8 samples (29 MB) per call vs the whole batch, 1.18× faster at batch 16, 1.12× at 32,
    # 1.19× at 64 (a whole batch's products, 115 MB at 32, land on freshly faulted pages); 4 per call slower than 8
    aw_factored_train_max_bytes=32 * 2**20,
    aa_max_attention_bytes=16 * 2**20,  # as fast as one call at half the peak memory (docs/benchmarks.md)
    spatial_conv_channels_last=True,  # oneDNN's input gradient of a 1-channel conv: 3-4× faster channels-last
)
# Other devices (CUDA): not yet measured; the batch is never split and layouts are left as they are.
DEFAULT = Tuning(
    dsc_channels_last_min_pixels=None,
    deform_single_gemm_max_pixels=128,
    deform_max_chunk_bytes=512 * 2**20,
    aw_bmm_max_pixels=64,
    aw_max_kernel_bytes=None,
    aw_train_max_samples=None,
    aw_per_sample_min_kernel_bytes=None,
    aw_factored_max_pixels=(),
    aw_factored_train_max_bytes=None,
    aa_max_attention_bytes=None,
    spatial_conv_channels_last=False,
)
TUNINGS: dict[str, Tuning] = {"cpu": CPU}


def tuning(device: torch.device | str) -> Tuning:
    """The thresholds in force on ``device``'s type (``DEFAULT`` for types without measurements of their own)."""
    return TUNINGS.get(torch.device(device).type, DEFAULT)


_STATE = {"enabled": os.environ.get("CNNATTN_FAST_PATHS", "1").strip().lower() not in ("0", "false", "no", "off")}
_LOCAL = threading.local()


def set_fast_paths(enabled: bool) -> None:
    """Turn every fast path on (default) or off, process-wide; off, every module runs its reference formula."""
    _STATE["enabled"] = bool(enabled)


@contextlib.contextmanager
def fast_paths(enabled: bool) -> Iterator[None]:
    """Inside, fast paths are on or off in this thread, whatever :func:`set_fast_paths` says."""
    previous = getattr(_LOCAL, "enabled", None)
    _LOCAL.enabled = bool(enabled)
    try:
        yield
    finally:
        _LOCAL.enabled = previous


def fast_paths_enabled() -> bool:
    """Whether modules may take their fast paths here (never under TorchScript)."""
    if torch.jit.is_scripting():
        return False
    return _enabled_eager()


@torch.jit.unused
def _enabled_eager() -> bool:
    local = getattr(_LOCAL, "enabled", None)
    return _STATE["enabled"] if local is None else local


def exporting() -> bool:
    """Inside ``torch.export`` (ONNX's exporter too) or ``torch.jit.trace``: where a module must take one
    shape-independent path, so that batch and size stay symbolic and every op has an ONNX form."""
    return torch.compiler.is_exporting() or torch.jit.is_tracing()


def capturing_graph() -> bool:
    """Exporting (:func:`exporting`) or tracing with ``torch.fx`` (timm's feature extraction too), where shapes and
    devices are symbols that a Python branch cannot read. (``is_fx_symbolic_tracing``, not ``is_fx_tracing``: the
    latter logs a warning on every first call, into every user's output.)"""
    return exporting() or torch.fx._symbolic_trace.is_fx_symbolic_tracing()


def compiling() -> bool:
    """Inside ``torch.compile``'s capture, or any graph capture (:func:`capturing_graph`): graphs stay free of
    in-place writes and of branches on sizes."""
    return torch.compiler.is_compiling() or capturing_graph()


def may_overwrite_temporaries() -> bool:
    """Whether a module may write into its own full-size temporaries in place: with fast paths on, in eager
    inference (no autograd), outside graph capture and compilers; never under TorchScript."""
    if torch.jit.is_scripting():
        return False
    return _may_overwrite_eager()


@torch.jit.unused
def _may_overwrite_eager() -> bool:
    return _enabled_eager() and not (torch.is_grad_enabled() or compiling())


def samples_per_call(x: torch.Tensor, bytes_per_sample: int, budget: int | None, most: int | None = None) -> int:
    """How many samples of ``x`` (B, ...) one call takes so that its temporaries of ``bytes_per_sample`` each fit
    ``budget`` bytes, and at most ``most`` (at least one): the batch split into as few calls as that allows, of
    equal size (64 samples that fit 57 run as 32 + 32, not 57 + 7). All of them where neither bound is given, with
    fast paths off, and when compiled, exported or traced (the batch stays symbolic: no recompile per batch size)."""
    batch = x.shape[0]
    if batch == 0 or (budget is None and most is None) or compiling() or not fast_paths_enabled():
        return batch
    fit = batch if budget is None else budget // max(1, bytes_per_sample)
    fit = max(1, min(batch, fit, most or batch))
    return -(-batch // -(-batch // fit))  # ceil(batch / number of calls)


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
    """Whether :func:`reference_arithmetic` is on in this thread, or fast paths are off."""
    return getattr(_COUNTING, "active", False) or not fast_paths_enabled()


def spatial_conv_input(pooled: torch.Tensor) -> torch.Tensor:
    """The pooled maps a spatial gate convolves to one channel, (B, 2, P, Q), in the layout that convolution is
    fastest in: channels-last where a gradient is recorded and the device's tuning says so, else as given. The
    one-channel output is contiguous either way. TorchScript and captured graphs keep the given layout."""
    if torch.jit.is_scripting():
        return pooled
    return _spatial_conv_input_eager(pooled)


@torch.jit.unused
def _spatial_conv_input_eager(pooled: torch.Tensor) -> torch.Tensor:
    if capturing_graph() or not (_enabled_eager() and torch.is_grad_enabled() and pooled.requires_grad):
        return pooled
    if not tuning(pooled.device).spatial_conv_channels_last:
        return pooled
    return pooled.contiguous(memory_format=torch.channels_last)


def dsc_channels_last(x: torch.Tensor) -> bool:
    """Whether DAS's depthwise-separable conv of ``x`` (B, C, H, W) runs channels-last (fast paths on, no graph
    capture, a map of at least the device's ``dsc_channels_last_min_pixels``)."""
    if not fast_paths_enabled() or capturing_graph():
        return False
    least = tuning(x.device).dsc_channels_last_min_pixels
    return least is not None and x.shape[-2] * x.shape[-1] >= least


def aw_factored_is_faster(device: torch.device, pixels: int, channel_pairs: int, grad: bool, batch: int = 1) -> bool:
    """Whether AW's factored path beats the modulated one on ``device`` for ``batch`` output maps of ``pixels``
    pixels and C_in·C_out ``channel_pairs``, with (training) or without (inference) autograd
    (``aw_factored_max_pixels``)."""
    rows = tuning(device).aw_factored_max_pixels
    limits = next((limits for pairs, least_batch, *limits in rows if channel_pairs >= pairs and batch >= least_batch),
                  None)  # fmt: skip
    return limits is not None and pixels <= (limits[0] if grad else limits[1])


# Autograd nodes whose backward reads neither their output nor anything an in-place add changes: a product (every
# gate's x ⊙ multiplier), a sum, and BatchNorm (torchvision's blocks add their identity into bn3's output so).
_OUTPUT_FREE_BACKWARDS = frozenset(
    {"MulBackward0", "AddBackward0", "NativeBatchNormBackward0", "CudnnBatchNormBackward0", "MiopenBatchNormBackward0"}
)


def residual_in_place(out: torch.Tensor) -> bool:
    """Whether a residual block may add its shortcut into ``out`` (its gate's or last norm's output) in place, as
    torchvision's ``out += identity``: fast paths on, no graph capture (FX cannot branch on a traced tensor), and
    either no gradient recorded for ``out`` or ``out`` made by an op whose backward does not read its output (a
    product, a sum, BatchNorm): a gate of one's own ending in, e.g., a sigmoid gets the out-of-place sum."""
    if torch.jit.is_scripting():
        return not (torch.is_grad_enabled() and out.requires_grad)
    return _residual_in_place_eager(out)


@torch.jit.unused
def _residual_in_place_eager(out: torch.Tensor) -> bool:
    if not _enabled_eager() or compiling():
        return False
    if not (torch.is_grad_enabled() and out.requires_grad):
        return True
    return out.grad_fn is not None and out.grad_fn.name() in _OUTPUT_FREE_BACKWARDS and out._base is None
