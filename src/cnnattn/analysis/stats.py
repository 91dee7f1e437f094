"""Paired comparison over seeds: the mean per-seed difference to a baseline with a Student-t interval.

Runs of two variants that share a seed share their data order, augmentation and the initial weights of every
backbone parameter (``compare`` builds them so), so the per-seed difference removes most of the seed noise
that two independent means keep.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["PairedDifference", "paired_difference", "t_critical"]


@dataclass(frozen=True)
class PairedDifference:
    """``differences[i]`` = variant − baseline at seed ``i``; ``mean`` ± the t interval at ``confidence``."""

    differences: tuple[float, ...]
    mean: float
    low: float
    high: float
    confidence: float = 0.95

    @property
    def includes_zero(self) -> bool:
        return self.low <= 0.0 <= self.high

    @property
    def pairs(self) -> int:
        return len(self.differences)


def _two_sided_mass(t: float, df: int) -> float:
    """P(|T| ≤ t) for Student's t with ``df`` degrees of freedom, by the finite series of Abramowitz & Stegun
    26.7.3 (odd df) and 26.7.4 (even df): exact, no special functions."""
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    if df % 2 == 0:  # sinθ (1 + 1/2 cos²θ + 1·3/(2·4) cos⁴θ + … up to cos^(df−2)θ)
        total = term = 1.0
        for k in range(2, df - 1, 2):
            term *= c2 * (k - 1) / k
            total += term
        return math.sin(theta) * total
    if df == 1:
        return 2 * theta / math.pi
    total = term = math.cos(theta)  # 2/π (θ + sinθ (cosθ + 2/3 cos³θ + … up to cos^(df−2)θ))
    for k in range(3, df - 1, 2):
        term *= c2 * (k - 1) / k
        total += term
    return 2 / math.pi * (theta + math.sin(theta) * total)


def t_critical(df: int, confidence: float = 0.95) -> float:
    """The two-sided critical value of Student's t: P(|T| ≤ value) = ``confidence`` (df 1, 0.95 → 12.706)."""
    if df < 1 or not 0 < confidence < 1:
        raise ValueError(f"t_critical needs df ≥ 1 and 0 < confidence < 1; got df={df}, confidence={confidence}.")
    low, high = 0.0, 1.0
    while _two_sided_mass(high, df) < confidence:
        low, high = high, 2 * high
    for _ in range(100):  # bisection to float precision
        mid = (low + high) / 2
        low, high = (mid, high) if _two_sided_mass(mid, df) < confidence else (low, mid)
    return (low + high) / 2


def paired_difference(values: Sequence[float], baseline: Sequence[float], confidence: float = 0.95) -> PairedDifference:
    """Mean of ``values[i] − baseline[i]`` (one pair per seed) with its t interval:
    mean ± t(n−1) · sd / √n. Needs at least two pairs: one says nothing about the noise."""
    if len(values) != len(baseline):
        raise ValueError(f"paired seeds: {len(values)} values against {len(baseline)} baseline values.")
    if len(values) < 2:
        raise ValueError("a paired interval needs at least 2 seeds per variant; use --seeds 3 or more.")
    differences = tuple(v - b for v, b in zip(values, baseline, strict=True))
    mean = statistics.fmean(differences)
    half = t_critical(len(differences) - 1, confidence) * statistics.stdev(differences) / math.sqrt(len(differences))
    return PairedDifference(differences, mean, mean - half, mean + half, confidence)
