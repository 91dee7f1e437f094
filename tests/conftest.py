"""Shared fixtures: deterministic seeds and a few threads so runs are repeatable on 2 CPU cores; hypothesis profiles.

Hypothesis: the default profile keeps property tests within CI time (few examples, small shapes, no deadline);
``pytest --hypothesis-profile=thorough`` runs many examples on the full shape ranges (see docs/reliability.md).
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings


def _share_cores_among_workers() -> None:
    """Under pytest-xdist (``pytest -n 2``), each worker gets its share of the cores for torch's intra-op threads,
    and so do the CLI subprocesses it starts: two workers of two threads each on 2 cores would fight for them."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)


_share_cores_among_workers()

_QUIET = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]
settings.register_profile("ci", max_examples=12, deadline=None, suppress_health_check=_QUIET, derandomize=True)
settings.register_profile("thorough", max_examples=200, deadline=None, suppress_health_check=_QUIET)
settings.load_profile("ci")  # `--hypothesis-profile=thorough` replaces it


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
