"""A run's validation curve, read back from its CSV logs (``<run>/logs/version_*/metrics.csv``)."""

from __future__ import annotations

import csv
from pathlib import Path

__all__ = ["epoch_curve"]


def _version(folder: Path) -> int:
    return int(folder.name.removeprefix("version_")) if folder.name.removeprefix("version_").isdigit() else -1


def epoch_curve(run: str | Path, key: str) -> list[float]:
    """The validation metric ``key`` (e.g. ``'val/top1'``, percent) after epochs 1, 2, …, in order. A resumed run
    logs into a new version folder; for an epoch logged twice, the later folder wins. Empty without logs."""
    by_epoch: dict[int, float] = {}
    for folder in sorted(Path(run, "logs").glob("version_*"), key=_version):
        table = folder / "metrics.csv"
        if not table.is_file():
            continue
        with open(table, newline="") as f:
            for row in csv.DictReader(f):
                if row.get(key) not in (None, "") and row.get("epoch") not in (None, ""):
                    by_epoch[int(float(row["epoch"]))] = float(row[key])
    return [by_epoch[e] for e in sorted(by_epoch)]
