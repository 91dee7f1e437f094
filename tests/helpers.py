"""Assertions shared by the tests."""

from __future__ import annotations

import torch


def assert_rel_close(actual: torch.Tensor, expected: torch.Tensor, tol: float, what: str = "") -> None:
    """max |actual − expected| ≤ tol · max |expected|: closeness relative to the tensor's scale."""
    scale = expected.abs().max().clamp_min(1e-12)
    error = ((actual - expected).abs().max() / scale).item()
    assert error <= tol, f"{what}: relative error {error:.2e} > {tol:.0e}"


def assert_trains(model: torch.nn.Module, num_classes: int = 4, steps: int = 8) -> None:
    """A few SGD steps on one fixed batch of 32×32 images lower the loss."""
    torch.manual_seed(0)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, num_classes, (8,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], f"loss did not decrease: {losses}"
