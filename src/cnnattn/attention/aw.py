"""AW-convolution: attention with the shape of the convolution weight (Zhu, Hofstee, Lee, Al-Ars, ICANN 2021).

Known (docs/aw.md): per sample, an attention A shaped like the kernel (C_out × C_in/groups × k × k), indexed
by kernel tap and generated from the input by average pooling to k×k, 1×1 conv, ReLU, 1×1 conv; the
output is ``conv(I, K ⊙ (1 + A))``. Assumed here, each an argument: the reduction, the final gate, the
generator of the 'full' shape (a rank-R factorisation over (output, input) channel pairs, or a dense
layer), zero initialisation of the last generator layer (so the layer starts as the plain conv).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from timm.layers import make_divisible
from torch import nn

from ..fast_paths import (
    aw_factored_is_faster,
    exporting,
    fast_paths_enabled,
    may_overwrite_temporaries,
    samples_per_call,
    tuning,
)
from ..ops.pooling import adaptive_avg_pool2d_matmul
from ..ops.shapes import conv_output_size
from .common import NotScriptable, to_factory
from .registry import register_attention

__all__ = ["AWConv2d"]

AttentionShape = Literal["full", "shared"]
Gate = Literal["none", "tanh", "sigmoid"]
Impl = Literal["auto", "modulated", "factored"]
IMPLS: tuple[str, ...] = ("auto", "modulated", "factored")
_GATES = {"none": lambda a: a, "tanh": torch.tanh, "sigmoid": torch.sigmoid}


def _for_mode(pair: tuple[int, int]) -> int:
    """The first of a device rule's ``(training, inference)`` pair where autograd is on, else the second."""
    return pair[0] if torch.is_grad_enabled() else pair[1]


def _factorable(attention_shape: str, rank: int | None, groups: int) -> bool:
    """Whether the factored path applies: the factorised full attention (an int rank) without groups."""
    return attention_shape == "full" and rank is not None and groups == 1


