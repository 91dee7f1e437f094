"""Detection on the one engine: ``cnnattn train --task detect`` → ``cnnattn eval --json`` on every layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cnnattn.cli import main
from cnnattn.engine import TrainConfig, load_training_checkpoint, train
from cnnattn.engine.evaluate import evaluate
from cnnattn.engine.tasks import get_task
from tiny_detection import coco_tree, voc_flat, voc_standard

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
LAYOUTS = {"coco": coco_tree, "voc": voc_standard, "voc_flat": voc_flat}


def _coco_both_splits(root: Path) -> Path:
    coco_tree(root, "train2017")
    return coco_tree(root, "val2017")


@pytest.mark.parametrize("layout", ["coco", "voc", "voc_flat"])
def test_cli_train_detect_then_eval_json(tmp_path: Path, capsys, layout: str) -> None:
    data = _coco_both_splits(tmp_path / "d") if layout == "coco" else LAYOUTS[layout](tmp_path / "d")
    out = tmp_path / "run"
    args = ["train", "--task", "detect", "--detector", "fasterrcnn", "--model", "resnet18_se", "--data", str(data),
            "--epochs", "1", "--img-size", "64", "--batch-size", "2", "--workers", "0", "--output", str(out),
            "--no-tensorboard", "--json"]  # fmt: skip
    assert main(args) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["task"] == "detect" and {"AP", "AP50", "best_AP"} <= set(trained["metrics"])
    assert main(["eval", "--checkpoint", trained["last_checkpoint"], "--workers", "0", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR100"} <= set(metrics) and metrics["detector"] == "fasterrcnn"
    assert metrics["AP"] == pytest.approx(trained["metrics"]["AP"], abs=1e-3)  # eval agrees with training's own


def test_one_stage_detector_with_ema_trains_and_resumes(tmp_path: Path) -> None:
    data = str(voc_flat(tmp_path / "d", count=8))
    config = TrainConfig(
        task="detect", detector="retinanet", model="resnet18_das", data=data, img_size=64, epochs=2, batch_size=2,
        workers=0, ema_decay=0.9, progress=False, tensorboard=False, output=str(tmp_path / "run"), max_minutes=None,
    )  # fmt: skip
    first = train(config.replace(epochs=1))
    resumed = train(config, resume=True)  # the finished 1-epoch run continues to 2 epochs
    assert (first.epochs, resumed.epochs) == (1, 2) and resumed.metrics["AP"] >= 0
    state = load_training_checkpoint(resumed.last_checkpoint)["state_dict"]
    assert any(k.startswith("ema.module.backbone.body.layer4.1.attn_stage.") for k in state)
    assert torch.isfinite(torch.tensor(resumed.metrics["AP"]))


def test_bf16_autocast_trains_a_detector_on_cpu(tmp_path: Path) -> None:
    data = str(voc_flat(tmp_path / "d", count=6))
    config = TrainConfig(task="detect", model="resnet18_se", data=data, img_size=64, epochs=1, batch_size=2,
                         workers=0, precision="bf16", progress=False, tensorboard=False,
                         output=str(tmp_path / "run"))  # fmt: skip
    result = train(config)
    assert result.epochs == 1 and 0 <= result.metrics["AP"] <= 100


def test_detection_lr_follows_the_batch_per_16_rule() -> None:
    config = TrainConfig(task="detect", batch_size=4, opt="sgd")
    detector = get_task("detect").lightning_module(torch.nn.Linear(1, 1), config, _FakeData())
    assert detector.peak_lr(world_size=2) == pytest.approx(0.02 * 8 / 16)
    assert TrainConfig(batch_size=64, opt="sgd").resolved_lr(1) == pytest.approx(0.1 * 64 / 256)


class _FakeData:
    """What DetectorModule reads of a data module: class names and the validation split."""

    classes = ("raccoon",)

    def split(self, name: str) -> list:
        return []


def test_eval_refuses_data_with_other_classes(tmp_path: Path) -> None:
    data = voc_flat(tmp_path / "flat", count=6)
    config = TrainConfig(task="detect", data=str(data), img_size=64, epochs=1, batch_size=2, workers=0,
                         progress=False, tensorboard=False, output=str(tmp_path / "run"))  # fmt: skip
    result = train(config)
    with pytest.raises(ValueError, match="differ from the checkpoint's"):
        evaluate(result.last_checkpoint, str(voc_standard(tmp_path / "voc")), workers=0)


@pytest.mark.skipif(not (SHARED / "raccoon").is_dir(), reason="../shared/data/raccoon is absent")
def test_train_detect_on_the_shared_raccoon_set(tmp_path: Path) -> None:
    config = TrainConfig(task="detect", detector="fcos", model="resnet18", data=str(SHARED / "raccoon"), img_size=64,
                         epochs=1, batch_size=4, workers=0, train_subset=8, progress=False, tensorboard=False,
                         output=str(tmp_path / "run"))  # fmt: skip
    result = train(config)
    assert result.num_classes == 1 and result.metrics["AP50"] >= 0


def test_backbone_batch_norm_is_frozen_for_detection_unless_asked(tmp_path: Path) -> None:
    from cnnattn.engine.training import build_model
    from cnnattn.models.norm import FrozenBatchNorm2d

    base = TrainConfig(task="detect", detector="retinanet", model="resnet18_se", img_size=64)
    frozen, trained = build_model(base, 2), build_model(base.replace(freeze_bn=False), 2)
    assert isinstance(frozen.backbone.body.layer4[0].bn1, FrozenBatchNorm2d)
    norm = trained.backbone.body.layer4[0].bn1  # in a trainable stage (the default 3 trainable layers)
    assert isinstance(norm, torch.nn.BatchNorm2d) and norm.weight.requires_grad
    assert isinstance(build_model(TrainConfig(model="resnet18"), 10).bn1, torch.nn.BatchNorm2d)  # classification
