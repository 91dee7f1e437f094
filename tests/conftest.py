"""Shared fixtures: deterministic seeds and a few threads so runs are repeatable on 2 CPU cores; hypothesis profiles.

Hypothesis: the default profile keeps property tests within CI time (few examples, small shapes, no deadline);
``pytest --hypothesis-profile=thorough`` runs many examples on the full shape ranges (see docs/reliability.md).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, settings

_QUIET = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]
settings.register_profile("ci", max_examples=12, deadline=None, suppress_health_check=_QUIET, derandomize=True)
settings.register_profile("thorough", max_examples=200, deadline=None, suppress_health_check=_QUIET)
settings.load_profile("ci")  # `--hypothesis-profile=thorough` replaces it


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