@register_attention(
    "aw",
    kind="conv",
    description="AW-convolution: per-sample attention shaped like the kernel, conv(I, K ⊙ (1 + A)) (Zhu et al. 2021).",
)
class AWConv2d(NotScriptable, nn.Conv2d):
    """Convolution whose kernel is modulated per sample: ``conv(I, K ⊙ (1 + gate(A(I))))``.

    A is generated from the input: adaptive average pool to k×k (one descriptor per kernel tap), 1×1 conv
    C_in → C_in/r, ReLU, 1×1 conv to the attention of each tap. Samples run together in one grouped
    convolution (the batch folded into the groups), the reference formula; with fast paths on
    (:mod:`cnnattn.fast_paths`), wide layers convolve sample by sample (each kernel formed just before its
    convolution), small maps take one batched matmul of unfolded patches, and the batch is split into chunks by
    ``max_kernel_bytes``.

    Shapes: input (B, C_in, H, W) -> (B, C_out, H', W'), like ``nn.Conv2d``, whose ``weight`` and ``bias``
    it keeps (so a conv's weights load unchanged).

    Args:
        in_channels, out_channels, kernel_size, stride, dilation, groups, bias: As ``nn.Conv2d``.
        padding: Defaults to dilation·(k − 1)/2 ("same" for stride 1).
        rd_ratio: 1/r, the generator's hidden width is C_in/r, rounded to a multiple of 8, at least 8 (assumed
            r = 16: ``rd_ratio=1/16``, timm's name).
        rd_channels: Hidden width, overriding ``rd_ratio``.
        attention_shape: ``'full'``: each output channel gets its own C_in/groups × k × k attention;
            ``'shared'``: one C_in × k × k attention for all output channels (+0.16 M params on ResNet-50,
            docs/aw.md).
        rank: For ``'full'``, A[o, c, t] = Σ_r u_r[o, t]·v_r[c, t] / R with R = ``rank`` factors, so the
            generator's last layer costs hidden·R·(C_out + C_in/groups) per tap-shared layer instead of
            hidden·C_out·C_in/groups; ``None`` uses that dense last layer (+33 M params on ResNet-50, docs/aw.md).
        gate: Final function of A: ``'tanh'`` (assumed default; modulation in (0, 2)), ``'none'`` or
            ``'sigmoid'``; for the factorised 'full' generator it is applied to each factor (see
            :meth:`attention_map`). With ``'none'``/``'tanh'`` and ``zero_init`` the layer starts as the plain conv.
        zero_init: Zero-initialise the last generator layer (for the factorised form, its u part, so v keeps
            gradients flowing).
        act_layer: Hidden activation.
        impl: How the per-sample convolution runs; every choice gives the same outputs and gradients.
            ``'modulated'``: form K ⊙ (1 + A) for each sample, then one batch-grouped convolution (or, on maps of
            the device's ``aw_bmm_max_pixels``, a batched matmul of unfolded patches). ``'factored'`` (factorised 'full'
            attention, ``groups=1`` only): never forms the per-sample kernels; the plain convolution plus, for
            each of the R factors and kernel taps, the shared kernel slice applied to the input scaled by v_r,
            then scaled by u_r and summed: (1 + R)× the convolution's MACs, no B·C_out·C_in·k² tensor.
            ``'auto'`` (default): ``'factored'`` where it applies and the device's tuning says it is faster for
            the layer's width, the batch and the output size (:func:`cnnattn.fast_paths.aw_factored_is_faster`;
            on CPU only), ``'modulated'`` elsewhere and with fast paths off.
        max_kernel_bytes: The batch runs in chunks whose modulated kernels fit this many bytes; ``'auto'``
            (default): the device's ``aw_max_kernel_bytes`` (on CPU 8 MiB in training, 2 MiB in inference; one call
            elsewhere), and the factored path in training in chunks of the device's ``aw_factored_train_max_bytes``
            (on CPU 32 MiB of its products); ``None``: the whole batch in one call.
        device, dtype: Where and in which precision to create the parameters (timm's factory keywords).

    ``torch.jit.script`` refuses the layer with a message naming tracing and ``torch.export``, which work.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = False,
        *,
        rd_ratio: float = 1 / 16,
        rd_channels: int | None = None,
        attention_shape: AttentionShape = "full",
        rank: int | None = 4,
        gate: Gate = "tanh",
        zero_init: bool = True,
        act_layer: type[nn.Module] = nn.ReLU,
        impl: Impl = "auto",
        max_kernel_bytes: int | Literal["auto"] | None = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if attention_shape not in ("full", "shared"):
            raise ValueError(f"AWConv2d: attention_shape must be 'full' or 'shared'; got {attention_shape!r}.")
        if gate not in _GATES:
            raise ValueError(f"AWConv2d: gate must be one of {tuple(_GATES)}; got {gate!r}.")
        if rank is not None and rank < 1:
            raise ValueError(f"AWConv2d: rank must be a positive int or None (dense); got {rank!r}.")
        if impl not in IMPLS:
            raise ValueError(f"AWConv2d: impl must be one of {IMPLS}; got {impl!r}.")
        if impl == "factored" and not _factorable(attention_shape, rank, groups):
            raise ValueError(
                "AWConv2d: impl='factored' needs the factorised full attention (attention_shape='full', an int "
                f"rank) and groups=1; got attention_shape={attention_shape!r}, rank={rank!r}, groups={groups}. "
                "Use impl='modulated' or 'auto'."
            )
        padding = dilation * (kernel_size - 1) // 2 if padding is None else padding
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        self.attention_shape, self.gate, self.rank, self.impl = attention_shape, gate, rank, impl
        self.max_kernel_bytes = max_kernel_bytes
        hidden = rd_channels or make_divisible(in_channels * rd_ratio, 8, min_value=8)
        group_in = in_channels // groups
        if attention_shape == "shared":
            self.attn_sizes: tuple[int, ...] = (in_channels,)
        elif rank is None:
            self.attn_sizes = (out_channels * group_in,)
        else:
            self.attn_sizes = (rank * out_channels, rank * group_in)
        self.pool = nn.AdaptiveAvgPool2d(self.kernel_size)
        self.fc1 = nn.Conv2d(in_channels, hidden, 1)
        self.act = act_layer()
        self.fc2 = nn.Conv2d(hidden, sum(self.attn_sizes), 1)
        if zero_init:
            with torch.no_grad():
                self.fc2.weight[: self.attn_sizes[0]].zero_()
                self.fc2.bias[: self.attn_sizes[0]].zero_()
        to_factory(self, device, dtype)

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """The attention A per sample: (B, C_out, C_in/groups, k, k) for 'full', (B, C_in, k, k) for 'shared'.

        The gate is applied to A itself, except for the factorised 'full' generator, where it is applied to
        each factor (A = mean_r gate(u_r) ⊗ gate(v_r), so |A| < 1 with tanh) rather than to all
        C_out·C_in/groups·k² values of every sample. The factorised result is a tap-major view, not a copy.
        """
        return self._attention(self._logits(x))

    def _attention(self, logits: torch.Tensor) -> torch.Tensor:
        """:meth:`attention_map` from the generator's output."""
        batch, (kh, kw) = logits.shape[0], self.kernel_size
        group_in = self.in_channels // self.groups
        if self.attention_shape == "full" and self.rank is not None:
            u, v = self._tap_major_factors(logits)
            return (u @ v).permute(0, 2, 3, 1).reshape(batch, self.out_channels, group_in, kh, kw)
        attn = _GATES[self.gate](logits)  # (B, sum(attn_sizes), k, k)
        if self.attention_shape == "shared":
            return attn
        return attn.view(batch, self.out_channels, group_in, kh, kw)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """The generator's output before the gate: (B, sum(attn_sizes), k, k)."""
        # Exported: the pooling windows follow the (symbolic) input size instead of the example's.
        pooled = adaptive_avg_pool2d_matmul(x, self.kernel_size) if exporting() else self.pool(x)
        return self.fc2(self.act(self.fc1(pooled)))

    def attention_factors(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The gated factors of the factorised 'full' attention, A[o, c, t] = Σ_r u[r, o, t]·v[r, c, t] / R:
        u (B, R, C_out, k²) and v (B, R, C_in/groups, k²), taps in row-major order."""
        return self._factors(self._logits(x))

    def _tap_major_factors(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """u / R (B, k², C_out, R) and v (B, k², R, C_in/groups): per sample and tap, A = (u / R) @ v."""
        u, v = self._factors(logits)
        return u.permute(0, 3, 2, 1) / self.rank, v.permute(0, 3, 1, 2)

    def _factors(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, taps, gate = logits.shape[0], self.kernel_size[0] * self.kernel_size[1], _GATES[self.gate]
        u, v = logits.split(self.attn_sizes, dim=1)
        u = gate(u).reshape(batch, self.rank, self.out_channels, taps)
        return u, gate(v).reshape(batch, self.rank, self.in_channels // self.groups, taps)

    def attention_parts(self, x: torch.Tensor, query: tuple[float, float] = (0.5, 0.5)) -> dict[str, torch.Tensor]:
        """For pictures (A itself is weight-shaped): ``stats`` (B, 4), the mean, std, min and max of each
        sample's A, and ``taps`` (B, k, k), the mean |A| of each kernel tap, i.e. how strongly each position of
        the k×k kernel is re-weighted (the weight becomes K ⊙ (1 + A)); ``query`` is unused."""
        attn = self.attention_map(x).flatten(1, -3)  # (B, N, k, k)
        values = attn.flatten(1)
        stats = torch.stack([values.mean(1), values.std(1), values.amin(1), values.amax(1)], dim=1)
        return {"stats": stats, "taps": attn.abs().mean(1)}

    def modulated_weight(self, x: torch.Tensor) -> torch.Tensor:
        """K ⊙ (1 + A) for every sample, contiguous: (B, C_out, C_in/groups, k, k)."""
        return self._modulate(self.attention_map(x))

    def _modulate(self, attn: torch.Tensor) -> torch.Tensor:
        """K ⊙ (1 + A) from the attention of :meth:`attention_map`."""
        if self.attention_shape == "shared":
            group_in, per_group = self.in_channels // self.groups, self.out_channels // self.groups
            weight = self.weight.view(1, self.groups, per_group, group_in, *self.kernel_size)
            attn = attn.view(attn.shape[0], self.groups, 1, group_in, *self.kernel_size)
            return torch.addcmul(weight, weight, attn).flatten(1, 2).contiguous()
        # One pass, which also un-permutes the tap-major view; contiguous also for a channels-last weight
        # (``model.to(memory_format=torch.channels_last)``), whose layout addcmul would otherwise keep.
        return torch.addcmul(self.weight, self.weight, attn).contiguous()

    def _forward_per_sample(self, x: torch.Tensor) -> torch.Tensor:
        """One convolution per sample, each sample's kernel formed just before it: the generator runs on the whole
        batch, but no more than one C_out·C_in/groups·k² kernel exists at a time. Where the module may overwrite
        its temporaries (eager inference), every sample's attention and kernel reuse the same two buffers: large
        fresh buffers per sample cost a page fault per 4 KiB on CPU, a cost that depends on the allocator's state."""
        logits = self._logits(x)
        conv = functools.partial(
            F.conv2d, bias=None, stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups
        )
        if not may_overwrite_temporaries():
            kernels = (self._modulate(self._attention(logits[i : i + 1]))[0] for i in range(x.shape[0]))
            return torch.cat([conv(x[i : i + 1], kernel) for i, kernel in enumerate(kernels)])
        if self.attention_shape == "full" and self.rank is not None:
            return self._forward_per_sample_factorised(x, logits, conv)
        kernel = torch.empty_like(self.weight)
        outs = []
        for i in range(x.shape[0]):
            attn = self._attention(logits[i : i + 1])
            if self.attention_shape == "shared":
                modulated = self._modulate(attn)[0]
            else:
                modulated = torch.addcmul(self.weight, self.weight, attn[0], out=kernel)
            outs.append(conv(x[i : i + 1], modulated))
        return torch.cat(outs)

    def _forward_per_sample_factorised(self, x: torch.Tensor, logits: torch.Tensor, conv: Callable) -> torch.Tensor:
        """:meth:`_forward_per_sample` of the factorised 'full' attention in eager inference. Each sample's A, tap-major
        (k², C_out, C_in/g) as its batched matmul gives it, is modulated into a kernel laid out (C_out, k, k, C_in/g),
        i.e. a channels-last weight: reading the tap-major A in runs of C_in/g values costs less than gathering it tap
        by tap into the (C_out, C_in/g, k, k) layout, and oneDNN takes channels-last weights directly."""
        # Contiguous, so that no sample's matmul copies its operands.
        u, v = (factor.contiguous() for factor in self._tap_major_factors(logits))
        attn = x.new_empty(u.shape[1], self.out_channels, self.in_channels // self.groups)
        attn_last = attn.permute(1, 0, 2).unflatten(1, self.kernel_size)  # a view, (C_out, k, k, C_in/g)
        weight_last = self.weight.permute(0, 2, 3, 1).contiguous()
        kernel = torch.empty_like(weight_last)
        outs = []
        for i in range(x.shape[0]):
            torch.matmul(u[i], v[i], out=attn)
            torch.addcmul(weight_last, weight_last, attn_last, out=kernel)
            outs.append(conv(x[i : i + 1], kernel.permute(0, 3, 1, 2)))
        out_size = outs[0].shape[2:]
        return torch.cat(outs, out=x.new_empty(x.shape[0], self.out_channels, *out_size))  # contiguous

    def _patches(self, x: torch.Tensor, out_size: tuple[int, int], tap_major: bool = False) -> torch.Tensor:
        """``F.unfold`` by padding and k² strided slices: (B, C_in·k², H'·W'), same order; every op has an ONNX form
        and sizes may stay symbolic. ``tap_major``: (B, k², C_in, H'·W') instead."""
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        padded = F.pad(x, (self.padding[1], self.padding[1], self.padding[0], self.padding[0]))
        rows, cols = sh * (out_size[0] - 1) + 1, sw * (out_size[1] - 1) + 1
        taps = [
            padded[:, :, a * dh : a * dh + rows : sh, b * dw : b * dw + cols : sw] for a in range(kh) for b in range(kw)
        ]
        if tap_major:
            return torch.stack(taps, dim=1).flatten(3)
        return torch.stack(taps, dim=2).flatten(1, 2).flatten(2)

    def _forward_exportable(self, x: torch.Tensor, weight: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        """The per-sample convolution as one batched matmul of each group's kernels with its patches."""
        batch, groups = x.shape[0], self.groups
        patches = self._patches(x, out_size).unflatten(1, (groups, -1))  # (B, g, C_in/g·k², L)
        kernels = weight.flatten(2).unflatten(1, (groups, -1))  # (B, g, C_out/g, C_in/g·k²)
        return (kernels @ patches).reshape(batch, self.out_channels, *out_size)

    def _forward_factored(self, x: torch.Tensor) -> torch.Tensor:
        """conv(x, K) + Σ_{r,t} u_r[:, t] ⊙ (K[:, :, t] @ (patch_t ⊙ v_r[:, t])) / R, without any per-sample kernel.

        The input's patches scaled by each factor, (k², C_in, B·R·L), meet the shared kernel slice of their tap,
        (k², C_out, C_in), in one batched matmul; u weights the (k², C_out, B, R, L) result, summed over taps and
        factors.
        """
        batch, taps, rank = x.shape[0], self.kernel_size[0] * self.kernel_size[1], self.rank
        out_size = conv_output_size(x.shape[2:], self.kernel_size, self.stride, self.padding, self.dilation)
        u, v = self.attention_factors(x)
        plain = F.conv2d(x, self.weight, None, self.stride, self.padding, self.dilation)
        patches = self._patches(x, out_size, tap_major=True)  # (B, k², C_in, L)
        length = patches.shape[-1]
        scaled = patches.permute(1, 2, 0, 3).unsqueeze(3) * v.permute(3, 2, 0, 1).unsqueeze(-1)  # (k², C_in, B, R, L)
        tap_kernels = self.weight.flatten(2).permute(2, 0, 1)  # (k², C_out, C_in)
        per_tap = torch.bmm(tap_kernels, scaled.reshape(taps, self.in_channels, -1))
        per_tap = per_tap.view(taps, self.out_channels, batch, rank, length)
        attended = (per_tap * u.permute(3, 2, 0, 1).unsqueeze(-1)).sum((0, 3)) / rank  # (C_out, B, L)
        return plain + attended.transpose(0, 1).reshape(batch, self.out_channels, *out_size)

    def uses_factored(self, x: torch.Tensor) -> bool:
        """Whether ``impl`` runs the factored path for this input (``'auto'``: see
        :func:`cnnattn.fast_paths.aw_factored_is_faster`)."""
        if self.impl != "auto":
            return self.impl == "factored"
        if not _factorable(self.attention_shape, self.rank, self.groups) or exporting() or not fast_paths_enabled():
            return False
        out_size = conv_output_size(x.shape[2:], self.kernel_size, self.stride, self.padding, self.dilation)
        pairs, grad = self.in_channels * self.out_channels, torch.is_grad_enabled()
        return aw_factored_is_faster(x.device, out_size[0] * out_size[1], pairs, grad, x.shape[0])

    def uses_per_sample(self, x: torch.Tensor) -> bool:
        """Whether the modulated path convolves sample by sample (fast paths on, a batch, and one sample's kernel at
        least the device's ``aw_per_sample_min_kernel_bytes``), instead of in batch-grouped calls."""
        limits = tuning(x.device).aw_per_sample_min_kernel_bytes
        if limits is None or x.shape[0] < 2 or exporting() or not fast_paths_enabled():
            return False
        return self.weight.numel() * x.element_size() >= _for_mode(limits)

    def _forward_chunk(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        out_size = conv_output_size(x.shape[2:], self.kernel_size, self.stride, self.padding, self.dilation)
        weight = self.modulated_weight(x)
        # Exported: one shape-independent path (a batched matmul on sliced patches, no chunking), as ONNX's Conv needs
        # a constant ``group``, which the batch-grouped conv is not. A batch-grouped conv cannot have 0 groups either.
        if exporting() or batch == 0:
            return self._forward_exportable(x, weight, out_size)
        small = out_size[0] * out_size[1] <= tuning(x.device).aw_bmm_max_pixels
        if fast_paths_enabled() and batch > 1 and self.groups == 1 and small:
            # Small maps: unfolded patches and one batched matmul beat the batch-grouped conv on CPU.
            patches = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)
            return torch.bmm(weight.view(batch, self.out_channels, -1), patches).view(batch, -1, *out_size)
        return F.conv2d(
            x.reshape(1, batch * self.in_channels, *x.shape[2:]),
            weight.view(batch * self.out_channels, -1, *self.kernel_size),
            None,
            self.stride,
            self.padding,
            self.dilation,
            batch * self.groups,
        ).view(batch, -1, *out_size)

    def chunk_size(self, x: torch.Tensor) -> int:
        """Samples per call: as many as fit ``max_kernel_bytes`` of modulated kernels, and with ``'auto'`` under
        autograd at most the device's ``aw_train_max_samples`` (all of them when compiled, exported or traced, so
        that the batch may stay symbolic, and with fast paths off)."""
        rules, auto = tuning(x.device), self.max_kernel_bytes == "auto"
        cap = rules.aw_train_max_samples if auto and torch.is_grad_enabled() else None
        budgets = rules.aw_max_kernel_bytes
        budget = (None if budgets is None else _for_mode(budgets)) if auto else self.max_kernel_bytes
        return samples_per_call(x, self.weight.numel() * x.element_size(), budget, cap)

    def factored_chunk_size(self, x: torch.Tensor) -> int:
        """Samples per call of the factored path: with ``max_kernel_bytes='auto'`` under autograd, as many as fit the
        device's ``aw_factored_train_max_bytes`` of per-tap, per-factor products; otherwise the whole batch."""
        budget = tuning(x.device).aw_factored_train_max_bytes
        if self.max_kernel_bytes != "auto" or not torch.is_grad_enabled():
            budget = None
        out_size = conv_output_size(x.shape[2:], self.kernel_size, self.stride, self.padding, self.dilation)
        taps, widest = self.kernel_size[0] * self.kernel_size[1], max(self.in_channels, self.out_channels)
        per_sample = taps * widest * self.rank * out_size[0] * out_size[1] * x.element_size()
        return samples_per_call(x, per_sample, budget)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return aw_forward(self, x)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, attention_shape={self.attention_shape!r}, rank={self.rank}, gate={self.gate!r}, "
            f"impl={self.impl!r}"
        )


def aw_forward(module: AWConv2d, x: torch.Tensor) -> torch.Tensor:
    """AW-convolution of a batch, in memory-bounded chunks on CPU. A leaf of ``torch.fx`` tracing: the
    shape-dependent paths run when the traced graph runs, so FX and ``create_feature_extractor`` trace the model."""
    if x.ndim != 4 or x.shape[1] != module.in_channels:
        raise ValueError(f"AWConv2d expects input of shape (B, {module.in_channels}, H, W); got {tuple(x.shape)}.")
    if module.uses_factored(x):
        out = _in_chunks(module._forward_factored, x, module.factored_chunk_size(x))
    elif module.uses_per_sample(x):
        out = module._forward_per_sample(x)
    else:
        out = _in_chunks(module._forward_chunk, x, module.chunk_size(x))
    return out if module.bias is None else out + module.bias.view(1, -1, 1, 1)


def _in_chunks(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, chunk: int) -> torch.Tensor:
    """``fn`` on the batch in calls of ``chunk`` samples, concatenated (one call where the chunk is the batch)."""
    return fn(x) if chunk == x.shape[0] else torch.cat([fn(part) for part in x.split(chunk)])


torch.fx.wrap("aw_forward")
