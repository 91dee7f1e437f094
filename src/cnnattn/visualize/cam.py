"""Class activation maps (Grad-CAM, Grad-CAM++, EigenCAM) of any classification model, via ``grad-cam``.

``pytorch-grad-cam`` does the CAM arithmetic; this module picks the target layer (the last block of the last
stage, which runs once per forward), pairs one class with each image (the package matches targets and outputs
by position), and leaves the model as it found it: train/eval mode, parameter gradients, and gradients enabled
even when called inside ``torch.no_grad()`` or ``torch.inference_mode()``. Detectors (torchvision's Faster
R-CNN, RetinaNet, FCOS) get EigenCAM on their feature pyramid (:func:`detection_activation_maps`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..models.adapters import backbone_stages

__all__ = ["CAM_METHODS", "DETECTION_CAM_METHODS", "CamResult", "DetectionCamResult", "class_activation_maps",
           "default_target_layer", "detection_activation_maps"]  # fmt: skip

# Method name → pytorch_grad_cam class name. EigenCAM needs no gradient (first principal component).
CAM_METHODS = {"gradcam": "GradCAM", "gradcampp": "GradCAMPlusPlus", "eigencam": "EigenCAM"}
# Detectors: the gradient-free method only (pytorch-grad-cam's detector recipe); a gradient method would need one
# differentiable score per box, which torchvision's post-processing (score threshold, NMS) does not keep.
DETECTION_CAM_METHODS = ("eigencam",)


@dataclass
class CamResult:
    """``maps`` (B, H, W) in [0, 1] at the input's size; the class each map explains and the model's softmax
    score for it (percent), and the target layer's name."""

    maps: np.ndarray
    classes: list[int]
    scores: list[float]
    layer: str


def _package() -> object:
    try:
        import pytorch_grad_cam
    except ImportError:
        raise ImportError('Grad-CAM needs the viz extra: pip install "cnnattn[viz]" (pytorch-grad-cam).') from None
    return pytorch_grad_cam


def default_target_layer(model: nn.Module) -> str:
    """The qualified name of the last block of the model's last stage (ResNets: ``layer4.<last>``)."""
    try:
        return backbone_stages(model)[-1][-1].name
    except ValueError:
        raise ValueError(
            f"no default CAM layer for {type(model).__name__}: pass layer=<module name>, e.g. the last block."
        ) from None


@contextlib.contextmanager
def _model_kept(model: nn.Module) -> Iterator[None]:
    """Restore the model's train/eval mode and parameter gradients; enable autograd inside."""
    training, grads = model.training, [(p, p.grad) for p in model.parameters()]
    try:
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        model.train(training)
        for parameter, grad in grads:
            parameter.grad = grad


def class_activation_maps(
    model: nn.Module,
    images: torch.Tensor,
    method: str = "gradcam",
    classes: Sequence[int] | None = None,
    layer: str | None = None,
) -> CamResult:
    """CAMs of a batch of normalised images (B, 3, H, W), one per image.

    Args:
        model: A classifier returning logits (B, num_classes).
        images: The model's input, normalised as in training.
        method: ``gradcam``, ``gradcampp`` or ``eigencam``.
        classes: The class to explain for each image (default: the predicted one).
        layer: Target module's qualified name (default :func:`default_target_layer`).
    """
    if method not in CAM_METHODS:
        raise ValueError(f"method must be one of {sorted(CAM_METHODS)}; got {method!r}.")
    if images.ndim != 4:
        raise ValueError(f"images must be a batch (B, 3, H, W); got shape {tuple(images.shape)}.")
    if classes is not None and len(classes) != images.shape[0]:
        raise ValueError(f"give one class per image: {len(classes)} classes for {images.shape[0]} images.")
    package = _package()
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    layer = layer or default_target_layer(model)
    target = model.get_submodule(layer)
    with _model_kept(model):
        x = images.detach().clone()  # a normal tensor, also when given an inference-mode one
        with torch.no_grad():
            probs = model.eval()(x).float().softmax(dim=-1)
        chosen = list(classes) if classes is not None else probs.argmax(dim=-1).tolist()
        scores = [100 * float(probs[i, c]) for i, c in enumerate(chosen)]
        with getattr(package, CAM_METHODS[method])(model=model, target_layers=[target]) as cam:
            maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in chosen])
    return CamResult(np.asarray(maps, dtype=np.float32), chosen, scores, layer)


