"""``cnnattn scale``: time and peak memory of one attention layer against resolution, and the log-log slope.

Each (attention, size) runs in a fresh process under a memory limit and a timeout; a case that
runs out of memory or time is recorded as ``oom``/``timeout`` and larger sizes of that module are
skipped. The slope of log(time) against log(pixels) is fitted by least squares over the largest
``fit_points`` sizes that ran (small maps are dominated by fixed overheads): about 1 means linear in
pixels, about 2 quadratic.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from ..attention.registry import create_attention, get_attention_info
from .isolated import run_isolated
from .timing import peak_rss_bytes, rss_baseline, time_fn

__all__ = ["ScalePoint", "build_layer", "loglog_slope", "measure_layer", "scale"]


@dataclass
class ScalePoint:
    """One attention layer at one square resolution."""

    size: int
    status: str  # 'ok', 'oom', 'timeout' or 'skipped'
    seconds: float | None = None
    peak_memory_mb: float | None = None

    @property
    def pixels(self) -> int:
        return self.size * self.size


def build_layer(name: str, channels: int, kwargs: dict | None = None) -> torch.nn.Module:
    """A gate of ``channels``, or a conv kind mapping ``channels`` to ``channels`` with a 3×3 kernel."""
    if get_attention_info(name).kind == "gate":
        return create_attention(name, channels, **(kwargs or {}))
    return create_attention(name, channels, channels, 3, 1, **(kwargs or {}))


def measure_layer(
    name: str,
    channels: int,
    size: int,
    batch_size: int = 1,
    mode: str = "infer",
    repeats: int = 3,
    kwargs: dict | None = None,
    part: str = "layer",
) -> dict:
    """Median seconds and peak-RSS growth of one layer at ``size``² (run in a fresh process by :func:`scale`).

    ``part="attention"`` times only an augmented conv's attention branch (``attend``) on a fixed value tensor.
    """
    torch.manual_seed(0)
    layer = build_layer(name, channels, kwargs)
    layer.train(mode == "train")
    x = torch.randn(batch_size, channels, size, size, requires_grad=mode == "train")
    forward = layer
    if part == "attention":  # an augmented conv's attention branch alone, on a fixed value tensor
        value = layer.value(x).detach().requires_grad_(mode == "train")
        forward = lambda inp: layer.attend(inp, value)  # noqa: E731
    base = rss_baseline()

    def run() -> None:
        if mode == "train":
            forward(x).sum().backward()
        else:
            with torch.no_grad():
                forward(x)

    timing = time_fn(run, warmup=1, repeats=repeats)
    return {"status": "ok", "seconds": timing.median, "peak_memory_mb": (peak_rss_bytes() - base) / 2**20}


def loglog_slope(points: Sequence[ScalePoint], fit_points: int = 3) -> float | None:
    """Least-squares slope of log(seconds) on log(pixels) over the largest ``fit_points`` 'ok' points."""
    ok = sorted((p for p in points if p.status == "ok" and p.seconds), key=lambda p: p.size)[-fit_points:]
    if len(ok) < 2:
        return None
    xs, ys = [math.log(p.pixels) for p in ok], [math.log(p.seconds) for p in ok]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum((x - mean_x) ** 2 for x in xs)


def _default_memory_limit() -> int:
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.7)


def scale(
    names: Sequence[str],
    sizes: Sequence[int],
    *,
    channels: int = 64,
    batch_size: int = 1,
    mode: str = "infer",
    max_seconds: float = 120.0,
    memory_limit_bytes: int | None = None,
) -> dict[str, list[ScalePoint]]:
    """Measure each attention layer at each size (see module docs)."""
    for name in names:
        get_attention_info(name)  # fail early on unknown names
    limit = memory_limit_bytes or _default_memory_limit()
    results: dict[str, list[ScalePoint]] = {}
    for name in names:
        points: list[ScalePoint] = []
        for size in sorted(sizes):
            if points and points[-1].status in ("oom", "timeout", "skipped"):
                points.append(ScalePoint(size, "skipped"))
                continue
            out = run_isolated(
                "cnnattn.analysis.scaling.measure_layer",
                dict(name=name, channels=channels, size=size, batch_size=batch_size, mode=mode),
                timeout_s=max_seconds,
                memory_limit_bytes=limit,
            )
            points.append(ScalePoint(size, out["status"], out.get("seconds"), out.get("peak_memory_mb")))
        results[name] = points
    return results


def scale_rows(results: dict[str, list[ScalePoint]]) -> list[dict]:
    """Flat JSON-friendly rows, with each module's fitted slope."""
    return [
        {"attention": name, "slope": loglog_slope(points), **asdict(p)}
        for name, points in results.items()
        for p in points
    ]
