"""Grad-CAM family through pytorch-grad-cam: a map per image, the model left as it was, layers and errors;
EigenCAM of detectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cnnattn
from cnnattn.visualize.cam import (
    CAM_METHODS,
    _pyramid_as_one_map,
    _unpadded,
    class_activation_maps,
    default_target_layer,
    detection_activation_maps,
)

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


@pytest.mark.parametrize("arch", ["fasterrcnn", "retinanet"])
def test_detector_eigencam_gives_a_map_per_image_and_restores_the_model(arch: str) -> None:
    model = cnnattn.create_detector(arch, "resnet18_das", num_classes=3, min_size=64, max_size=96).train()
    images = torch.rand(2, 3, 64, 80)  # 80 px wide: the detector pads the batch to 96, the maps must not
    result = detection_activation_maps(model, images)
    assert model.training and result.layer == "backbone"
    assert result.maps.shape == (2, 64, 80) and all(m.max() == pytest.approx(1) and m.min() == 0 for m in result.maps)
    assert len(result.detections) == 2 and all({"boxes", "scores", "labels"} <= d.keys() for d in result.detections)


def test_detector_maps_drop_the_padding_the_detector_added() -> None:
    maps = np.zeros((1, 4, 8), dtype=np.float32)
    maps[0, :, :4] = np.linspace(0, 1, 4)[None, :]  # the image filled the left half; the right half is padding
    kept = _unpadded(maps, [(1.0, 0.5)])
    assert kept.shape == (1, 4, 8) and kept[0, :, 0].max() == 0 and kept[0, :, -1].min() == pytest.approx(1)
    assert np.all(np.diff(kept[0, 0]) >= 0)  # the left half's ramp now spans the whole width


def test_feature_pyramid_becomes_one_map_at_the_second_finest_level() -> None:
    levels = {"0": torch.ones(2, 4, 16, 16), "1": torch.ones(2, 4, 8, 8), "pool": torch.ones(2, 4, 1, 1)}
    assert _pyramid_as_one_map(levels).shape == (2, 12, 8, 8)
    assert _pyramid_as_one_map(torch.ones(1, 3, 5, 5)).shape == (1, 3, 5, 5)


def test_detectors_refuse_gradient_methods_by_name() -> None:
    model = cnnattn.create_detector("fcos", "resnet18", num_classes=2, min_size=64, max_size=64)
    with pytest.raises(ValueError, match="detectors support method eigencam"):
        detection_activation_maps(model, torch.rand(1, 3, 64, 64), "gradcam")
