"""Assertions shared by the tests."""

from __future__ import annotations

import torch


def assert_rel_close(actual: torch.Tensor, expected: torch.Tensor, tol: float, what: str = "") -> None:
    """max |actual − expected| ≤ tol · max |expected|: closeness relative to the tensor's scale."""
    scale = expected.abs().max().clamp_min(1e-12)
    error = ((actual - expected).abs().max() / scale).item()
    assert error <= tol, f"{what}: relative error {error:.2e} > {tol:.0e}"
