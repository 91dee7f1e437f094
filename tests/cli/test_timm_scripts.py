"""``cnnattn timm SCRIPT``: timm's scripts run on cnnattn's models, and their checkpoints and cnnattn's cross over.

timm's scripts live in its repository, not its wheel: the tests that run them read the folder named by the
``TIMM_SCRIPTS`` environment variable (a checkout of https://github.com/huggingface/pytorch-image-models, or a
folder with its train.py and validate.py) and skip without it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnattn.cli import main
from cnnattn.engine.evaluate import evaluate

SCRIPTS = Path(os.environ.get("TIMM_SCRIPTS", "/nonexistent"))
needs_scripts = pytest.mark.skipif(
    not (SCRIPTS / "train.py").is_file(), reason="set TIMM_SCRIPTS to a folder holding timm's train.py, validate.py"
)


def test_a_script_runs_as_main_with_cnnattn_models_registered(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    script = tmp_path / "probe.py"
    script.write_text(
        "import json, sys, timm\n"
        "model = timm.create_model(sys.argv[1], num_classes=3)\n"
        "print(json.dumps({'name': __name__, 'argv': sys.argv[1:], 'class': type(model).__name__}))\n"
        "sys.exit(3)\n"
    )
    assert main(["timm", str(script), "mobilenetv2_das", "--flag", "x"]) == 3
    printed = json.loads(capsys.readouterr().out)
    assert printed == {"name": "__main__", "argv": ["mobilenetv2_das", "--flag", "x"], "class": "TimmMobileNetV2"}


def test_a_missing_script_says_where_timm_scripts_are(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["timm", str(tmp_path / "validate.py"), "--model", "resnet18_das"]) == 2
    assert "not in its wheel: clone https://github.com/huggingface/pytorch-image-models" in capsys.readouterr().err


def _learnable_folder(root: Path, per_class: int = 12) -> Path:
    """Three classes told apart by their colour, so two epochs learn something and top-1 is not chance."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c, name in enumerate(("red", "green", "blue")):
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 96, (48, 48, 3), dtype=np.uint8)
                pixels[..., c] += 150
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")
    return root


def _validated(*args: str, cwd: Path) -> tuple[float, float]:
    """(top-1, mean loss) of ``cnnattn timm validate.py ARGS``: its result JSON (stdout), its last log line."""
    done = subprocess.run([sys.executable, "-m", "cnnattn", "timm", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    top1 = json.loads(done.stdout[done.stdout.index("--result") + len("--result") :])["top1"]
    return top1, float(re.findall(r"Loss:\s+\S+\s+\((\S+)\)", done.stderr)[-1])


@needs_scripts
def test_timm_train_py_trains_a_cnnattn_model_whose_checkpoint_cnnattn_evaluates(tmp_path: Path) -> None:
    data = _learnable_folder(tmp_path / "data")
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "train.py"), str(data), "--device", "cpu", "--device-modules", "cnnattn",
         "--model", "mobilenetv2_aw", "--num-classes", "3", "--img-size", "64", "-b", "12", "--epochs", "1",
         "--workers", "1", "--lr", "0.01", "--output", str(tmp_path / "out")],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    checkpoint = next((tmp_path / "out").glob("*/last.pth.tar"))
    summary = (checkpoint.parent / "summary.csv").read_text().splitlines()[-1].split(",")
    metrics = evaluate(checkpoint, workers=0)
    assert metrics["model"] == "mobilenetv2_aw" and metrics["images"] == 36
    assert metrics["top1"] == pytest.approx(float(summary[3]), abs=1e-6)  # timm evaluates 64 px squash-free too


@needs_scripts
def test_timm_validate_py_on_an_exported_cnnattn_run_equals_cnnattn_eval(tmp_path: Path) -> None:
    data = _learnable_folder(tmp_path / "data")
    run, hub = tmp_path / "run", tmp_path / "hub"
    assert main(["train", "--model", "resnet18_das", "--data", str(data), "--img-size", "64", "--epochs", "2",
                 "--batch-size", "12", "--workers", "0", "--no-progress", "--no-tensorboard", "--lr", "0.05",
                 "--output", str(run)]) == 0  # fmt: skip
    checkpoint = run / "checkpoints" / "last.ckpt"
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "hf", "--output", str(hub)]) == 0
    ours = evaluate(checkpoint, workers=0)
    validate = [str(SCRIPTS / "validate.py"), str(data), "--split", "val", "--device", "cpu", "--workers", "1"]
    from_folder = _validated(*validate, "--model", f"local-dir:{hub}", "--pretrained", cwd=tmp_path)
    from_weights = _validated(
        *validate,
        "--model",
        "resnet18_das",
        "--checkpoint",
        str(hub / "model.safetensors"),
        "--num-classes",
        "3",
        "--img-size",
        "64",
        "--interpolation",
        "bilinear",
        "--crop-pct",
        "1",
        "--crop-mode",
        "squash",
        cwd=tmp_path,
    )
    for top1, loss in (from_folder, from_weights):
        assert top1 == pytest.approx(ours["top1"], abs=1e-3) and loss == pytest.approx(ours["loss"], abs=1e-3)
