"""Attention-augmented convolution, AA (Bello, Zoph, Vaswani, Shlens, Le, ICCV 2019).

Per head: softmax((q·kᵀ + S_H + S_W) / √d_k^h) · v, where S_H[i, j] = q_i · r^H_{y_j − y_i} and
S_W[i, j] = q_i · r^W_{x_j − x_i} are relative-position logits for height and width; N_h = 8 heads,
d_k = 0.2·F, d_v = 0.1·F, concatenated with a conv of F − d_v channels (docs/eam.md compares our models with
the published AA table). Relative embeddings cover offsets up to ``max_rel_dist`` − 1 (64 covers every ResNet
map at 224², where AA is exact); farther offsets share the edge embedding (clipping, as Shaw et al. 2018), so
any resolution runs.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..fast_paths import reference_arithmetic_active, samples_per_call, tuning
from ..ops.shapes import ceil_div
from .augmented_conv import AugmentedConv2d, attention_channels, query_positions
from .common import autocast_active, to_factory
from .registry import register_attention

__all__ = ["AttentionAugmentedConv2d"]


def relative_embeddings(table: torch.Tensor, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Embeddings of the offsets key − query, (N_q, N_k, d), from a (2M − 1, d) table, offsets clipped to ±(M − 1)."""
    max_dist = (table.shape[0] + 1) // 2
    offsets = (keys[None, :] - queries[:, None]).long().clamp(-(max_dist - 1), max_dist - 1)
    return table[offsets + max_dist - 1]


