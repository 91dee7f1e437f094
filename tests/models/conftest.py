"""Run the contract tests case by case (every check of one attention × position × family together), so that
test_contract.py builds each float64 reference model once and keeps only the current one in memory."""

from __future__ import annotations

import pytest


def _case(item: pytest.Item) -> tuple[str, str, str] | None:
    callspec = getattr(item, "callspec", None)
    if item.path.name != "test_contract.py" or callspec is None:
        return None
    return callspec.params.get("case")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Reorder the parametrised contract tests among their own slots, grouped by case (stable within a case)."""
    slots = [i for i, item in enumerate(items) if _case(item) is not None]
    order = {case: n for n, case in enumerate(dict.fromkeys(_case(items[i]) for i in slots))}
    grouped = sorted((items[i] for i in slots), key=lambda item: order[_case(item)])
    for slot, item in zip(slots, grouped, strict=True):
        items[slot] = item
