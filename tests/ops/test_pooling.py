"""Adaptive average pooling by matrix products equals PyTorch's, at every size (the exported AW path uses it)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnattn.ops.pooling import adaptive_avg_pool2d_matmul, pooling_matrix


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 7), st.integers(1, 7))
def test_equals_adaptive_avg_pool2d(height: int, width: int, out_h: int, out_w: int) -> None:
    x = torch.randn(2, 3, height, width, dtype=torch.float64)
    expected = F.adaptive_avg_pool2d(x, (out_h, out_w))
    torch.testing.assert_close(adaptive_avg_pool2d_matmul(x, (out_h, out_w)), expected, rtol=1e-12, atol=1e-12)


def test_windows_overlap_as_pytorchs_do() -> None:
    # 5 values into 3 cells: [0, 2), [1, 4), [3, 5) — rows 1 and 3 are shared.
    matrix = pooling_matrix(5, 3, torch.empty(0))
    expected = torch.tensor([[1 / 2, 1 / 2, 0, 0, 0], [0, 1 / 3, 1 / 3, 1 / 3, 0], [0, 0, 0, 1 / 2, 1 / 2]])
    torch.testing.assert_close(matrix, expected)
