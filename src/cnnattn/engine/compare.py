"""``compare``: several attention variants of one backbone, trained under one recipe with the same seeds.

Each (variant, seed) run is an ordinary ``train`` run in ``<output>/<variant>-s<seed>/``, seed by seed (every
variant on seed 0, then on seed 1, …); a run that finished is reused and an interrupted one resumed, so an
interrupted comparison continues where it stopped, and one run with fewer seeds is reused by one with more.
The summary gives the task's main metric, mean ± std over seeds (percent, validation split, last epoch: top-1
for classification, COCO AP for detection), its second (top-5, AP50), params and MACs of the
trained model at the training resolution, and batch-1 inference latency on the device of ``bench`` (median of
interleaved runs), as a printed table, ``results.csv``, ``results.md`` and an accuracy-vs-MACs PNG, with every
run's validation curve (``curves.csv``, ``curves.png``; ``patience`` trains to convergence). Every variant
runs on the same seeds (seed ``s`` gives every variant the same data order, augmentation and initial backbone
weights), so each variant's difference to the baseline is paired by seed: the mean per-seed difference with a
95 % Student-t interval (:mod:`cnnattn.analysis.stats`).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..analysis.bench import bench
from ..analysis.complexity import count_macs, count_params
from ..analysis.plots import plot_curves, plot_metric_vs_macs
from ..analysis.stats import PairedDifference, paired_difference
from ..models import parse_model_name
from ..utils import atomic_write_text, format_table
from ..visualize.localization import LOCALIZATION_KEYS
from .config import DEFAULT_ATTENTIONS, TrainConfig
from .errors import TrainingInterrupted
from .history import epoch_curve
from .tasks import TaskMetrics, get_task
from .training import TrainResult, build_model, train

__all__ = [
    "CompareRow", "add_paired_differences", "compare", "describe_recipe",
    "differences", "headers", "variant_model",
]  # fmt: skip

Report = Callable[[str], None]


@dataclass
class CompareRow:
    """One variant: the task's two metrics over seeds (percent), size, cost and latency. For classification
    ``mean``/``std`` are top-1 and ``second_mean`` top-5; for detection COCO AP and AP50. ``per_seed`` holds the
    main metric of seeds 0, 1, …; ``paired`` its per-seed difference to the baseline variant (None for the
    baseline itself and with one seed)."""

    variant: str
    model: str
    mean: float
    std: float
    second_mean: float
    seeds: int
    epochs: int
    params: int
    macs: int
    latency_ms: float
    train_minutes: float
    task: str = "classify"
    pointing_attention: float | None = None
    energy_attention: float | None = None
    pointing_gradcam: float | None = None
    energy_gradcam: float | None = None
    chance: float | None = None
    per_seed: tuple[float, ...] = ()
    paired: PairedDifference | None = None
    baseline: str | None = None

    @property
    def localized(self) -> bool:
        return any(getattr(self, k) is not None for k in LOCALIZATION_KEYS)

    @property
    def metrics(self) -> TaskMetrics:
        return get_task(self.task).metrics

    def cells(self) -> tuple[str, ...]:
        return (
            self.variant,
            self.model,
            f"{self.mean:.2f} ± {self.std:.2f}",
            f"{self.second_mean:.2f}",
            f"{self.params / 1e6:.3f}",
            f"{self.macs / 1e6:.1f}",
            self._paired_cell(),
            f"{self.latency_ms:.2f}",
            f"{self.train_minutes:.1f}",
        ) + (self._localization_cells() if self.localized else ())

    def _paired_cell(self) -> str:
        p = self.paired
        return "—" if p is None else f"{p.mean:+.2f} [{p.low:+.2f}, {p.high:+.2f}]"

    def _localization_cells(self) -> tuple[str, ...]:
        def pair(kind: str) -> str:
            values = (getattr(self, f"{kind}_attention"), getattr(self, f"{kind}_gradcam"))
            return " / ".join("—" if v is None else f"{100 * v:.1f}" for v in values)

        return pair("pointing"), pair("energy")

    def record(self) -> dict[str, object]:
        """The CSV row, its metric columns named by the task (``top1_mean, top1_std, top5_mean`` or
        ``AP_mean, AP_std, AP50_mean``)."""
        m, values = self.metrics, asdict(self)
        renamed = {"mean": f"{m.main}_mean", "std": f"{m.main}_std", "second_mean": f"{m.second}_mean"}
        dropped = {"task", "per_seed", "paired", "baseline"}
        kept = [k for k in values if k not in dropped and (self.localized or k not in LOCALIZATION_KEYS)]
        record = {renamed.get(k, k): values[k] for k in kept}
        p = self.paired
        record |= {
            f"{m.main}_per_seed": ";".join(f"{v:.4f}" for v in self.per_seed),
            "baseline": self.baseline or "",
            f"{m.main}_delta": "" if p is None else f"{p.mean:.4f}",
            f"{m.main}_delta_low": "" if p is None else f"{p.low:.4f}",
            f"{m.main}_delta_high": "" if p is None else f"{p.high:.4f}",
        }
        return record


def headers(task: str = "classify", localized: bool = False) -> tuple[str, ...]:
    """The table's column labels for ``task`` (and the localisation columns)."""
    m = get_task(task).metrics
    columns = ("variant", "model", f"{m.main_label} % (mean ± std)", f"{m.second_label} %", "params (M)", "MMACs",
               "Δ vs baseline, paired [95 % CI]", "latency (ms)", "train (min)")  # fmt: skip
    return columns + (("pointing % attn / Grad-CAM", "energy in box % attn / Grad-CAM") if localized else ())


