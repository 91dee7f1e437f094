"""Complexity, speed and plots."""

from .complexity import count_macs, count_params
from .timing import Timing, machine_info, peak_rss_bytes, time_fn

__all__ = ["Timing", "count_macs", "count_params", "machine_info", "peak_rss_bytes", "time_fn"]
