"""``compare``: every variant × seed trained under one recipe; table, CSV, Markdown and plot; resumable."""

from __future__ import annotations

import csv
import json
import shutil
import statistics
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

import cnnattn
from cnnattn.analysis.stats import t_critical
from cnnattn.cli import main
from cnnattn.engine import TrainConfig
from cnnattn.engine.compare import CompareRow, add_paired_differences, compare, differences, variant_model
from cnnattn.engine.tasks import get_task
from cnnattn.engine.training import training_model
from tiny_detection import voc_flat

BASE = TrainConfig(
    data="builtin:digits", img_size=32, epochs=1, batch_size=32, workers=0, train_subset=64, progress=False,
    tensorboard=False,
)  # fmt: skip


def test_compare_writes_table_csv_markdown_and_plot(tmp_path: Path) -> None:
    said: list[str] = []
    rows = compare(BASE, ["none", "se"], seeds=2, output=tmp_path, latency_repeats=3, report=said.append)
    assert [r.variant for r in rows] == ["none", "se"] and [r.model for r in rows] == ["resnet18", "resnet18_se"]
    started = [m.split(":")[0] for m in said if ": training in" in m]  # seed by seed: all variants on seed 0 first
    assert started == ["[1/4] none · seed 0", "[2/4] se · seed 0", "[3/4] none · seed 1", "[4/4] se · seed 1"]
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
    runs = {v: [json.loads((tmp_path / f"{v}-s{s}" / "results.json").read_text())["top1"] for s in (0, 1)]
            for v in ("none", "se")}  # fmt: skip
    assert rows[1].mean == pytest.approx(statistics.fmean(runs["se"]))
    assert rows[1].std == pytest.approx(statistics.stdev(runs["se"]))
    # Paired by seed: the CSV's delta is the mean of the per-seed differences, its interval mean ± t(1)·sd/√2.
    diffs = [se - none for se, none in zip(runs["se"], runs["none"], strict=True)]
    half = t_critical(1) * statistics.stdev(diffs) / 2**0.5
    assert [float(v) for v in table[1]["top1_per_seed"].split(";")] == pytest.approx(runs["se"], abs=1e-4)
    assert table[1]["baseline"] == "none" and table[0]["top1_delta"] == ""
    assert float(table[1]["top1_delta"]) == pytest.approx(statistics.fmean(diffs), abs=1e-4)
    low, high = float(table[1]["top1_delta_low"]), float(table[1]["top1_delta_high"])
    assert (low, high) == pytest.approx((statistics.fmean(diffs) - half, statistics.fmean(diffs) + half), abs=1e-4)
    assert "Δ vs baseline, paired [95 % CI]" in markdown and "95 % interval over 2 paired seeds" in markdown
    with open(tmp_path / "curves.csv") as f:
        curves = list(csv.DictReader(f))
    assert [(c["variant"], c["seed"], c["epoch"]) for c in curves] == [
        (v, str(s), "1") for v in ("none", "se") for s in (0, 1)
    ]  # one epoch each: the curve's last point is the run's result
    assert [float(c["top1"]) for c in curves] == pytest.approx(runs["none"] + runs["se"], abs=1e-4)
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_compare_reuses_finished_runs(tmp_path: Path) -> None:
    first = compare(BASE, ["none"], seeds=1, output=tmp_path, latency_repeats=2)
    (tmp_path / "none-s0" / "checkpoints" / "last.ckpt").unlink()  # a re-run must not need (or retrain) it
    again = compare(BASE, ["none"], seeds=1, output=tmp_path, latency_repeats=2)
    assert again[0].mean == first[0].mean
    for kept in ("config.yaml", "logs", "checkpoints"):  # a run kept as its results.json alone is reused too
        path = tmp_path / "none-s0" / kept
        path.unlink() if path.is_file() else shutil.rmtree(path)
    alone = compare(BASE, ["none"], seeds=1, output=tmp_path, latency_repeats=2)
    assert alone[0].mean == first[0].mean and alone[0].params == first[0].params


