"""``compare``: several attention variants of one backbone, trained under one recipe with the same seeds.

Each (variant, seed) run is an ordinary ``train`` run in ``<output>/<variant>-s<seed>/``; a run that
finished is reused and an interrupted one resumed, so an interrupted comparison continues where it
stopped. The summary gives top-1 mean ± std over seeds (percent, validation split, last epoch), params
and MACs of the trained model at the training resolution, and batch-1 CPU/GPU inference latency
(median of interleaved runs), as a printed table, ``results.csv``, ``results.md`` and an accuracy-vs-MACs
PNG.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..analysis.bench import bench
from ..analysis.complexity import count_macs, count_params
from ..analysis.plots import plot_metric_vs_macs
from ..models import parse_model_name
from ..utils import atomic_write_text, format_table
from .config import DEFAULT_ATTENTIONS, TrainConfig
from .training import TrainResult, build_model, train

__all__ = ["CompareRow", "compare", "describe_recipe", "differences", "variant_model"]

Report = Callable[[str], None]


@dataclass
class CompareRow:
    """One variant: accuracy over seeds (percent), size, cost and latency."""

    variant: str
    model: str
    top1_mean: float
    top1_std: float
    top5_mean: float
    seeds: int
    epochs: int
    params: int
    macs: int
    latency_ms: float
    train_minutes: float

    def cells(self) -> tuple[str, ...]:
        return (
            self.variant,
            self.model,
            f"{self.top1_mean:.2f} ± {self.top1_std:.2f}",
            f"{self.top5_mean:.2f}",
            f"{self.params / 1e6:.3f}",
            f"{self.macs / 1e6:.1f}",
            f"{self.latency_ms:.2f}",
            f"{self.train_minutes:.1f}",
        )


HEADERS = ("variant", "model", "top-1 % (mean ± std)", "top-5 %", "params (M)", "MMACs", "latency (ms)", "train (min)")


def variant_model(backbone: str, variant: str) -> str:
    """``('resnet18', 'se')`` → ``'resnet18_se'``; ``'none'`` is the plain backbone. ValueError if unknown."""
    name = backbone if variant == "none" else f"{backbone}_{variant}"
    parse_model_name(name)
    return name


def _run(config: TrainConfig, label: str, say: Report) -> tuple[TrainResult, bool]:
    """Reuse a finished run (returns True), resume an interrupted one, or start it."""
    output = Path(config.output or "")
    results = output / "results.json"
    if results.is_file():
        try:
            result = TrainResult(**json.loads(results.read_text()))
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"{results} is not a results file of this cnnattn version ({err}); delete {output} to retrain it."
            ) from None
        say(f"{label}: reused, finished earlier in {output}")
        return result, True
    resume = (output / "checkpoints" / "last.ckpt").is_file()
    say(f"{label}: {'resuming' if resume else 'training'} in {output}")
    if config.compile:  # a fresh compile cache per run: Dynamo stops compiling a function after 8 architectures
        torch._dynamo.reset()
    return train(config, resume=resume, label=label), False


class _Remaining:
    """Estimate of the comparison's remaining time: mean minutes of the runs trained so far × runs left."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.trained_seconds, self.trained = total, 0, 0.0, 0

    def after(self, seconds: float, reused: bool) -> str:
        self.done += 1
        if not reused:
            self.trained_seconds, self.trained = self.trained_seconds + seconds, self.trained + 1
        left = self.total - self.done
        if left == 0:
            return "all runs done"
        if not self.trained:
            return f"{left} run(s) left"
        return f"{left} run(s) left, about {left * self.trained_seconds / self.trained / 60:.1f} min"


def _summarise(variant: str, config: TrainConfig, runs: list[TrainResult], num_classes: int) -> CompareRow:
    model = build_model(config.replace(init_checkpoint=None), num_classes)  # only its size and cost are needed
    top1 = [r.top1 for r in runs]
    return CompareRow(
        variant=variant,
        model=config.model,
        top1_mean=statistics.fmean(top1),
        top1_std=statistics.stdev(top1) if len(top1) > 1 else 0.0,
        top5_mean=statistics.fmean(r.top5 for r in runs),
        seeds=len(runs),
        epochs=min(r.epochs for r in runs),
        params=count_params(model),
        macs=count_macs(model, (3, config.img_size, config.img_size)),
        latency_ms=0.0,
        train_minutes=sum(r.seconds for r in runs) / 60,
    )