@register_attention(
    "aa",
    kind="conv",
    description="Attention-augmented conv: multi-head self-attention with relative logits ∥ conv (Bello et al. 2019).",
    stages=(2, 3, 4),
    grouped=False,
)
class AttentionAugmentedConv2d(AugmentedConv2d):
    """k×k conv (F − d_v) ∥ multi-head self-attention (d_v), (B, C_in, H, W) -> (B, F, H', W').

    Args:
        in_channels, out_channels (F), kernel_size, stride: As the convolution it replaces.
        num_heads: N_h (8).
        key_ratio: d_k / F (0.2); total key depth, split over heads.
        value_ratio: d_v / F (0.1).
        relative: Add the relative-position logits (the paper's default).
        max_rel_dist: Offsets embedded without clipping (see module docs).
        max_attention_bytes: The fused attention runs in batch chunks whose augmented queries, keys and values
            (see :meth:`attend`) fit this many bytes; ``'auto'`` (default): the device's ``aa_max_attention_bytes``
            (:mod:`cnnattn.fast_paths`: 16 MiB on CPU, one call elsewhere); ``None``: the whole batch at once.
            Same results.
        device, dtype: Where and in which precision to create the parameters (timm's factory keywords).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        *,
        num_heads: int = 8,
        key_ratio: float = 0.2,
        value_ratio: float = 0.1,
        relative: bool = True,
        max_rel_dist: int = 64,
        max_attention_bytes: int | Literal["auto"] | None = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, attention_channels(out_channels, value_ratio, num_heads)
        )
        self.num_heads, self.relative, self.max_attention_bytes = num_heads, relative, max_attention_bytes
        self.d_k = attention_channels(out_channels, key_ratio, num_heads)
        self.qk = nn.Conv2d(in_channels, 2 * self.d_k, 1, bias=False)
        head_dim = self.d_k // num_heads
        self.scale = head_dim**-0.5
        if relative:
            self.rel_h = nn.Parameter(torch.randn(2 * max_rel_dist - 1, head_dim) * self.scale)
            self.rel_w = nn.Parameter(torch.randn(2 * max_rel_dist - 1, head_dim) * self.scale)
        to_factory(self, device, dtype)

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax weights (B, N_h, H'·W', H·W) of each query (output grid) over every input position."""
        height, width = x.shape[-2:]
        q, k = self.qk(x).chunk(2, dim=1)
        q = q[..., :: self.stride, :: self.stride] * self.scale  # queries on the output grid
        q = q.unflatten(1, (self.num_heads, -1))  # (B, h, d, H', W'); unflatten: batch 0 works too
        k = k.flatten(2).unflatten(1, (self.num_heads, -1))  # (B, h, d, HW)
        if autocast_active():  # logits and softmax in float32: bf16 logits of large activations lose the argmax
            with torch.autocast(x.device.type, enabled=False):
                return self._softmax(q.float(), k.float(), height, width)
        return self._softmax(q, k, height, width)

    def _softmax(self, q: torch.Tensor, k: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Softmax over keys of the content (and relative) logits of q (B, h, d, H', W') and k (B, h, d, HW)."""
        logits = torch.einsum("bhdq,bhdk->bhqk", q.flatten(3), k)  # (B, h, H'W', HW)
        if self.relative:
            logits = logits + self._relative_logits(q, height, width)
        return logits.softmax(dim=-1)

    def attend(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """softmax(logits) · v through ``F.scaled_dot_product_attention``, never forming the (H'W' × HW) logits.

        The relative logits S_H[i, j] + S_W[i, j] = q_i·r^H_{y_j − y_i} + q_i·r^W_{x_j − x_i} are a dot product
        of the query's H + W relative scores with the key's one-hot row and column, so they ride along as extra
        channels of q and k: one fused attention per head with memory O(HW·(d + H + W)) instead of O((HW)²).
        Equal to ``softmax(attention_map(x)) · v`` up to float rounding (tests)."""
        batch, _, height, width = x.shape
        if reference_arithmetic_active():  # counting MACs, or fast paths off: the explicit softmax(logits) · v
            out = torch.einsum(
                "bhqk,bhdk->bhdq", self.attention_map(x), v.flatten(2).unflatten(1, (self.num_heads, -1))
            )
            return out.reshape(batch, self.d_v, ceil_div(height, self.stride), ceil_div(width, self.stride))
        q, k = self.qk(x).chunk(2, dim=1)
        q = q[..., :: self.stride, :: self.stride] * self.scale  # (B, h·d, H', W'): queries on the output grid
        q = q.unflatten(1, (self.num_heads, -1))  # (B, h, d, H', W')
        out_size = q.shape[-2:]
        v = v.flatten(2).unflatten(1, (self.num_heads, -1)).transpose(-1, -2)  # (B, h, HW, d_v/h)
        if autocast_active():  # logits in float32, as attention_map: bf16 logits of large activations lose the argmax
            with torch.autocast(x.device.type, enabled=False):
                out = self._chunked_attention(q.float(), k.float(), v.float(), height, width)
        else:
            out = self._chunked_attention(q, k, v, height, width)
        return out.transpose(-1, -2).reshape(batch, self.d_v, *out_size)

    def _chunked_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, height: int,
                           width: int) -> torch.Tensor:  # fmt: skip
        """:meth:`_fused_attention` over batch chunks of at most ``max_attention_bytes`` of augmented q, k, v."""
        depth = max(self.d_k // self.num_heads + (height + width if self.relative else 0), v.shape[-1])
        positions = q.shape[-2] * q.shape[-1] + 2 * height * width
        budget = self.max_attention_bytes
        budget = tuning(q.device).aa_max_attention_bytes if budget == "auto" else budget
        chunk = samples_per_call(q, self.num_heads * positions * depth * q.element_size(), budget)
        if chunk == q.shape[0]:
            return self._fused_attention(q, k, v, height, width)
        parts = zip(q.split(chunk), k.split(chunk), v.split(chunk), strict=True)
        return torch.cat([self._fused_attention(*part, height, width) for part in parts])

    def _fused_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, height: int,
                         width: int) -> torch.Tensor:  # fmt: skip
        """(B, h, H'W', d_v/h) from q (B, h, d, H', W'), k (B, h·d, H, W) and v (B, h, HW, d_v/h)."""
        queries = q.flatten(3).transpose(-1, -2)  # (B, h, H'W', d)
        keys = k.flatten(2).unflatten(1, (self.num_heads, -1)).transpose(-1, -2)  # (B, h, HW, d)
        if self.relative:
            s_h, s_w = self._relative_scores(q, height, width)
            rows = torch.eye(height, dtype=q.dtype, device=q.device)[:, None, :].expand(height, width, height)
            cols = torch.eye(width, dtype=q.dtype, device=q.device)[None].expand(height, width, width)
            one_hot = torch.cat([rows, cols], dim=-1).reshape(height * width, height + width)
            queries = torch.cat([queries, s_h.flatten(2, 3), s_w.flatten(2, 3)], dim=-1)
            keys = torch.cat([keys, one_hot.expand(*keys.shape[:2], -1, -1)], dim=-1)
        # The fused CPU kernel wants one head size for q, k and v: pad the smaller with zeros (exact), then cut.
        depth = max(queries.shape[-1], v.shape[-1])
        queries, keys, values = (F.pad(t, (0, depth - t.shape[-1])) if t.shape[-1] < depth else t
                                 for t in (queries, keys, v))  # fmt: skip
        return F.scaled_dot_product_attention(queries, keys, values, scale=1.0)[..., : v.shape[-1]]

    def _relative_scores(self, q: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Each query's relative scores against every key row and column: q (B, h, d, H', W') →
        S_H (B, h, H', W', H) and S_W (B, h, H', W', W)."""
        # One arange per axis, never shared when height == width: exported with symbolic sizes, a shared one
        # would tie the width's key positions to the height's.
        keys_h, keys_w = torch.arange(height, device=q.device), torch.arange(width, device=q.device)
        e_h = relative_embeddings(self.rel_h, query_positions(height, self.stride, q.device, torch.long), keys_h)
        e_w = relative_embeddings(self.rel_w, query_positions(width, self.stride, q.device, torch.long), keys_w)
        return torch.einsum("bhdyx,yYd->bhyxY", q, e_h), torch.einsum("bhdyx,xXd->bhyxX", q, e_w)

    def _relative_logits(self, q: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """S_H + S_W for queries q (B, h, d, H', W') against all H×W keys: (B, h, H'W', HW)."""
        batch, heads, _, h_out, w_out = q.shape
        s_h, s_w = self._relative_scores(q, height, width)
        return (s_h[..., :, None] + s_w[..., None, :]).reshape(batch, heads, h_out * w_out, height * width)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"d_k={self.d_k}, d_v={self.d_v}, heads={self.num_heads}, relative={self.relative}"
        )
