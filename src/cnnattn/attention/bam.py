"""BAM: bottleneck attention module (Park, Woo, Lee, Kweon, BMVC 2018)."""

from __future__ import annotations

import torch
from timm.layers import ConvNormAct, make_divisible
from torch import nn

from .common import to_factory
from .registry import register_attention


def check_bam_batch(x: torch.Tensor) -> None:
    """BAM in training with its channel BatchNorm needs more than one sample. A leaf of ``torch.fx`` tracing."""
    if x.shape[0] == 1:
        raise ValueError(
            "BAM's channel branch ends in BatchNorm over the batch (as in the paper) and cannot train on a "
            "batch of 1: use batch size >= 2, call .eval(), or pass channel_norm_layer=None."
        )


torch.fx.wrap("check_bam_batch")


@register_attention("bam", stages=(1, 2, 3), position="stage")
class BAM(nn.Module):
    """Bottleneck attention: X ⊙ (1 + σ(M_c + M_s)) at stage boundaries (Park et al. 2018).

    Channel branch M_c (B, C, 1, 1): global average pool → 1×1 C→C/r → ReLU → 1×1 C/r→C → BN.
    Spatial branch M_s (B, 1, H, W): 1×1 C→C/r → ``num_dilated`` dilated 3×3 convs (dilation d) → 1×1
    C/r→1 → BN; hidden convs are followed by BN and ReLU. Padding equals the dilation, so every map size,
    1×1 included, keeps its size. Defaults r=16, d=4, two dilated convs are the paper's.

    Args:
        channels: Input and output channels C.
        rd_ratio: Reduction 1/r of both branches' hidden width.
        rd_channels: Hidden width, overriding ``rd_ratio``.
        dilation: Dilation d of the spatial branch's 3×3 convs.
        num_dilated: Number of dilated 3×3 convs.
        act_layer: Hidden activation.
        norm_layer: Norm after the spatial branch's convs (hidden and output).
        channel_norm_layer: Norm at the channel branch's output (paper: BatchNorm); ``None`` drops it,
            e.g. to train with a batch of 1.
        device, dtype: Where and in which precision to create the parameters (timm's factory keywords).

    :meth:`attention_map` returns σ(M_c + M_s), the map ``forward`` applies as X ⊙ (1 + map).
    """

    def __init__(
        self,
        channels: int,
        rd_ratio: float = 1 / 16,
        rd_channels: int | None = None,
        dilation: int = 4,
        num_dilated: int = 2,
        act_layer: type[nn.Module] = nn.ReLU,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        channel_norm_layer: type[nn.Module] | None = nn.BatchNorm2d,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        rd = rd_channels or make_divisible(channels * rd_ratio, 1, round_limit=0.0)
        self.channel_gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, rd, 1),
            act_layer(),
            nn.Conv2d(rd, channels, 1),
            channel_norm_layer(channels) if channel_norm_layer else nn.Identity(),
        )
        self._channel_batch_norm = isinstance(self.channel_gate[-1], nn.modules.batchnorm._BatchNorm)
        hidden = [
            ConvNormAct(rd, rd, 3, dilation=dilation, norm_layer=norm_layer, act_layer=act_layer)
            for _ in range(num_dilated)
        ]
        self.spatial_gate = nn.Sequential(
            ConvNormAct(channels, rd, 1, norm_layer=norm_layer, act_layer=act_layer),
            *hidden,
            nn.Conv2d(rd, 1, 1),
            norm_layer(1),
        )
        to_factory(self, device, dtype)

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """σ(M_c + M_s), (B, C, H, W) in (0, 1)."""
        if self.training and self._channel_batch_norm and not torch.jit.is_scripting():
            check_bam_batch(x)
        return torch.sigmoid(self.channel_gate(x) + self.spatial_gate(x))

    @torch.jit.unused
    def attention_parts(self, x: torch.Tensor, query: tuple[float, float] = (0.5, 0.5)) -> dict[str, torch.Tensor]:
        """For pictures: ``channel`` σ(M_c) (B, C, 1, 1), ``spatial`` σ(M_s) (B, 1, H, W) and ``map`` σ(M_c + M_s)
        (B, C, H, W), all in (0, 1) (``forward`` applies X ⊙ (1 + map)); ``query`` is unused."""
        channel, spatial = self.channel_gate(x), self.spatial_gate(x)
        return {"channel": channel.sigmoid(), "spatial": spatial.sigmoid(), "map": torch.sigmoid(channel + spatial)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (1 + self.attention_map(x))