@dataclass
class DetectionCamResult:
    """``maps`` (B, H, W) in [0, 1] at the input's size; each image's detections (``boxes`` (N, 4) x1, y1, x2, y2
    in input pixels, ``labels`` (N,) with 0 = background as in torchvision, ``scores`` (N,) in [0, 1]), and the
    target layer's name."""

    maps: np.ndarray
    detections: list[dict[str, torch.Tensor]]
    layer: str


def _pyramid_as_one_map(features: torch.Tensor | Mapping[str, torch.Tensor]) -> torch.Tensor:
    """A feature pyramid (levels (B, C, h_i, w_i), finest first) as one (B, C·L, h, w) map at the second-finest
    level's size (stride 8 in Faster R-CNN's FPN), where every level contributes; a plain map passes through."""
    if isinstance(features, torch.Tensor):
        return features
    levels = list(features.values())
    size = levels[min(1, len(levels) - 1)].shape[-2:]
    return torch.cat([torch.nn.functional.interpolate(f, size=size, mode="bilinear") for f in levels], dim=1)


def _unpadded(maps: np.ndarray, valid: Sequence[tuple[float, float]]) -> np.ndarray:
    """Crop each map (B, H, W) to the share of the batch the image filled before the detector padded it
    (``valid``: per image (height, width) fractions), stretch it back to (H, W) and rescale it to [0, 1]."""
    out = []
    height, width = maps.shape[-2:]
    for heat, (fh, fw) in zip(torch.from_numpy(maps), valid, strict=True):
        crop = heat[: max(1, round(height * fh)), : max(1, round(width * fw))]
        crop = torch.nn.functional.interpolate(crop[None, None], size=(height, width), mode="bilinear")[0, 0]
        crop = crop - crop.min()
        out.append((crop / crop.max().clamp_min(1e-7)).numpy())
    return np.stack(out).astype(np.float32)


def detection_activation_maps(
    model: nn.Module, images: torch.Tensor, method: str = "eigencam", layer: str = "backbone"
) -> DetectionCamResult:
    """EigenCAM of a torchvision detector on a batch of images (B, 3, H, W) in [0, 1] (the detector normalises).

    The target is the detector's backbone with its feature pyramid (every level resized to one map), as in
    pytorch-grad-cam's detector recipe; the maps are cut to each image's unpadded area, so they line up with the
    input. The model's mode and gradients are restored.
    """
    if method not in DETECTION_CAM_METHODS:
        raise ValueError(
            f"detectors support method {', '.join(DETECTION_CAM_METHODS)} (gradient-free); got {method!r}."
        )
    if images.ndim != 4:
        raise ValueError(f"images must be a batch (B, 3, H, W); got shape {tuple(images.shape)}.")
    package = _package()
    from pytorch_grad_cam.utils.model_targets import FasterRCNNBoxScoreTarget

    target = model.get_submodule(layer)
    with _model_kept(model):
        x = images.detach().clone()
        model.eval()
        with torch.no_grad():
            detections = model(x)
            batched = model.transform(list(x))[0]
        padded = batched.tensors.shape[-2:]
        valid = [(h / padded[0], w / padded[1]) for h, w in batched.image_sizes]
        targets = [FasterRCNNBoxScoreTarget(d["labels"], d["boxes"]) for d in detections]
        cam_class = getattr(package, CAM_METHODS[method])
        with cam_class(model=model, target_layers=[target], reshape_transform=_pyramid_as_one_map) as cam:
            maps = cam(input_tensor=x, targets=targets)
    detections = [{k: v.detach() for k, v in d.items()} for d in detections]
    return DetectionCamResult(_unpadded(np.asarray(maps, dtype=np.float32), valid), detections, layer)