HEADERS = headers()


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
    try:
        return train(config, resume=resume, label=label), False
    except TrainingInterrupted as err:
        raise TrainingInterrupted(
            f"{label}: {err.state}", "Run the same compare command again: finished runs are reused, this one resumes."
        ) from None


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


def _summarise(variant: str, config: TrainConfig, runs: list[TrainResult]) -> CompareRow:
    metrics = get_task(config.task).metrics
    model = build_model(config.replace(init_checkpoint=None), model_classes(runs[0]))  # for size and cost only
    main, second = zip(*(metrics.of(r) for r in runs), strict=True)
    return CompareRow(
        variant=variant,
        model=config.model,
        mean=statistics.fmean(main),
        std=statistics.stdev(main) if len(main) > 1 else 0.0,
        second_mean=statistics.fmean(second),
        per_seed=tuple(main),
        seeds=len(runs),
        epochs=min(r.epochs for r in runs),
        params=count_params(model),
        macs=count_macs(model, (3, config.img_size, config.img_size)),
        latency_ms=0.0,
        train_minutes=sum(r.seconds for r in runs) / 60,
        task=config.task,
    )


def _check_localization(base: TrainConfig) -> None:
    """Before any training: localisation needs a classifier and data whose objects have boxes."""
    if get_task(base.task).detects:
        raise ValueError("localization scores classifiers; drop --localization for detection.")
    if base.data != "builtin:cluttered":
        raise ValueError(
            f"{base.data}: localisation needs images with known classes and boxes, e.g. builtin:cluttered "
            "(the only built-in data with object boxes so far)."
        )


def _localize(row: CompareRow, runs: list[TrainResult], data: str, say: Report) -> None:
    """Fill the row's localisation columns: the mean over its runs (None where a map kind is absent)."""
    from ..visualize.localization import subject_localization
    from .trained import trained_subject

    say(f"{row.variant}: localisation of the attention map and Grad-CAM on {data}'s boxes")
    found = [subject_localization(trained_subject(r.last_checkpoint), data) for r in runs]
    for key in LOCALIZATION_KEYS:
        values = [f[key] for f in found]
        setattr(row, key, None if None in values else statistics.fmean(values))


def model_classes(result: TrainResult) -> int:
    """The output count of a run's model: its classes, plus the background for a detector."""
    return get_task(result.task).outputs(result.num_classes)


