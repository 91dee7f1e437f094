"""Plots (matplotlib, no display needed): scaling against resolution, a metric against MACs, epoch curves.

Figures are ``matplotlib.figure.Figure`` objects drawn without pyplot, so importing cnnattn never changes the
user's matplotlib backend (a notebook keeps its inline backend) and no figure is left open in pyplot's registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from .scaling import ScalePoint, loglog_slope

__all__ = ["new_figure", "plot_curves", "plot_metric_vs_macs", "plot_scaling", "save_figure"]


def plot_scaling(results: dict[str, list[ScalePoint]], path: str | Path, title: str = "") -> Path:
    """Log-log time against pixels per attention layer, with fitted slopes in the legend; OOM marked ×."""
    fig = new_figure(6.4, 4.4, dpi=120)
    ax = fig.subplots()
    for name, points in results.items():
        ok = [p for p in points if p.status == "ok"]
        slope = loglog_slope(points)
        label = f"{name} (slope {slope:.2f})" if slope is not None else name
        (line,) = ax.plot([p.pixels for p in ok], [p.seconds for p in ok], marker="o", label=label)
        failed = [p for p in points if p.status in ("oom", "timeout")]
        if failed and ok:
            ax.scatter(
                [p.pixels for p in failed], [ok[-1].seconds] * len(failed), marker="x", s=60, color=line.get_color()
            )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="pixels (H·W)",
        ylabel="seconds per forward",
        title=title or "attention layer time vs resolution",
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_metric_vs_macs(
    labels: Sequence[str],
    macs: Sequence[float],
    values: Sequence[float],
    path: str | Path,
    *,
    ylabel: str,
    errors: Sequence[float] | None = None,
    title: str = "",
) -> Path:
    """Scatter of a metric (top-1 %, latency ms, ...) against GMACs, one labelled point per model."""
    fig = new_figure(6.4, 4.4, dpi=120)
    ax = fig.subplots()
    gmacs = [m / 1e9 for m in macs]
    ax.errorbar(gmacs, values, yerr=errors, fmt="o", capsize=3)
    for label, x, y in zip(labels, gmacs, values, strict=True):
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set(xlabel="GMACs per image", ylabel=ylabel, title=title)
    ax.grid(True, alpha=0.3)
    return save_figure(fig, path)


def plot_curves(
    curves: dict[str, Sequence[Sequence[float]]], path: str | Path, *, ylabel: str, title: str = ""
) -> Path:
    """A metric after each epoch, one line per label: the mean over its seeds that reached that epoch, with
    every seed's own curve faint behind it (seeds may stop at different epochs)."""
    fig = new_figure(6.4, 4.4, dpi=120)
    ax = fig.subplots()
    for label, seeds in curves.items():
        longest = max((len(c) for c in seeds), default=0)
        mean = [sum(c[e] for c in seeds if len(c) > e) / sum(len(c) > e for c in seeds) for e in range(longest)]
        (line,) = ax.plot(range(1, longest + 1), mean, marker="o", markersize=3, label=label)
        for curve in seeds:
            ax.plot(range(1, len(curve) + 1), curve, color=line.get_color(), alpha=0.25, linewidth=0.8)
    ax.set(xlabel="epoch", ylabel=ylabel, title=title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def new_figure(width: float, height: float, dpi: int = 100) -> Figure:
    """A figure of ``width`` × ``height`` inches, outside pyplot (nothing to close; the backend is untouched)."""
    return Figure(figsize=(width, height), dpi=dpi)


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Lay out ``fig`` and write it to ``path`` (format from the suffix, e.g. PNG), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    return path
