from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cnnattn.analysis.bench import BenchResult, bench, bench_table, make_step
from cnnattn.analysis.isolated import run_isolated
from cnnattn.analysis.plots import plot_metric_vs_macs, plot_scaling
from cnnattn.analysis.scaling import ScalePoint, loglog_slope, scale
from cnnattn.cli import main


def test_bench_side_by_side() -> None:
    results = bench(["resnet18", "resnet18_eca"], batch_size=2, img_size=32, warmup=1, repeats=2)
    assert [r.model for r in results] == ["resnet18", "resnet18_eca"]
    assert results[0].ratio == 1.0 and results[1].ratio > 0
    assert all(r.median_ms > 0 and r.throughput > 0 and r.peak_memory_mb is not None for r in results)
    assert results[1].params > results[0].params and results[0].macs > 0
    assert "× first model" in bench_table(results) and "× eager" not in bench_table(results)


def test_bench_compile_times_eager_and_inductor_side_by_side(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "resnet18", "resnet18_se", "--compile", "--img-size", "32", "--batch-size", "2",
            "--repeats", "2", "--warmup", "1", "--no-memory", "--json"]  # fmt: skip
    assert main(argv) == 0
    results = [BenchResult(**r) for r in json.loads(capsys.readouterr().out)["results"]]
    by = {(r.model, r.runtime): r for r in results}
    assert list(by) == [(m, rt) for m in ("resnet18", "resnet18_se") for rt in ("eager", "compile")]
    for runtime in ("eager", "compile"):  # the attention's cost against the plain model in the same runtime
        plain, se = by[("resnet18", runtime)], by[("resnet18_se", runtime)]
        assert plain.ratio == 1.0 and se.ratio == pytest.approx(se.median_ms / plain.median_ms)
    for model in ("resnet18", "resnet18_se"):  # what inductor buys the same model
        eager, compiled = by[(model, "eager")], by[(model, "compile")]
        assert eager.vs_eager is None and compiled.vs_eager == pytest.approx(compiled.median_ms / eager.median_ms)
    assert "× first model" in bench_table(results) and "× eager" in bench_table(results)


def test_bench_onnxruntime_beside_eager_and_runtimes_checked(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "resnet18_se", "--runtime", "eager,onnxruntime", "--img-size", "32",
            "--batch-size", "2", "--repeats", "2", "--warmup", "1", "--no-memory", "--json"]  # fmt: skip
    assert main(argv) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert [(r["model"], r["runtime"]) for r in results] == [("resnet18_se", rt) for rt in ("eager", "onnxruntime")]
    assert all(r["median_ms"] > 0 and r["ratio"] == 1.0 for r in results)
    assert len({r["params"] for r in results}) == 1  # the same model in each runtime
    with pytest.raises(ValueError, match="onnxruntime times fp32 inference"):
        bench(["resnet18"], img_size=32, mode="train", runtimes=["onnxruntime"], memory=False)
    with pytest.raises(ValueError, match="unknown runtime 'tensorrt'"):
        bench(["resnet18"], img_size=32, runtimes=["tensorrt"], memory=False)


def test_bench_train_mode_with_amp_and_channels_last() -> None:
    results = bench(
        ["resnet18_das"],
        batch_size=2,
        img_size=64,
        mode="train",
        amp=True,
        channels_last=True,
        warmup=1,
        repeats=2,
        memory=False,
    )
    assert results[0].mode == "train" and results[0].median_ms > 0 and results[0].peak_memory_mb is None


def test_bench_times_detectors_in_both_modes(capsys) -> None:
    infer = bench(["resnet18", "resnet18_se"], img_size=64, detector="retinanet", num_classes=3, warmup=1, repeats=2)
    assert [r.detector for r in infer] == ["retinanet", "retinanet"] and all(r.median_ms > 0 for r in infer)
    assert infer[1].params > infer[0].params and infer[0].peak_memory_mb is not None  # memory: a fresh process
    from cnnattn.analysis.bench import bench_model

    model = bench_model("resnet18_das", 3, 64, "fasterrcnn")
    gate = model.backbone.body.layer4[1].attn_stage  # type: ignore[union-attr]
    before = [p.detach().clone() for p in gate.parameters()]
    make_step(model, torch.randn(2, 3, 64, 64), "train", amp=False, detection=True)()  # losses on a centred box
    assert any(not torch.equal(b, p) for b, p in zip(before, gate.parameters(), strict=True))
    argv = ["bench", "resnet18", "--detector", "fcos", "--img-size", "64", "--mode", "train", "--repeats", "1",
            "--warmup", "1", "--no-memory", "--json"]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)["results"][0]
    assert result["detector"] == "fcos" and result["mode"] == "train" and result["median_ms"] > 0


def test_train_step_updates_weights_and_bad_mode() -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    before = model[1].weight.detach().clone()
    make_step(model, torch.randn(2, 3, 2, 2), "train", amp=False)()
    assert not torch.equal(before, model[1].weight)
    with pytest.raises(ValueError, match="mode must be one of"):
        make_step(model, torch.randn(2, 3, 2, 2), "eval", amp=False)