def compare(
    base: TrainConfig,
    attentions: Sequence[str] = DEFAULT_ATTENTIONS,
    *,
    backbone: str = "resnet18",
    seeds: int = 2,
    budget_minutes: float | None = None,
    output: str | Path = "runs/compare",
    latency_repeats: int = 20,
    localization: bool = False,
    report: Report | None = None,
) -> list[CompareRow]:
    """Train every variant for every seed ``0..seeds-1`` with ``base``'s recipe; write and return the table.

    ``budget_minutes`` (optional) is shared equally by all runs as a wall-clock limit each; runs stop at
    ``base.epochs`` or their share, whichever comes first (the table reports the epochs completed).
    ``report`` (e.g. ``print``) receives the story: the plan, each run's start (or reuse) and result with an
    estimate of the time left; each run's progress is labelled ``[i/N] <variant> · seed <s>``.
    ``localization``: also score where each run's attention map and Grad-CAM point, against the objects' boxes
    of the validation images (data with boxes only, e.g. ``builtin:cluttered``; see
    :func:`~cnnattn.visualize.localization.subject_localization`), averaged over seeds.
    """
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1; got {seeds}.")
    if not attentions:
        raise ValueError("give at least one attention variant, e.g. none,se,cbam.")
    models = {variant: variant_model(backbone, variant) for variant in attentions}  # fail fast on a typo
    if localization:
        _check_localization(base)
    output, say = Path(output), report or _silent
    share = budget_minutes / (len(models) * seeds) if budget_minutes else None
    remaining = _Remaining(len(models) * seeds)
    say(
        f"compare: {len(models)} variant(s) × {seeds} seed(s) = {remaining.total} runs of {backbone} "
        f"({', '.join(models)}); {describe_recipe(base, seeds, base.img_size, budget_minutes)}; results in {output}"
    )
    results: dict[str, list[TrainResult]] = {variant: [] for variant in models}
    planned: dict[str, TrainConfig] = {}
    metrics = get_task(base.task).metrics
    for index, (seed, variant) in enumerate(itertools.product(range(seeds), models), start=1):
        label = f"[{index}/{remaining.total}] {variant} · seed {seed}"
        run_output = str(output / f"{variant}-s{seed}")
        config = base.replace(model=models[variant], seed=seed, output=run_output, max_minutes=share)
        planned.setdefault(variant, config)
        result, reused = _run(config, label, say)
        results[variant].append(result)
        left = remaining.after(result.seconds, reused)
        main = metrics.of(result)[0]
        say(f"{label}: {metrics.main_label} {main:.2f} % after {result.epochs} epoch(s); {left}")
    rows = []
    for variant, runs in results.items():
        resolved = _resolved_config(Path(runs[0].output), planned[variant])
        rows.append(_summarise(variant, resolved, runs))
    img_size = resolved.img_size or 224
    latencies = bench(
        list(models.values()),
        img_size=img_size,
        repeats=latency_repeats,
        memory=False,
        num_classes=model_classes(runs[0]),
        detector=resolved.detector if get_task(resolved.task).detects else None,
        model_kwargs=resolved.model_kwargs,
    )
    for row, timing in zip(rows, latencies, strict=True):
        row.latency_ms = timing.median_ms
    add_paired_differences(rows)
    if localization:
        for row, runs in zip(rows, results.values(), strict=True):
            _localize(row, runs, base.data, say)
    _write(rows, output, base, seeds, img_size, budget_minutes)
    _write_curves(results, output, metrics, f"{Path(base.data).name}, {img_size} px, {seeds} seed(s)")
    return rows


def _write_curves(results: dict[str, list[TrainResult]], output: Path, metrics: TaskMetrics, title: str) -> None:
    """``curves.csv`` (variant, seed, epoch, main metric after that epoch) and ``curves.png``: how each variant
    learned, and where a run stopped (``patience``) or was cut (``--budget``)."""
    key = f"val/{metrics.main}"
    curves = {v: [epoch_curve(r.output, key) for r in runs] for v, runs in results.items()}
    lines = [f"variant,seed,epoch,{metrics.main}"]
    lines += [f"{v},{seed},{epoch},{value:.4f}" for v, seeds in curves.items()
              for seed, curve in enumerate(seeds) for epoch, value in enumerate(curve, start=1)]  # fmt: skip
    atomic_write_text(output / "curves.csv", "\n".join(lines) + "\n")
    plot_curves(curves, output / "curves.png", ylabel=f"validation {metrics.main_label} %", title=title)


def describe_recipe(base: TrainConfig, seeds: int, img_size: int | None, budget: float | None) -> str:
    """One line: data, size, epochs, batch, optimiser, schedule, label smoothing or detector, seeds."""
    subset = f" ({base.train_subset} train images)" if base.train_subset else ""
    size, task = get_task(base.task).describe(base, img_size)
    return (
        f"data {base.data}{subset}, {size}, {base.epochs} epochs{f' or {budget} min in all' if budget else ''}, "
        f"batch {base.batch_size}, {base.opt} lr {base.lr or 'scaled'}, {base.sched} schedule, {task}, "
        f"seeds 0..{seeds - 1}"
    )


