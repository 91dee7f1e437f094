"""``benchmarks/gpu_kit.py --dry-run``: every section runs at toy sizes on CPU and leaves its JSON and the summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CIFAR = ROOT.parent / "shared" / "data" / "cifar10-jpg.zip"
SECTIONS = ("layers", "models", "fast_paths", "evidence")


def test_dry_run_writes_every_section_and_the_summary(tmp_path: Path) -> None:
    command = [sys.executable, str(ROOT / "benchmarks" / "gpu_kit.py"), "--dry-run", "--output", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    results = {s: json.loads((tmp_path / f"{s}.json").read_text()) for s in SECTIONS}
    for section in ("layers", "models", "fast_paths"):
        assert results[section]["rows"], f"{section} measured nothing"
        assert results[section]["environment"]["device"] == "cpu" and "--dry-run" in results[section]["command"]
    layers = results["layers"]["rows"]
    assert {r["layer"] for r in layers} == {"deformable conv", "explicit attention", "AW"}
    assert all(r["batched"] > 0 and r["own_calls"] > 0 for r in layers if r["layer"] == "AW")
    models = results["models"]["rows"]
    assert {(r["model"], r["mode"]) for r in models} >= {("resnet18_das", "infer"), ("resnet18_aw", "train")}
    assert all(r["mac_ratio"] >= 1 for r in models)
    rules = {r["rule"] for r in results["fast_paths"]["rows"]}
    assert {"AWConv2d formulation (impl='auto')", "deform_conv2d impl='auto'"} <= rules
    assert all(r["fastest"] in r for r in results["fast_paths"]["rows"])
    summary = (tmp_path / "summary.md").read_text()
    assert "Command: `python benchmarks/gpu_kit.py --dry-run" in summary and "## fast_paths" in summary
    if CIFAR.is_file():
        runs = results["evidence"]["rows"]
        assert [r["model"] for r in runs] == ["resnet18", "resnet18_das", "resnet18_eam", "resnet18_aw", "resnet18_se"]
        assert all(len(r["top1"]) == r["epochs"] == 1 and 0 <= r["top1"][0] <= 100 for r in runs)
    else:
        assert "evidence:" in summary and "is absent" in summary
