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
import json
import statistics
from collections.abc import Sequence
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

__all__ = ["CompareRow", "compare", "variant_model"]


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


def _run(config: TrainConfig) -> TrainResult:
    """Reuse a finished run, resume an interrupted one, or start it."""
    output = Path(config.output or "")
    results = output / "results.json"
    if results.is_file():
        try:
            return TrainResult(**json.loads(results.read_text()))
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"{results} is not a results file of this cnnattn version ({err}); delete {output} to retrain it."
            ) from None
    if config.compile:  # a fresh compile cache per run: Dynamo stops compiling a function after 8 architectures
        torch._dynamo.reset()
    return train(config, resume=(output / "checkpoints" / "last.ckpt").is_file())


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
) -> list[CompareRow]:
    """Train every variant for every seed ``0..seeds-1`` with ``base``'s recipe; write and return the table.

    ``budget_minutes`` (optional) is shared equally by all runs as a wall-clock limit each; runs stop at
    ``base.epochs`` or their share, whichever comes first (the table reports the epochs completed).
    """
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1; got {seeds}.")
    if not attentions:
        raise ValueError("give at least one attention variant, e.g. none,se,cbam.")
    models = {variant: variant_model(backbone, variant) for variant in attentions}  # fail fast on a typo
    output = Path(output)
    share = budget_minutes / (len(models) * seeds) if budget_minutes else None
    rows = []
    for variant, model in models.items():
        runs = []
        for seed in range(seeds):
            config = base.replace(model=model, seed=seed, output=str(output / f"{variant}-s{seed}"), max_minutes=share)
            runs.append(_run(config))
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
    subset = f" ({base.train_subset} train images)" if base.train_subset else ""
    recipe = (
        f"data {base.data}{subset}, {img_size}×{img_size} px, {base.epochs} epochs"
        f"{f' or {budget} min in all' if budget else ''}, batch {base.batch_size}, {base.opt} lr "
        f"{base.lr or 'scaled'}, {base.sched} schedule, label smoothing {base.label_smoothing}, seeds 0..{seeds - 1}"
    )
    atomic_write_text(output / "results.md", f"Recipe: {recipe}.\n\n{table(rows)}\n")
    plot_metric_vs_macs(
        [r.variant for r in rows],
        [r.macs for r in rows],
        [r.top1_mean for r in rows],
        output / "accuracy_vs_macs.png",
        ylabel="top-1 % (mean ± std over seeds)",
        errors=[r.top1_std for r in rows],
        title=f"{Path(base.data).name}, {img_size} px, {base.epochs} epochs, {seeds} seed(s)",
    )
