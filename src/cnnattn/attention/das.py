"""DAS: deformable attention gate (Salajegheh, Asadi, Saryazdi, Mudur 2023, arXiv 2311.12091).

Known (authors' figure): A = sigmoid(LN(DC(IN(DSC(X))))), output = X ⊙ A, with A of full C×H×W shape,
no residual and no activation but the sigmoid. Everything else is assumed and is an argument:
the reduction α of the depthwise-separable conv, the kernel sizes, the offset predictor (a 3×3 conv of
the IN output, zero-initialised so DC starts as a plain conv), offset groups, DCNv1 vs DCNv2 modulation,
and the norms (docs/das.md lists what is known and what is assumed). The default placement in the model
factory comes from our ablation (docs/das.md); the paper's own placement is unknown. Our default, once after
each of the four stages with α = 16, is the cheapest variant and the most accurate DAS variant in that
ablation.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from timm.layers import LayerNorm2d
from torch import nn

from ..fast_paths import dsc_channels_last, may_overwrite_temporaries
from ..ops.deform_conv import DeformConv2d, Impl
from .common import to_factory
from .registry import register_attention

__all__ = ["DASGate"]


class _InstanceNorm(nn.InstanceNorm2d):
    """Affine instance norm computed as a group norm with one channel per group (the same statistics: per sample
    and channel over H×W), which unlike ``F.instance_norm`` also takes a batch of 0 samples."""

    def __init__(self, num_features: int, **kwargs) -> None:
        super().__init__(num_features, affine=True, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, self.num_features, self.weight, self.bias, self.eps)


def reduced_width(channels: int, rd_ratio: float) -> int:
    """The hidden width ⌊channels · rd_ratio⌋, at least 1 (``rd_ratio=1/16``: ``channels // 16``)."""
    if not 0 < rd_ratio <= 1:
        raise ValueError(f"rd_ratio must be in (0, 1], e.g. 1/16 (a reduction of 16); got {rd_ratio!r}.")
    return max(1, int(channels * rd_ratio + 1e-6))


def check_gate_input(x: torch.Tensor, channels: int, instance_norm: bool) -> None:
    """DASGate's input check: (B, channels, H, W), and more than 1×1 under an instance norm. A leaf of
    ``torch.fx`` tracing (it runs when the traced graph runs, not while tracing)."""
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"DASGate expects input of shape (B, {channels}, H, W); got {tuple(x.shape)}.")
    if x.shape[-2:] == (1, 1) and instance_norm:
        raise ValueError(
            "DASGate's instance norm cannot normalise a 1×1 feature map (got input "
            f"{tuple(x.shape)}): use larger images, other stages, or another norm_layer."
        )


torch.fx.wrap("check_gate_input")


def dsc_input(x: torch.Tensor, channels_last: bool | None) -> torch.Tensor:
    """X in the memory layout DAS's depthwise-separable conv runs in: a channels-last copy where ``channels_last``
    says so, or where it is None and :func:`cnnattn.fast_paths.dsc_channels_last` does; else X itself. A leaf of
    ``torch.fx`` tracing, so a traced graph makes the same choice for each input as eager PyTorch."""
    if channels_last is None:
        channels_last = dsc_channels_last(x)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


torch.fx.wrap("dsc_input")