def test_cuda_request_without_cuda_is_explained() -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ValueError, match="no CUDA device"):
        bench(["resnet18"], device="cuda")


def test_loglog_slope_recovers_exponents() -> None:
    linear = [ScalePoint(s, "ok", 1e-6 * s * s) for s in (32, 64, 128, 256)]
    quadratic = [ScalePoint(s, "ok", 1e-9 * (s * s) ** 2) for s in (32, 64, 128)] + [ScalePoint(256, "oom")]
    assert loglog_slope(linear) == pytest.approx(1.0)
    assert loglog_slope(quadratic) == pytest.approx(2.0)
    assert loglog_slope([ScalePoint(32, "ok", 1.0)]) is None


def test_scale_records_oom_and_skips_larger_sizes() -> None:
    results = scale(["nl"], [8, 256, 512], channels=8, memory_limit_bytes=3 * 2**30, max_seconds=120)
    statuses = [p.status for p in results["nl"]]
    assert statuses[0] == "ok" and results["nl"][0].seconds > 0
    assert statuses[1] == "oom" and statuses[2] == "skipped"  # a (256²)² attention map needs 17 GB


def test_isolated_timeout() -> None:
    assert run_isolated("subprocess.call", {"args": ["sleep", "30"]}, timeout_s=3) == {"status": "timeout"}


def test_plots_are_written(tmp_path: Path) -> None:
    points = {"a": [ScalePoint(s, "ok", s * 1e-3) for s in (8, 16, 32)] + [ScalePoint(64, "oom")]}
    assert plot_scaling(points, tmp_path / "scale.png").stat().st_size > 1000
    out = plot_metric_vs_macs(
        ["x", "y"], [1e9, 2e9], [70.0, 72.5], tmp_path / "acc.png", ylabel="top-1 %", errors=[0.3, 0.4]
    )
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_cli_profile_bench_scale_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["profile", "resnet18", "--img-size", "64", "--attention", "se", "--stages", "4", "--json"]) == 0
    profile = json.loads(capsys.readouterr().out)
    assert profile["attention"] == ["layer4.0.attn", "layer4.1.attn"] and profile["macs"] > 0
    assert (
        main(["bench", "resnet18", "--img-size", "32", "--repeats", "2", "--warmup", "1", "--no-memory", "--json"]) == 0
    )
    bench_out = json.loads(capsys.readouterr().out)
    assert bench_out["results"][0]["model"] == "resnet18" and "cpu" in bench_out["machine"]
    assert (
        main(["scale", "das", "--sizes", "8,16", "--channels", "8", "--plot", str(tmp_path / "s.png"), "--json"]) == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert [r["size"] for r in rows] == [8, 16] and (tmp_path / "s.png").is_file()


def test_cli_errors_are_messages_not_tracebacks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "resnet50_nope"]) == 2
    assert "unknown model 'resnet50_nope'" in capsys.readouterr().err


def test_profile_cli_reports_detector_parts(capsys) -> None:
    args = ["profile", "resnet18_das", "--detector", "retinanet", "--img-size", "128", "--num-classes", "3", "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    parts = report["parts"]
    assert set(parts) == {"backbone", "fpn", "heads"}
    assert sum(p["params"] for p in parts.values()) == report["params"]
    assert sum(p["macs"] for p in parts.values()) == report["macs"]
    assert all(p["macs"] > 0 for p in parts.values())
    das = next(m for m in report["modules"] if m["name"] == "backbone.body.layer4.1.attn_stage")
    assert das["macs"] > 0  # the deformable conv inside DAS is counted


class _Stack(torch.nn.Module):
    """``depth`` linear layers: instances of one class whose graphs differ, as timm ResNets with attention do."""

    def __init__(self, depth: int) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(3, 3) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


@pytest.mark.parametrize("room", [False, True])
def test_dynamo_room_keeps_every_model_of_one_class_compiled(room: bool) -> None:
    """Ten models of one class compiled side by side share ``forward``'s cache: past dynamo's default limit of 8 the
    later ones run eager without a word (room=False shows dynamo still does this); ``dynamo_room`` compiles all ten.
    Dynamo's frame counter is backend-independent; the backend is ``eager`` only to keep the test fast."""
    from torch._dynamo.utils import counters

    from cnnattn.analysis.bench import dynamo_room

    torch._dynamo.reset()
    models = [torch.compile(_Stack(depth), backend="eager") for depth in range(1, 11)]
    counters.clear()
    # Without room, dynamo's default limit, set here: an earlier test of the session may have left another.
    with dynamo_room(len(models)) if room else torch._dynamo.config.patch(recompile_limit=8):
        for model in models:
            model(torch.randn(1, 3))
    assert counters["frames"]["ok"] == 10 if room else counters["frames"]["ok"] < 10
    torch._dynamo.reset()