def test_budget_limits_each_run(tmp_path: Path) -> None:
    rows = compare(BASE.replace(epochs=50), ["none"], seeds=1, budget_minutes=0.05, output=tmp_path, latency_repeats=2)
    assert 1 <= rows[0].epochs < 50


def test_compare_times_and_counts_models_with_the_recipes_model_kwargs(tmp_path: Path) -> None:
    # At 32 px the ImageNet stem leaves DAS a 1×1 map, which its instance norm refuses: latency and MACs must
    # use the CIFAR stem the runs were trained with.
    base = BASE.replace(img_size=32, model_kwargs={"stem": "cifar"}, train_subset=32)
    rows = compare(base, ["das"], seeds=1, output=tmp_path, latency_repeats=1)
    cifar = cnnattn.create_model("resnet18_das", num_classes=10, stem="cifar")
    assert rows[0].macs == cnnattn.profile(cifar, (3, 32, 32)).macs and rows[0].latency_ms > 0


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


def _row(variant: str, per_seed: list[float], task: str = "classify") -> CompareRow:
    mean, std = statistics.fmean(per_seed), statistics.stdev(per_seed) if len(per_seed) > 1 else 0.0
    return CompareRow(variant, f"resnet18_{variant}", mean, std, 90.0, len(per_seed), 1, 1, 1, 1.0, 1.0, task=task,
                      per_seed=tuple(per_seed))  # fmt: skip


def test_differences_are_paired_by_seed_and_say_whether_the_interval_includes_zero() -> None:
    rows = [_row("none", [50.0, 60.0, 70.0]), _row("se", [51.0, 61.0, 71.0]), _row("cbam", [52.0, 58.0, 71.0])]
    add_paired_differences(rows)
    assert rows[0].paired is None and rows[1].paired.differences == (1.0, 1.0, 1.0)
    # se is 1 point better at every seed: unpaired means (std 10) could not show it, the pairs do.
    assert differences(rows) == [
        "se: top-1 +1.00 points vs none (61.00 vs 60.00 %); 95 % interval over 3 paired seeds [+1.00, +1.00] "
        "excludes zero: a difference beyond the seed noise.",
        "cbam: top-1 +0.33 points vs none (60.33 vs 60.00 %); 95 % interval over 3 paired seeds [-4.84, +5.50] "
        "includes zero: no difference shown at this number of seeds.",
    ]
    assert rows[1].cells()[6] == "+1.00 [+1.00, +1.00]" and rows[0].cells()[6] == "—"
    one_seed = [_row("none", [50.0]), _row("se", [60.0])]
    add_paired_differences(one_seed)
    assert one_seed[1].paired is None and "seed noise is unknown" in differences(one_seed)[0]


def test_differences_of_detection_rows_speak_of_ap() -> None:
    rows = [_row("none", [20.0, 21.0], "detect"), _row("das", [24.0, 25.5], "detect")]
    add_paired_differences(rows)
    assert differences(rows)[0].startswith("das: AP +4.25 points vs none (24.75 vs 20.50 %)")


@pytest.mark.parametrize("variant", ["se", "das", "eam", "aw"])
def test_a_seed_gives_every_variant_the_same_backbone_weights_and_data_order(variant: str) -> None:
    def start(model: str) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        config = BASE.replace(model=model, seed=3)
        pl.seed_everything(config.seed, workers=True, verbose=False)  # what train() does first
        data, config = get_task(config.task).data(config)
        weights = training_model(config, data.num_classes).state_dict()
        data.setup("fit")
        return weights, next(iter(data.train_dataloader()))[1]

    plain, plain_labels = start("resnet18")
    attended, labels = start(variant_model("resnet18", variant))
    missing = set(plain) - set(attended)  # EAM's augmented convs are new layers of other shapes; AW's keep them
    assert all(k.endswith(("conv1.weight", "conv2.weight")) for k in missing) and (variant == "eam") == bool(missing)
    assert all(torch.equal(tensor, attended[k]) for k, tensor in plain.items() if k not in missing)
    assert torch.equal(plain_labels, labels)