@register_attention(
    "das",
    description="DAS deformable attention gate X ⊙ σ(LN(DC(IN(DSC(X))))) (Salajegheh et al. 2023); "
    "α=16, once per stage (our ablation).",
    stages=(1, 2, 3, 4),
    position="stage",
)
class DASGate(nn.Module):
    """DAS gate: X ⊙ σ(LN(DC(IN(DSC(X))))), shape-preserving (B, C, H, W) -> (B, C, H, W).

    DSC: depthwise ``dw_kernel_size``² conv then pointwise C → C/α; IN: instance norm; DC: deformable
    ``kernel_size``² conv C/α → C whose offsets (and DCNv2 mask if ``modulated``) come from a zero-initialised
    ``offset_kernel_size``² conv of the IN output; LN: layer norm over channels at each position.

    Args:
        channels: C, input and output channels.
        rd_ratio: 1/α, so the hidden width is ⌊C/α⌋ (assumed α = 16, ``rd_ratio=1/16``, chosen by the ablation in
            docs/das.md; timm's name for the channel reduction of SE and CBAM).
        rd_channels: Hidden width, overriding ``rd_ratio``.
        dw_kernel_size: Depthwise kernel of the DSC.
        kernel_size: Kernel of the deformable conv.
        offset_kernel_size: Kernel of the offset predictor.
        offset_groups: Channel groups sharing one set of offsets.
        modulated: DCNv2 mask (sigmoid of the predictor, 0.5 at initialisation) instead of DCNv1.
        norm_layer: Norm after the DSC (instance norm with affine parameters).
        gate_norm_layer: Norm before the sigmoid (layer norm over channels).
        keep_maps: Keep the last attention map ``last_attention`` (B, C, H, W) and offsets ``last_offsets``
            (B, 2·G·k², H, W), detached, for visualisation; nothing is kept when False.
        impl: Deformable conv implementation (see :func:`cnnattn.ops.deform_conv2d`).
        channels_last_dsc: Run the DSC on a channels-last copy of X (the same numbers, a speed choice). None
            (default): as :func:`cnnattn.fast_paths.dsc_channels_last` says for the input's device and size.
        device, dtype: Where and in which precision to create the parameters (timm's factory keywords).

    :meth:`attention_map` returns the gate A that ``forward`` applies; :meth:`gate_and_offsets` also returns
    the deformable conv's offsets.
    """

    def __init__(
        self,
        channels: int,
        rd_ratio: float = 1 / 16,
        rd_channels: int | None = None,
        dw_kernel_size: int = 3,
        kernel_size: int = 3,
        offset_kernel_size: int = 3,
        offset_groups: int = 1,
        modulated: bool = False,
        norm_layer: Callable[[int], nn.Module] = _InstanceNorm,
        gate_norm_layer: Callable[[int], nn.Module] = LayerNorm2d,
        keep_maps: bool = False,
        impl: Impl = "auto",
        channels_last_dsc: bool | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        hidden = rd_channels or reduced_width(channels, rd_ratio)
        if hidden % offset_groups:
            raise ValueError(
                f"DASGate: hidden width {hidden} (C/α) must be divisible by offset_groups={offset_groups}."
            )
        self.channels, self.hidden, self.modulated, self.keep_maps = channels, hidden, modulated, keep_maps
        self.channels_last_dsc = channels_last_dsc
        self.num_offsets = 2 * offset_groups * kernel_size**2
        self.dsc = nn.Sequential(
            nn.Conv2d(channels, channels, dw_kernel_size, padding=dw_kernel_size // 2, groups=channels, bias=False),
            nn.Conv2d(channels, hidden, 1, bias=False),
        )
        self.norm = norm_layer(hidden)
        predicted = self.num_offsets + (offset_groups * kernel_size**2 if modulated else 0)
        self.offset = nn.Conv2d(hidden, predicted, offset_kernel_size, padding=offset_kernel_size // 2)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)
        self.dc = DeformConv2d(hidden, channels, kernel_size, padding=kernel_size // 2, impl=impl)
        self.gate_norm = gate_norm_layer(channels)
        self.last_attention: torch.Tensor | None = None
        self.last_offsets: torch.Tensor | None = None
        to_factory(self, device, dtype)

    @torch.jit.unused
    def _check_input(self, x: torch.Tensor) -> None:
        check_gate_input(x, self.channels, isinstance(self.norm, nn.InstanceNorm2d))

    @torch.jit.unused
    def _dsc_input(self, x: torch.Tensor) -> torch.Tensor:
        return dsc_input(x, self.channels_last_dsc)

    def _hidden(self, x: torch.Tensor) -> torch.Tensor:
        """IN(DSC(X)): (B, C/α, H, W), contiguous."""
        if not torch.jit.is_scripting():  # TorchScript skips this block: scripted gates keep x's layout
            x = self._dsc_input(x)
        return self.norm(self.dsc(x)).contiguous()

    def _gate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Gate A (B, C, H, W), offsets (B, 2·G·k², H, W) and the DCNv2 mask (B, G·k², H, W) or None."""
        if not torch.jit.is_scripting():
            self._check_input(x)
        hidden = self._hidden(x)
        predicted = self.offset(hidden)
        offsets = predicted[:, : self.num_offsets]
        mask = torch.sigmoid(predicted[:, self.num_offsets :]) if self.modulated else None
        logits = self.gate_norm(self.dc(hidden, offsets, mask))  # (B, C, H, W), this call's own
        gate = logits.sigmoid_() if may_overwrite_temporaries() else torch.sigmoid(logits)  # no fresh full-size map
        return gate, offsets, mask

    def gate_and_offsets(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The gate A (B, C, H, W) in (0, 1), and the predicted offsets (B, 2·G·k², H, W) in input pixels,
        (dy, dx) per tap as in ``torchvision.ops.deform_conv2d``."""
        attention, offsets, _ = self._gate(x)
        return attention, offsets

    @torch.jit.unused
    def attention_parts(self, x: torch.Tensor, query: tuple[float, float] = (0.5, 0.5)) -> dict[str, torch.Tensor]:
        """What the gate applied, for pictures: ``gate`` A (B, C, H, W) in (0, 1), ``offsets`` (B, 2·G·k², H, W)
        in input pixels ((dy, dx) per tap, torchvision's order) and, when modulated, ``mask`` (B, G·k², H, W)
        in (0, 1). ``query`` is unused (the gate has no attention rows)."""
        attention, offsets, mask = self._gate(x)
        parts = {"gate": attention, "offsets": offsets}
        return parts if mask is None else {**parts, "mask": mask}

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """The gate A (B, C, H, W) in (0, 1) that ``forward`` multiplies into ``x``."""
        return self.gate_and_offsets(x)[0]

    @torch.jit.unused
    def _keep(self, attention: torch.Tensor, offsets: torch.Tensor) -> None:
        self.last_attention, self.last_offsets = attention.detach(), offsets.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attention, offsets = self.gate_and_offsets(x)
        if self.keep_maps and not torch.jit.is_scripting():
            self._keep(attention, offsets)
        return x * attention
