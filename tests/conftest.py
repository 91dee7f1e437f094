"""Shared fixtures: deterministic seeds and a few threads so runs are repeatable on 2 CPU cores."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
