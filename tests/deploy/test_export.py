"""``export``: written, loaded back in its runtime, equal to eager PyTorch, dynamic where asked; clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import cnnattn
from cnnattn.cli import main
from cnnattn.deploy import ExportError, export

pytest.importorskip("onnxruntime", reason="the deploy extra is not installed")

# One model per mechanism family: a deformable gate, a channel+spatial gate, the explicit map, AW-convolution.
MODELS = ["resnet18_das", "resnet18_cbam", "resnet18_eam", "resnet18_aw", "mobilenetv2_das"]


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("fmt", ["pt2", "onnx"])
def test_dynamic_batch_exports_run_and_equal_eager(tmp_path: Path, name: str, fmt: str) -> None:
    model = cnnattn.create_model(name, num_classes=5)
    result = export(model, tmp_path / f"m.{fmt}", fmt, img_size=64, dynamic_batch=True)
    assert result.checked_shapes == [(2, 3, 64, 64), (3, 3, 64, 64)] and result.max_abs_diff <= 1e-4
    assert Path(result.path).stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in cnnattn.list_models() if n not in MODELS])
def test_every_other_model_exports_with_dynamic_batch(tmp_path: Path, name: str) -> None:
    """The same check over every name ``cnnattn list`` gives (the five above run by default)."""
    model = cnnattn.create_model(name, num_classes=5)
    for fmt in ("pt2", "onnx"):
        result = export(model, tmp_path / f"m.{fmt}", fmt, img_size=64, dynamic_batch=True)
        assert result.checked_shapes[1] == (3, 3, 64, 64) and result.max_abs_diff <= 1e-4


# 96×80 gives odd maps (5 wide at stride 16, 3 = ceil(2.5) at stride 32): ceil divisions of symbolic sizes must
# round up in ONNX too. The attention sits in stage 4 only, where the stride-2 block meets the odd width: the same
# symbolic shapes of each module as at every stage, at a third of the export time (the dynamic-batch tests above
# export the default placements).
@pytest.mark.parametrize("name", ["resnet18_das", "resnet18_eam", "resnet18_triplet", "resnet18_aw", "resnet18_aa"])
def test_dynamic_size_onnx_and_pt2(tmp_path: Path, name: str) -> None:
    model = cnnattn.create_model(name, num_classes=5, attn_stages=(4,))
    for fmt in ("onnx", "pt2"):
        result = export(model, tmp_path / f"m.{fmt}", fmt, img_size=64, dynamic_batch=True, dynamic_size=True)
        assert result.checked_shapes[1] == (3, 3, 96, 80) and result.max_abs_diff <= 1e-4


def test_torchscript_scripts_gates_and_traces_conv_kinds(tmp_path: Path) -> None:
    scripted = export(cnnattn.create_model("resnet18_das", num_classes=5), tmp_path / "das.pt", "torchscript",
                      img_size=64)  # fmt: skip
    traced = export(cnnattn.create_model("resnet18_aw", num_classes=5), tmp_path / "aw.pt", "torchscript", img_size=64)
    assert "scripted" in scripted.runtime and "traced" in traced.runtime
    assert scripted.max_abs_diff <= 1e-4 and traced.max_abs_diff <= 1e-4


def test_a_detector_exports_to_torchscript_and_refuses_other_formats(tmp_path: Path) -> None:
    detector = cnnattn.create_detector("fasterrcnn", "resnet18_se", 3, min_size=64, max_size=64)
    result = export(detector, tmp_path / "det.pt", "torchscript", img_size=64, batch_size=1)
    assert "scripted" in result.runtime and result.max_abs_diff <= 1e-4
    with pytest.raises(ValueError, match="detectors export to torchscript only"):
        export(detector, tmp_path / "det.onnx", "onnx")


def test_a_disagreeing_artefact_is_an_error(tmp_path: Path, monkeypatch) -> None:
    model = cnnattn.create_model("resnet18", num_classes=5)
    monkeypatch.setattr(torch.jit, "load", lambda path: lambda x: torch.zeros(x.shape[0], 5))  # a broken runtime
    with pytest.raises(ExportError, match=r"differs from eager PyTorch by .* \(> 0.0001\)"):
        export(model, tmp_path / "m.pt", "torchscript", img_size=32)


def test_cli_export_reports_the_difference_and_bad_requests_are_one_line(tmp_path: Path, capsys) -> None:
    out = tmp_path / "m.onnx"
    argv = ["export", "--model", "resnet18_se", "--num-classes", "4", "--img-size", "64", "--dynamic-batch",
            "--output", str(out), "--json"]  # fmt: skip
    assert main(argv) == 0
    reported = json.loads(capsys.readouterr().out)
    assert reported["format"] == "onnx" and reported["max_abs_diff"] <= 1e-4 and "onnxruntime" in reported["runtime"]
    with pytest.raises(SystemExit):
        main(["export", "--model", "resnet18", "--format", "tflite", "--output", str(out)])
    assert "invalid choice: 'tflite'" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(tmp_path / "missing.ckpt"), "--output", str(out)]) != 0
    assert "missing.ckpt" in capsys.readouterr().err
