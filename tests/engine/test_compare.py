"""``compare``: every variant × seed trained under one recipe; table, CSV, Markdown and plot; resumable."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest

from cnnattn.cli import main
from cnnattn.engine import TrainConfig
from cnnattn.engine.compare import compare, variant_model
from tiny_detection import voc_flat

BASE = TrainConfig(
    data="builtin:digits", img_size=32, epochs=1, batch_size=32, workers=0, train_subset=64, progress=False,
    tensorboard=False,
)  # fmt: skip


def test_compare_writes_table_csv_markdown_and_plot(tmp_path: Path) -> None:
    rows = compare(BASE, ["none", "se"], seeds=2, output=tmp_path, latency_repeats=3)
    assert [r.variant for r in rows] == ["none", "se"] and [r.model for r in rows] == ["resnet18", "resnet18_se"]
    assert all(r.seeds == 2 and r.epochs == 1 and r.latency_ms > 0 and r.std >= 0 for r in rows)
    assert rows[1].params > rows[0].params and rows[1].macs > rows[0].macs
    with open(tmp_path / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["variant"] for r in table] == ["none", "se"] and float(table[0]["top1_mean"]) == pytest.approx(
        rows[0].mean
    )
    markdown = (tmp_path / "results.md").read_text()
    assert "Recipe: data builtin:digits (64 train images), 32×32 px, 1 epochs" in markdown and "| se " in markdown
    assert (tmp_path / "accuracy_vs_macs.png").stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["none-s0", "none-s1", "se-s0", "se-s1"]
    runs = [json.loads((tmp_path / f"se-s{s}" / "results.json").read_text())["top1"] for s in (0, 1)]
    assert rows[1].mean == pytest.approx(statistics.fmean(runs))
    assert rows[1].std == pytest.approx(statistics.stdev(runs))


def test_compare_reuses_finished_runs(tmp_path: Path) -> None:
    first = compare(BASE, ["none"], seeds=1, output=tmp_path, latency_repeats=2)
    (tmp_path / "none-s0" / "checkpoints" / "last.ckpt").unlink()  # a re-run must not need (or retrain) it
    again = compare(BASE, ["none"], seeds=1, output=tmp_path, latency_repeats=2)
    assert again[0].mean == first[0].mean


def test_budget_limits_each_run(tmp_path: Path) -> None:
    rows = compare(BASE.replace(epochs=50), ["none"], seeds=1, budget_minutes=0.05, output=tmp_path, latency_repeats=2)
    assert 1 <= rows[0].epochs < 50


def test_variant_names_are_checked_before_training() -> None:
    assert variant_model("resnet50", "none") == "resnet50" and variant_model("resnet18", "das") == "resnet18_das"
    with pytest.raises(ValueError, match="unknown model 'resnet18_sparkle'"):
        variant_model("resnet18", "sparkle")


def test_cli_compare(tmp_path: Path, capsys) -> None:
    argv = ["compare", "--data", "builtin:digits", "--attention", "none,eca", "--seeds", "1", "--epochs", "1"]
    argv += ["--img-size", "32", "--workers", "0", "--no-progress", "--output", str(tmp_path), "train_subset=32"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| none " in out and "| eca " in out and "top-1 % (mean ± std)" in out and "results.csv" in out


def test_cli_compare_detection_reports_ap_and_ap50(tmp_path: Path, capsys) -> None:
    data = voc_flat(tmp_path / "d", count=8)
    out = tmp_path / "c"
    argv = ["compare", "--task", "detect", "--detector", "retinanet", "--attention", "none,se", "--seeds", "2",
            "--data", str(data), "--epochs", "1", "--img-size", "64", "--batch-size", "2", "--workers", "0",
            "--no-progress", "--no-tensorboard", "--output", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "AP % (mean ± std)" in printed and "AP50 %" in printed and "top-1" not in printed
    assert "retinanet detector" in printed and "64 px short side" in printed
    with open(out / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["variant"] for r in table] == ["none", "se"]
    for row, variant in zip(table, ("none", "se"), strict=True):
        runs = [json.loads((out / f"{variant}-s{s}" / "results.json").read_text())["metrics"] for s in (0, 1)]
        assert float(row["AP_mean"]) == pytest.approx(statistics.fmean(r["AP"] for r in runs))
        assert float(row["AP_std"]) == pytest.approx(statistics.stdev(r["AP"] for r in runs))
        assert float(row["AP50_mean"]) == pytest.approx(statistics.fmean(r["AP50"] for r in runs))
        assert float(row["latency_ms"]) > 0 and int(row["macs"]) > 0
    assert int(table[1]["params"]) > int(table[0]["params"])  # the SE detector's backbone carries the gates
    assert "| se " in (out / "results.md").read_text()


def test_compare_localization_scores_attention_and_gradcam_against_digit_boxes(tmp_path: Path) -> None:
    pytest.importorskip("pytorch_grad_cam", reason="the viz extra is not installed")
    base = BASE.replace(data="builtin:cluttered", img_size=64, train_subset=64)
    rows = compare(base, ["none", "cbam"], seeds=1, output=tmp_path, latency_repeats=2, localization=True)
    none, cbam = rows
    assert none.pointing_attention is None and none.energy_attention is None  # no attention map to score
    for value in (none.pointing_gradcam, none.energy_gradcam, cbam.pointing_attention, cbam.energy_attention,
                  cbam.pointing_gradcam, cbam.energy_gradcam):  # fmt: skip
        assert value is not None and 0 <= value <= 1
    markdown = (tmp_path / "results.md").read_text()
    assert "pointing % attn / Grad-CAM" in markdown and f"| — / {100 * none.pointing_gradcam:.1f} " in markdown
    with open(tmp_path / "results.csv") as f:
        assert "energy_gradcam" in next(csv.reader(f))


def test_localization_needs_boxes_and_a_classifier_before_any_training(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="localisation needs images with known classes and boxes"):
        compare(BASE.replace(train_subset=32), ["none"], seeds=1, output=tmp_path, latency_repeats=1, localization=True)
    with pytest.raises(ValueError, match="localization scores classifiers"):
        compare(BASE.replace(task="detect"), ["none"], seeds=1, output=tmp_path, localization=True)
    assert not any(tmp_path.iterdir())  # refused before training anything
