"""Baselines that timm already implements, registered under the names the seed papers use: timm's own classes
(SE, ECA, coordinate attention, global context; CBAM with a fast path), with defaults that follow each baseline's
paper where timm's differ; every one stays overridable by keyword.
"""

from __future__ import annotations

from functools import partial

import torch
from timm.layers import cbam, non_local_attn
from timm.layers.coord_attn import CoordAttn
from timm.layers.eca import EcaModule
from timm.layers.global_context import GlobalContext
from timm.layers.squeeze_excite import SEModule

from ..fast_paths import fast_paths_enabled, spatial_conv_input
from ..ops.pooling import max_along, spatial_max
from .common import autocast_active, gated
from .registry import register_attention

torch.fx.wrap("gated")  # a leaf of torch.fx tracing: the in-place choice is made when the graph runs


class NonLocalAttn(non_local_attn.NonLocalAttn):
    """timm's ``NonLocalAttn`` (same arguments, parameters and state dict; the same outputs up to float rounding),
    run in float32 under autocast: its position-pair logits overflow float16 (NaN) for activations of about 1e2,
    and so do its embeddings for activations of 1e4. A batch of 0 samples is allowed (timm's ``view(B, C, -1)``
    is ambiguous there)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._block(x) if torch.jit.is_scripting() else self._block_eager(x)

    def _block(self, x: torch.Tensor) -> torch.Tensor:
        t, p, g = self.t(x).flatten(2), self.p(x).flatten(2), self.g(x).flatten(2)  # (B, C', HW) each
        attn = torch.softmax(torch.bmm(t.transpose(1, 2), p) * self.scale, dim=2)  # (B, HW queries, HW keys)
        y = torch.bmm(g, attn.transpose(1, 2))  # (B, C', HW): each position's attention-weighted sum of g
        return self.norm(self.z(y.unflatten(2, x.shape[2:]))) + x

    @torch.jit.unused
    def _block_eager(self, x: torch.Tensor) -> torch.Tensor:
        if not autocast_active():
            return self._block(x)
        with torch.autocast(x.device.type, enabled=False):
            return self._block(x.float()).to(x.dtype)


class CbamModule(cbam.CbamModule):
    """timm's ``CbamModule`` (same arguments, parameters, state dict and outputs; its ``forward`` with fast paths
    off), with a fast path of the same formula for the CPU: maxima differentiated as ``max_pool2d``'s
    (:func:`cnnattn.ops.pooling.max_along`: gradients equal timm's wherever the maximum is unique), the spatial conv
    reading its pooled maps channels-last in training, the spatial product written into the channel product's
    memory in inference (measured: docs/benchmarks.md)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not fast_paths_enabled():  # always under TorchScript
            return self.spatial(self.channel(x))  # timm's formula
        # Submodules are called through self.<name>: TorchScript cannot call a module held in a local variable.
        mlp_avg = self.channel.fc2(self.channel.act(self.channel.fc1(x.mean((2, 3), keepdim=True))))
        mlp_max = self.channel.fc2(self.channel.act(self.channel.fc1(spatial_max(x))))
        x = x * self.channel.gate(mlp_avg + mlp_max)  # (B, C, H, W) after the channel gate (B, C, 1, 1)
        pooled = torch.cat([x.mean(dim=1, keepdim=True), max_along(x, 1, keepdim=True)], dim=1)  # (B, 2, H, W)
        spatial_gate = self.spatial.gate(self.spatial.conv(spatial_conv_input(pooled)))  # (B, 1, H, W)
        return gated(x, spatial_gate, scratch="x")  # x is this call's channel-gated product


register_attention(
    "se", description="Squeeze-and-excitation channel gate (Hu et al. 2018); timm SEModule, rd_ratio 1/16."
)(SEModule)

register_attention(
    "eca", description="Efficient channel attention, 1-D conv over pooled channels (Wang et al. 2020); timm."
)(EcaModule)

register_attention(
    "cbam", description="CBAM channel then 7×7 spatial gate (Woo et al. 2018); timm CbamModule, rd_ratio 1/16."
)(CbamModule)

register_attention(
    "gc",
    description="Global context block with the GCNet paper's additive fusion, r=16 (Cao et al. 2019); timm.",
    stages=(2, 3, 4),
)(partial(GlobalContext, fuse_add=True, fuse_scale=False, rd_ratio=1 / 16))

register_attention(
    "gc_scale",
    description="Global context block with multiplicative (scaling) fusion, timm's 'gc' variant, r=16.",
    stages=(2, 3, 4),
)(partial(GlobalContext, fuse_add=False, fuse_scale=True, rd_ratio=1 / 16))

register_attention(
    "nl",
    description="Non-local block, embedded Gaussian, C/2 embedding (Wang et al. 2018); timm NonLocalAttn.",
    stages=(3,),
    position="stage",
)(partial(NonLocalAttn, rd_ratio=1 / 2))

register_attention(
    "coord",
    description="Coordinate attention, pooled along H and W, rd_ratio 1/32 (Hou et al. 2021); timm CoordAttn.",
)(partial(CoordAttn, rd_ratio=1 / 32, se_factor=1.0))
