"""Grad-CAM family through pytorch-grad-cam: a map per image, the model left as it was, layers and errors."""

from __future__ import annotations

import pytest
import torch

import cnnattn
from cnnattn.visualize.cam import CAM_METHODS, class_activation_maps, default_target_layer

pytest.importorskip("pytorch_grad_cam", reason="the viz extra is not installed")


@pytest.mark.parametrize("method", sorted(CAM_METHODS))
def test_every_image_of_a_batch_gets_a_non_empty_map(method: str) -> None:
    model = cnnattn.create_model("resnet18_das", num_classes=5)
    images = torch.randn(3, 3, 64, 64)
    result = class_activation_maps(model, images, method, classes=[0, 4, 2])
    assert result.maps.shape == (3, 64, 64) and result.classes == [0, 4, 2] and result.layer == "layer4.1"
    assert all(m.max() > 0 for m in result.maps) and result.maps.min() >= 0 and result.maps.max() <= 1
    assert all(0 <= s <= 100 for s in result.scores)


def test_mode_and_gradients_are_restored_even_inside_inference_mode() -> None:
    model = cnnattn.create_model("resnet18_se", num_classes=4).train()
    marker = torch.full_like(model.fc.weight, 3.0)
    model.fc.weight.grad = marker.clone()
    with torch.inference_mode():
        images = torch.randn(2, 3, 64, 64)
        result = class_activation_maps(model, images)  # predicted classes by default
    assert model.training and torch.equal(model.fc.weight.grad, marker)
    assert result.maps.shape == (2, 64, 64) and bool((result.maps >= 0).all())  # gradients flowed: no error
    with torch.inference_mode():
        assert result.classes == model.eval()(images).argmax(-1).tolist()


def test_default_layer_is_the_last_block_of_the_last_stage() -> None:
    assert default_target_layer(cnnattn.create_model("resnet50_cbam", num_classes=3)) == "layer4.2"
    assert default_target_layer(cnnattn.create_model("mobilenetv2_eca", num_classes=3)) == "features.17"
    with pytest.raises(ValueError, match="no default CAM layer for Sequential: pass layer="):
        default_target_layer(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1)))


def test_bad_requests_are_named() -> None:
    model = cnnattn.create_model("resnet18", num_classes=3)
    with pytest.raises(ValueError, match="method must be one of"):
        class_activation_maps(model, torch.randn(1, 3, 32, 32), "cam++")
    with pytest.raises(ValueError, match="one class per image: 1 classes for 2 images"):
        class_activation_maps(model, torch.randn(2, 3, 32, 32), classes=[1])
