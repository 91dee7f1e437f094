from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnattn.analysis import time_models


class _Recorder(nn.Module):
    """A tiny conv that records, per call, whether autograd was on and whether it was in training mode."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3)
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((torch.is_grad_enabled(), self.training))
        return self.conv(x)


@pytest.mark.parametrize(("mode", "expected"), [("infer", (False, False)), ("train", (True, True))])
def test_time_models_runs_each_model_in_the_mode(mode: str, expected: tuple[bool, bool]) -> None:
    models = {"a": _Recorder(), "b": _Recorder()}
    timings = time_models(models, torch.randn(2, 3, 8, 8), mode, repeats=3)
    assert set(timings) == {"a", "b"} and all(t.repeats == 3 and t.median > 0 for t in timings.values())
    for model in models.values():
        assert model.calls and set(model.calls) == {expected}
    if mode == "train":
        assert models["a"].conv.weight.grad is not None


def test_time_models_rejects_unknown_mode() -> None:
    with pytest.raises(ValueError, match="'infer' or 'train'"):
        time_models({"a": _Recorder()}, torch.randn(1, 3, 8, 8), "eval")
