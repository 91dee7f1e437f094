"""Named models of the other families (``convnext_tiny_das``, ``efficientnet_b0_cbam``, ...): built by
``cnnattn.create_model`` and ``timm.create_model`` with timm's keywords, ``features_only`` with timm's channels,
trained a step; detectors on them through torchvision's FPN."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

import cnnattn
from cnnattn.cli import main
from cnnattn.models.factory import TIMM_BASES

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
# timm's keywords each base's class takes (timm's VGG and DenseNet have no drop-path).
TIMM_KWARGS = dict(in_chans=3, drop_rate=0.1, drop_path_rate=0.05, global_pool="avg")
NO_DROP_PATH = {"vgg16_bn", "densenet121"}


@pytest.mark.parametrize("base", TIMM_BASES)
def test_timm_create_model_builds_trains_and_keeps_the_plain_keys(base: str) -> None:
    kwargs = {k: v for k, v in TIMM_KWARGS.items() if not (base in NO_DROP_PATH and k == "drop_path_rate")}
    model = timm.create_model(f"{base}_se", num_classes=3, **kwargs)
    plain = timm.create_model(base, num_classes=3, **kwargs)
    assert set(plain.state_dict()) <= set(model.state_dict())
    assert model.num_classes == 3 and {"mean", "std", "crop_pct", "pool_size", "first_conv", "classifier"} <= set(
        model.pretrained_cfg
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(2, 3, 64, 64)), torch.tensor([0, 2]))
    loss.backward()
    gates = [model.get_submodule(n) for n in model.cnnattn_placements[0].modules]
    assert gates and all(any(p.grad is not None for p in g.parameters()) for g in gates)
    optimizer.step()


@pytest.mark.parametrize("base", TIMM_BASES)
def test_features_only_gives_timms_channels(base: str) -> None:
    features = cnnattn.create_model(f"{base}_das", features_only=True)
    expected = timm.create_model(base, features_only=True).feature_info.channels()
    with torch.no_grad():
        maps = features(torch.randn(1, 3, 64, 64))
    assert [m.shape[1] for m in maps] == expected == features.feature_info.channels()
    names = features.cnnattn_placements[0].modules  # the attention came along, under the wrapper's names
    assert names and all(features.get_submodule(n) is not None for n in names)


def test_list_models_shows_every_base_and_leaves_conv_kinds_out_of_grouped_ones() -> None:
    names = set(cnnattn.list_models())
    assert {f"{b}_{a}" for b in TIMM_BASES for a in ("se", "das", "aw", "cbam")} <= names
    assert "vgg16_bn_aa" in names and "densenet121_eam" in names  # dense 3×3 convs
    assert not {"convnext_tiny_aa", "efficientnet_b0_eam", "resnext50_32x4d_aa", "regnety_016_aa"} & names


def test_cli_trains_a_named_model_for_an_epoch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", "--model", "convnext_atto_cbam", "--data", "builtin:digits", "--epochs", "1", "--batch-size",
            "32", "--workers", "0", "--img-size", "32", "--train-subset", "64", "--output", str(tmp_path / "run"),
            "--json", "--no-tensorboard"]  # fmt: skip
    assert main(args) == 0
    assert '"epochs": 1' in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("base", TIMM_BASES)
def test_cli_trains_every_named_base_for_an_epoch(base: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["train", "--model", f"{base}_se", "--data", "builtin:digits", "--epochs", "1", "--batch-size", "32",
            "--workers", "0", "--img-size", "32", "--train-subset", "64", "--output", str(tmp_path / "run"),
            "--json", "--no-tensorboard"]  # fmt: skip
    assert main(args) == 0
    assert '"epochs": 1' in capsys.readouterr().out


@pytest.mark.skipif(not (SHARED / "raccoon").is_dir(), reason="../shared/data/raccoon is absent")
@pytest.mark.parametrize("model", ["convnext_tiny_das", "efficientnet_b0_cbam"])
def test_faster_rcnn_on_a_named_model_trains_a_step_on_raccoon(model: str, tmp_path: Path, capsys) -> None:
    args = ["train", "--task", "detect", "--detector", "fasterrcnn", "--model", model, "--data",
            str(SHARED / "raccoon"), "--epochs", "1", "--batch-size", "2", "--workers", "0", "--img-size", "64",
            "--train-subset", "2", "--output", str(tmp_path / "run"), "--json", "--no-tensorboard"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert '"task": "detect"' in out and '"AP50"' in out and '"loss": null' in out


@pytest.mark.parametrize("arch", ["fasterrcnn", "retinanet", "fcos"])
@pytest.mark.parametrize("model", ["convnext_atto_se", "mobilenetv3_large_100_eca", "densenet121_se", "vgg16_bn_se"])
def test_detectors_on_named_models_train_their_attention(arch: str, model: str) -> None:
    detector = cnnattn.create_detector(arch, model, num_classes=3, min_size=96, max_size=96).train()
    gates = [detector.get_submodule(n) for p in detector.cnnattn_placements for n in p.modules]
    targets = [{"boxes": torch.tensor([[8.0, 8.0, 60.0, 70.0]]), "labels": torch.tensor([1])}]
    sum(detector([torch.rand(3, 96, 96)], targets).values()).backward()
    assert gates and all(any(p.grad is not None for p in g.parameters()) for g in gates)
    body = detector.backbone.body
    frozen = [p for n, p in body.named_parameters() if not any(n.startswith(g.removeprefix("backbone.body.")) for g in
              [x for p in detector.cnnattn_placements for x in p.modules])]  # fmt: skip
    assert any(p.requires_grad for p in frozen) and not all(p.requires_grad for p in frozen)  # trainable_layers=3
