"""Complexity, speed and plots."""

from .complexity import complexity_table, count_macs, count_params
from .profile import ModuleCost, Profile, profile
from .timing import (
    Timing,
    machine_info,
    peak_rss_bytes,
    rss_baseline,
    time_fn,
    time_interleaved,
    time_models,
)

__all__ = [
    "ModuleCost",
    "Profile",
    "Timing",
    "complexity_table",
    "count_macs",
    "count_params",
    "machine_info",
    "peak_rss_bytes",
    "profile",
    "rss_baseline",
    "time_fn",
    "time_interleaved",
    "time_models",
]
