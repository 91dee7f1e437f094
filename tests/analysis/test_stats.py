"""Paired differences over seeds and the Student-t interval, on numbers worked by hand."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnattn.analysis.stats import paired_difference, t_critical

# Two-sided critical values of Student's t as printed in every statistics table (0.95 and 0.99).
T_TABLE = {1: (12.706, 63.657), 2: (4.303, 9.925), 3: (3.182, 5.841), 4: (2.776, 4.604), 5: (2.571, 4.032),
           9: (2.262, 3.250), 10: (2.228, 3.169), 29: (2.045, 2.756), 100: (1.984, 2.626)}  # fmt: skip


@pytest.mark.parametrize("df", sorted(T_TABLE))
def test_t_critical_equals_the_printed_table(df: int) -> None:
    assert round(t_critical(df), 3) == T_TABLE[df][0]
    assert round(t_critical(df, 0.99), 3) == T_TABLE[df][1]


def test_interval_of_known_numbers() -> None:
    # differences 3, 2, 3: mean 8/3, sd √(1/3), se 1/3, t(2) = 4.303 → 8/3 ± 1.434
    p = paired_difference([53.0, 52.0, 54.0], [50.0, 50.0, 51.0])
    assert p.differences == (3.0, 2.0, 3.0) and p.pairs == 3
    assert p.mean == pytest.approx(8 / 3)
    assert (p.low, p.high) == pytest.approx((8 / 3 - 4.30265 / 3, 8 / 3 + 4.30265 / 3), abs=1e-4)
    assert not p.includes_zero


def test_pairing_removes_the_seed_effect_that_unpaired_means_keep() -> None:
    # The seed moves both variants by 10 points; the variant is 1 point better at every seed.
    p = paired_difference([51.0, 61.0, 71.0], [50.0, 60.0, 70.0])
    assert (p.mean, p.low, p.high) == pytest.approx((1.0, 1.0, 1.0)) and not p.includes_zero
    noisy = paired_difference([52.0, 49.0, 50.0], [50.0, 51.0, 49.0])  # differences 2, −2, 1
    assert noisy.includes_zero and noisy.mean == pytest.approx(1 / 3)


@settings(max_examples=100)
@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0, 100)), min_size=2, max_size=8))
def test_differences_are_the_per_seed_differences(pairs: list[tuple[float, float]]) -> None:
    values, baseline = zip(*pairs, strict=True)
    p = paired_difference(values, baseline)
    assert p.differences == tuple(v - b for v, b in pairs)
    assert math.isclose(p.mean, sum(p.differences) / len(pairs), abs_tol=1e-9)
    assert p.low <= p.mean + 1e-9 and p.high >= p.mean - 1e-9
    assert math.isclose(p.mean - p.low, p.high - p.mean, abs_tol=1e-7)  # symmetric


def test_bad_inputs_say_what_is_needed() -> None:
    with pytest.raises(ValueError, match="at least 2 seeds"):
        paired_difference([1.0], [0.0])
    with pytest.raises(ValueError, match="3 values against 2"):
        paired_difference([1.0, 2.0, 3.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="df ≥ 1"):
        t_critical(0)