def baseline_row(rows: Sequence[CompareRow]) -> CompareRow:
    """The variant the others are compared with: ``none`` if present, else the first."""
    return next((r for r in rows if r.variant == "none"), rows[0])


def add_paired_differences(rows: Sequence[CompareRow]) -> None:
    """Set every other row's ``paired``: its main metric minus the baseline's, seed by seed, with the 95 % t
    interval (left None with one seed)."""
    base = baseline_row(rows)
    for row in rows:
        if row is not base and len(row.per_seed) >= 2:
            row.paired, row.baseline = paired_difference(row.per_seed, base.per_seed), base.variant


def differences(rows: Sequence[CompareRow]) -> list[str]:
    """Plain sentences, one per variant: its paired difference to the baseline in the main metric (top-1 or AP)
    with the 95 % interval, and whether that interval excludes zero (a difference shown) or includes it."""
    base = baseline_row(rows)
    others = [r for r in rows if r is not base]
    if not others:
        return []
    if min(r.seeds for r in rows) < 2:
        return [
            f"With one seed per variant the seed noise is unknown, so no difference from {base.variant} is judged; "
            "use --seeds 3 or more."
        ]
    return [_difference(row, base) for row in others if row.paired is not None]


def _difference(row: CompareRow, base: CompareRow) -> str:
    p, label = row.paired, base.metrics.main_label
    verdict = (
        "includes zero: no difference shown at this number of seeds"
        if p.includes_zero
        else "excludes zero: a difference beyond the seed noise"
    )
    return (
        f"{row.variant}: {label} {p.mean:+.2f} points vs {base.variant} ({row.mean:.2f} vs {base.mean:.2f} %); "
        f"95 % interval over {p.pairs} paired seeds [{p.low:+.2f}, {p.high:+.2f}] {verdict}."
    )


def localization_notes(rows: Sequence[CompareRow]) -> list[str]:
    """What the localisation columns are measured against: a map without information scores the chance level."""
    chance = next((r.chance for r in rows if r.chance is not None), None)
    if chance is None:
        return []
    return [
        f"Localisation: a map without information points into the box, and puts its energy there, about "
        f"{100 * chance:.1f} % of the time (the boxes' mean share of the image); — marks a variant without a "
        "spatial map that depends on the image."
    ]


def _silent(_: str) -> None:
    """The default report: say nothing."""


def _resolved_config(run: Path, planned: TrainConfig) -> TrainConfig:
    """The recipe a run trained with: its saved config.yaml (with img_size filled in by the run), or, for a finished
    run kept without one (only its results.json copied, e.g. from docs/results), the recipe planned for it here."""
    import yaml

    saved = run / "config.yaml"
    return TrainConfig(**yaml.safe_load(saved.read_text())) if saved.is_file() else planned


def table(rows: Sequence[CompareRow]) -> str:
    """The comparison as a Markdown table."""
    return format_table(headers(rows[0].task, rows[0].localized), [r.cells() for r in rows])


def _write(
    rows: Sequence[CompareRow], output: Path, base: TrainConfig, seeds: int, img_size: int, budget: float | None
) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0].record()))
    writer.writeheader()
    writer.writerows(r.record() for r in rows)
    atomic_write_text(output / "results.csv", buffer.getvalue())
    recipe = describe_recipe(base, seeds, img_size, budget)
    findings = "\n".join(f"- {line}" for line in differences(rows) + localization_notes(rows))
    atomic_write_text(output / "results.md", f"Recipe: {recipe}.\n\n{table(rows)}\n\n{findings}\n")
    plot_metric_vs_macs(
        [r.variant for r in rows],
        [r.macs for r in rows],
        [r.mean for r in rows],
        output / "accuracy_vs_macs.png",
        ylabel=f"{rows[0].metrics.main_label} % (mean ± std over seeds)",
        errors=[r.std for r in rows],
        title=f"{Path(base.data).name}, {img_size} px, {base.epochs} epochs, {seeds} seed(s)",
    )
