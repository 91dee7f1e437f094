"""Detectors on attention backbones (``create_detector``) and ``attach`` on the detectors users already hold."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
import torchvision
from torch import nn
from torchvision.models.detection import fasterrcnn_resnet50_fpn

import cnnattn
from cnnattn.models.adapters.base import BLOCK_POSITIONS
from cnnattn.models.detection import attention_modules
from cnnattn.models.norm import FrozenBatchNorm2d

IMAGES = [torch.rand(3, 120, 150), torch.rand(3, 96, 96)]
TARGETS = [
    {"boxes": torch.tensor([[10.0, 12.0, 70.0, 80.0]]), "labels": torch.tensor([1])},
    {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)},  # an image without boxes
]


def _count_calls(modules: list[nn.Module]) -> list[int]:
    calls = [0]
    for m in modules:
        m.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.mark.parametrize(
    ("arch", "backbone", "levels"),
    [
        ("fasterrcnn", "resnet18_das", [32, 16, 8, 4, 2]),  # P2–P6 at 128 px
        ("retinanet", "resnet18_das", [16, 8, 4, 2, 1]),  # P3–P7
        ("fcos", "resnet18_bam", [16, 8, 4, 2, 1]),
        ("retinanet", "resnet18_aw", [16, 8, 4, 2, 1]),
        ("fasterrcnn", "mobilenetv2_cbam", [4, 4, 2]),  # torchvision's mobile FPN: last two stages + pool
    ],
)
def test_detector_trains_its_attention_and_predicts(arch: str, backbone: str, levels: list[int]) -> None:
    detector = cnnattn.create_detector(arch, backbone, num_classes=3, min_size=128, max_size=128)
    features = detector.eval().backbone(torch.rand(1, 3, 128, 128))
    assert [f.shape[-1] for f in features.values()] == levels
    attention = attention_modules(detector)
    assert attention and all(p.requires_grad for m in attention for p in m.parameters())
    losses = detector.train()(IMAGES, TARGETS)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is not None for m in attention for p in m.parameters())
    predictions = detector.eval()(IMAGES)
    assert len(predictions) == 2 and all(set(p) == {"boxes", "scores", "labels"} for p in predictions)


def test_frozen_stages_and_norms_but_attention_norms_left_alone() -> None:
    detector = cnnattn.create_detector("fasterrcnn", "resnet18_bam", num_classes=3, trainable_layers=3)
    body = detector.backbone.body
    frozen = [p for n, p in body.named_parameters() if n.startswith(("conv1", "bn1", "layer1.")) and ".attn" not in n]
    assert frozen and not any(p.requires_grad for p in frozen)
    norms = {
        f"{n}.{k}" for n, m in body.named_modules() if isinstance(m, FrozenBatchNorm2d) for k in ("weight", "bias")
    }
    layer4 = {n: p for n, p in body.named_parameters() if n.startswith("layer4.")}
    assert all(p.requires_grad for n, p in layer4.items() if n not in norms)
    assert not any(p.requires_grad for n, p in layer4.items() if n in norms)  # as torchvision's frozen BN: no affine
    assert type(body.layer2[0].bn1) is FrozenBatchNorm2d
    bam = body.layer1[-1].attn_stage  # in a frozen stage, still trainable, its BatchNorm not frozen
    assert all(p.requires_grad for p in bam.parameters())
    assert type(bam.channel_gate[-1]) is nn.BatchNorm2d


def test_torchvision_detector_checkpoint_loads_with_only_attention_missing(tmp_path: Path) -> None:
    reference = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    state = {k: v for k, v in reference.state_dict().items() if not k.endswith("num_batches_tracked")}  # as frozen BN
    torch.save(state, tmp_path / "frcnn.pth")
    with pytest.warns(
        UserWarning, match=r"attention tensors are not in the checkpoint.*backbone\.body\.layer1\.0\.attn"
    ):
        detector = cnnattn.create_detector("fasterrcnn", "resnet50_se", checkpoint_path=tmp_path / "frcnn.pth")
    loaded = detector.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    with pytest.warns(UserWarning, match="different num_classes"):  # another class count: predictor re-initialised
        cnnattn.create_detector("fasterrcnn", "resnet50_se", num_classes=3, checkpoint_path=tmp_path / "frcnn.pth")


def test_classification_backbone_checkpoint_loads_into_the_body(tmp_path: Path) -> None:
    plain = timm.create_model("resnet18", num_classes=1000)
    torch.save(plain.state_dict(), tmp_path / "resnet18.pth")
    with pytest.warns(UserWarning, match="attention tensors are not in the checkpoint"):
        detector = cnnattn.create_detector("retinanet", "resnet18_das", checkpoint_path=tmp_path / "resnet18.pth")
    torch.testing.assert_close(detector.backbone.body.layer3[0].conv1.weight, plain.layer3[0].conv1.weight)


def test_bad_requests_say_what_is_allowed() -> None:
    with pytest.raises(ValueError, match="unknown detector 'yolo'.*fasterrcnn"):
        cnnattn.create_detector("yolo", "resnet18")
    with pytest.raises(ValueError, match="trainable_layers must be in 0..5"):
        cnnattn.create_detector("fcos", "resnet18", trainable_layers=6)


@pytest.mark.parametrize("position", BLOCK_POSITIONS)
def test_attach_on_a_torchvision_detector_runs_in_its_forward(position: str) -> None:
    detector = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, min_size=96, max_size=96)
    attention = "aw" if position == "conv" else "se"
    cnnattn.attach(detector, attention, stages=(3, 4), position=position)
    names = detector.cnnattn_placements[0].modules
    assert all(n.startswith("backbone.body.layer") for n in names)
    calls = _count_calls([detector.get_submodule(n) for n in names])
    detector.eval()([torch.rand(3, 96, 96)])
    assert calls[0] == len(names) == {"stage": 2, "conv": 9}.get(position, 9)


def test_attach_on_a_frozen_norm_resnet_and_on_its_body() -> None:
    """The two calls from the detection issue: a FrozenBatchNorm2d ResNet, and a detector's body."""
    resnet = torchvision.models.resnet18(norm_layer=torchvision.ops.FrozenBatchNorm2d)
    cnnattn.attach(resnet, "se")
    assert resnet(torch.rand(1, 3, 64, 64)).shape == (1, 1000)
    detector = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, min_size=96, max_size=96)
    cnnattn.attach(detector.backbone.body, "das", stages=(2, 3, 4), position="stage")
    calls = _count_calls(
        [detector.backbone.body.get_submodule(n) for n in detector.backbone.body.cnnattn_placements[0].modules]
    )
    detector.eval()([torch.rand(3, 96, 96)])
    assert calls[0] == 3
