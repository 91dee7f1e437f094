"""Complexity, speed and plots."""

from .complexity import complexity_table, count_macs, count_params
from .timing import Timing, machine_info, peak_rss_bytes, time_fn, time_interleaved

__all__ = [
    "Timing",
    "complexity_table",
    "count_macs",
    "count_params",
    "machine_info",
    "peak_rss_bytes",
    "time_fn",
    "time_interleaved",
]