def compare(
    base: TrainConfig,
    attentions: Sequence[str] = DEFAULT_ATTENTIONS,
    *,
    backbone: str = "resnet18",
    seeds: int = 2,
    budget_minutes: float | None = None,
    output: str | Path = "runs/compare",
    latency_repeats: int = 20,
    report: Report | None = None,
) -> list[CompareRow]:
    """Train every variant for every seed ``0..seeds-1`` with ``base``'s recipe; write and return the table.

    ``budget_minutes`` (optional) is shared equally by all runs as a wall-clock limit each; runs stop at
    ``base.epochs`` or their share, whichever comes first (the table reports the epochs completed).
    ``report`` (e.g. ``print``) receives the story: the plan, each run's start (or reuse) and result with an
    estimate of the time left; each run's progress is labelled ``[i/N] <variant> · seed <s>``.
    """
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1; got {seeds}.")
    if not attentions:
        raise ValueError("give at least one attention variant, e.g. none,se,cbam.")
    models = {variant: variant_model(backbone, variant) for variant in attentions}  # fail fast on a typo
    output, say = Path(output), report or _silent
    share = budget_minutes / (len(models) * seeds) if budget_minutes else None
    remaining = _Remaining(len(models) * seeds)
    say(
        f"compare: {len(models)} variant(s) × {seeds} seed(s) = {remaining.total} runs of {backbone} "
        f"({', '.join(models)}); {describe_recipe(base, seeds, base.img_size, budget_minutes)}; results in {output}"
    )
    results: dict[str, list[TrainResult]] = {variant: [] for variant in models}
    for index, (variant, seed) in enumerate(itertools.product(models, range(seeds)), start=1):
        label = f"[{index}/{remaining.total}] {variant} · seed {seed}"
        run_output = str(output / f"{variant}-s{seed}")
        config = base.replace(model=models[variant], seed=seed, output=run_output, max_minutes=share)
        result, reused = _run(config, label, say)
        results[variant].append(result)
        left = remaining.after(result.seconds, reused)
        say(f"{label}: top-1 {result.top1:.2f} % after {result.epochs} epoch(s); {left}")
    rows = []
    for variant, runs in results.items():
        resolved = TrainConfig(**_saved_config(Path(runs[0].output)))  # img_size filled in by the run
        rows.append(_summarise(variant, resolved, runs, runs[0].num_classes))
    img_size, num_classes = resolved.img_size or 224, runs[0].num_classes
    latencies = bench(
        list(models.values()), img_size=img_size, repeats=latency_repeats, memory=False, num_classes=num_classes
    )
    for row, timing in zip(rows, latencies, strict=True):
        row.latency_ms = timing.median_ms
    _write(rows, output, base, seeds, img_size, budget_minutes)
    return rows


def describe_recipe(base: TrainConfig, seeds: int, img_size: int | None, budget: float | None) -> str:
    """One line: data, size, epochs, batch, optimiser, schedule, smoothing, seeds."""
    subset = f" ({base.train_subset} train images)" if base.train_subset else ""
    size = f"{img_size}×{img_size} px" if img_size else "the data's default size"
    return (
        f"data {base.data}{subset}, {size}, {base.epochs} epochs{f' or {budget} min in all' if budget else ''}, "
        f"batch {base.batch_size}, {base.opt} lr {base.lr or 'scaled'}, {base.sched} schedule, label smoothing "
        f"{base.label_smoothing}, seeds 0..{seeds - 1}"
    )


def differences(rows: Sequence[CompareRow]) -> list[str]:
    """Plain sentences: each variant whose top-1 differs from the baseline (``none`` if present, else the first
    row) by more than two standard errors of the difference of seed means, or that none does."""
    base = next((r for r in rows if r.variant == "none"), rows[0])
    others = [r for r in rows if r is not base]
    if not others:
        return []
    if min(r.seeds for r in rows) < 2:
        return [
            f"With one seed per variant the seed noise is unknown, so no difference from {base.variant} is judged; "
            "use --seeds 3 or more."
        ]
    lines = []
    for row in others:
        delta = row.top1_mean - base.top1_mean
        noise = 2 * math.sqrt(row.top1_std**2 / row.seeds + base.top1_std**2 / base.seeds)
        if abs(delta) > noise:
            lines.append(
                f"{row.variant}: top-1 {delta:+.2f} points vs {base.variant} ({row.top1_mean:.2f} vs "
                f"{base.top1_mean:.2f} %), beyond the seed noise (2 standard errors = {noise:.2f})."
            )
    return lines or [
        f"No variant differs from {base.variant} beyond the seed noise (2 standard errors of the difference)."
    ]


def _silent(_: str) -> None:
    """The default report: say nothing."""


def _saved_config(run: Path) -> dict:
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text())


def table(rows: Sequence[CompareRow]) -> str:
    """The comparison as a Markdown table."""
    return format_table(HEADERS, [r.cells() for r in rows])


def _write(
    rows: Sequence[CompareRow], output: Path, base: TrainConfig, seeds: int, img_size: int, budget: float | None
) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(asdict(rows[0])))
    writer.writeheader()
    writer.writerows(asdict(r) for r in rows)
    atomic_write_text(output / "results.csv", buffer.getvalue())
    recipe = describe_recipe(base, seeds, img_size, budget)
    findings = "\n".join(f"- {line}" for line in differences(rows))
    atomic_write_text(output / "results.md", f"Recipe: {recipe}.\n\n{table(rows)}\n\n{findings}\n")
    plot_metric_vs_macs(
        [r.variant for r in rows],
        [r.macs for r in rows],
        [r.top1_mean for r in rows],
        output / "accuracy_vs_macs.png",
        ylabel="top-1 % (mean ± std over seeds)",
        errors=[r.top1_std for r in rows],
        title=f"{Path(base.data).name}, {img_size} px, {base.epochs} epochs, {seeds} seed(s)",
    )
