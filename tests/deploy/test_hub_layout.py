"""The Hub layout: ``cnnattn export --format hf`` writes config.json + model.safetensors + a model card that
``timm.create_model("local-dir:...")`` and ``cnnattn.create_model("local-dir:...")`` rebuild exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch

import cnnattn
from cnnattn.cli import main
from cnnattn.deploy import export
from cnnattn.deploy.hub import save_hub_layout
from cnnattn.models.factory import features_net

TINY = ["--data", "builtin:digits", "--img-size", "32", "--batch-size", "32", "--workers", "0", "--no-tensorboard"]


def _equal_outputs(a: torch.nn.Module, b: torch.nn.Module, size: int) -> bool:
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        return torch.equal(a.eval()(x), b.eval()(x))


def test_a_trained_run_round_trips_through_timm_and_cnnattn(tmp_path: Path) -> None:
    run = tmp_path / "run"
    recipe = ["--model-kwargs", "{stem: cifar}", "--attn-kwargs", "{rd_ratio: 0.125}", "--output", str(run)]
    assert main(["train", "--model", "resnet18_das", *TINY, "--epochs", "1", "--train-subset", "64", "--no-progress",
                 *recipe]) == 0  # fmt: skip
    folder = tmp_path / "hub"
    checkpoint = run / "checkpoints" / "last.ckpt"
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "hf", "--output", str(folder)]) == 0
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors", "README.md"}

    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "resnet18_das" and config["num_classes"] == 10
    assert config["model_args"]["stem"] == "cifar" and config["model_args"]["attn_kwargs"] == {"rd_ratio": 0.125}
    assert config["cnnattn"]["placements"][0]["attention"] == "das"
    assert config["pretrained_cfg"]["input_size"] == [3, 32, 32] and "tag" not in config["pretrained_cfg"]
    card = (folder / "README.md").read_text()
    results = json.loads((run / "results.json").read_text())
    assert f"top1: {results['top1']}" in card and "license: apache-2.0" in card and "Params (M)" in card
    assert "Everything else is assumed" in card and "builtin:digits" in card

    trained, _, _ = cnnattn.engine.trained.load_trained_model(checkpoint)
    by_timm = timm.create_model(f"local-dir:{folder}", pretrained=True)
    by_cnnattn = cnnattn.create_model(f"local-dir:{folder}")
    assert _equal_outputs(by_timm, trained, 32) and _equal_outputs(by_cnnattn, trained, 32)
    assert by_cnnattn.pretrained_cfg["architecture"] == "resnet18_das" and by_cnnattn.num_classes == 10


def test_a_saved_model_loads_with_a_new_head_and_as_a_feature_extractor(tmp_path: Path) -> None:
    model = cnnattn.create_model("mobilenetv2_aw", num_classes=7, attn_stages=(3, 4)).eval()
    save_hub_layout(model, tmp_path)
    features = cnnattn.create_model(f"local-dir:{tmp_path}", features_only=True, out_indices=(2, 4))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = features_net(model, (2, 4))(x)
        assert all(torch.equal(a, b) for a, b in zip(features.eval()(x), expected, strict=True))
    new_head = timm.create_model(f"local-dir:{tmp_path}", pretrained=True, num_classes=3)
    assert new_head.num_classes == 3
    assert torch.equal(new_head.features[0][0].weight, model.features[0][0].weight)


def test_export_hf_checks_a_second_batch_and_size(tmp_path: Path) -> None:
    model = cnnattn.create_model("convnext_atto_cbam", num_classes=4)
    result = export(model, tmp_path / "hub", "hf", img_size=64)
    assert result.checked_shapes == [(2, 3, 64, 64), (3, 3, 96, 80)] and result.max_abs_diff == 0.0


def test_a_detector_is_refused_with_the_format_to_use(tmp_path: Path) -> None:
    detector = cnnattn.create_detector("fasterrcnn", "resnet18_se", num_classes=3)
    with pytest.raises(ValueError, match="torchscript only"):
        export(detector, tmp_path / "hub", "hf")
