"""``predict``: a trained checkpoint on image files. Detectors: boxes in COCO's results format and one picture
per image with the boxes drawn; classifiers: the top-5 classes per image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor
from torchvision.utils import draw_bounding_boxes

from ..data.images import image_files, read_rgb
from ..data.transforms import build_transform
from ..utils import atomic_write_text
from .checkpoint_io import load_training_checkpoint
from .config import TrainConfig
from .module import CHECKPOINT_KEY
from .trained import load_trained_model

__all__ = ["predict"]


def _xywh(box: list[float]) -> list[float]:
    return [box[0], box[1], box[2] - box[0], box[3] - box[1]]


@torch.no_grad()
def predict(
    checkpoint: str | Path, images: str | Path, output: str | Path, *, score_threshold: float = 0.5, device: str = "cpu"
) -> list[dict]:
    """Run the checkpoint's model on ``images``; write ``<output>/predictions.json`` (and, for a detector, one PNG
    per image with its boxes and labels drawn) and return the predictions.

    Detector entries (COCO results format, one per box with score ≥ ``score_threshold``): ``image`` (file
    name), ``bbox`` (x, y, w, h in pixels of the original image after EXIF rotation), ``score``, ``category``
    (name) and ``category_id`` (the training data's own id). Classifier entries: ``image`` and ``top5``
    (``class``, ``score``).
    """
    if not 0 <= score_threshold <= 1:
        raise ValueError(f"score_threshold must be in [0, 1]; got {score_threshold}.")
    model, config, classes = load_trained_model(checkpoint)
    files = image_files(images)
    model.to(device)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    results = PREDICTORS[config.task](checkpoint, model, config, classes, files, score_threshold, output, device)
    atomic_write_text(output / "predictions.json", json.dumps(results, indent=1) + "\n")
    return results


def _detect(
    model: torch.nn.Module, path: Path, classes: list[str], ids: list[int], threshold: float, output: Path, device: str
) -> list[dict]:
    pixels = pil_to_tensor(read_rgb(path))
    found = model([(pixels.float() / 255).to(device)])[0]
    keep = found["scores"] >= threshold
    boxes, scores, labels = found["boxes"][keep].cpu(), found["scores"][keep].cpu(), found["labels"][keep].cpu()
    names = [classes[int(label) - 1] for label in labels]
    captions = [f"{name} {score:.2f}" for name, score in zip(names, scores.tolist(), strict=True)]
    width = max(2, pixels.shape[-1] // 300)
    drawn = draw_bounding_boxes(pixels, boxes, labels=captions, colors="yellow", width=width) if len(boxes) else pixels
    Image.fromarray(np.ascontiguousarray(drawn.permute(1, 2, 0).numpy())).save(output / f"{path.stem}.png")
    return [
        {"image": path.name, "bbox": _xywh(box), "score": score, "category": name, "category_id": ids[int(label) - 1]}
        for box, score, name, label in zip(boxes.tolist(), scores.tolist(), names, labels.tolist(), strict=True)
    ]


def _classify(model: torch.nn.Module, path: Path, classes: list[str], transform, device: str) -> dict:
    probabilities = model(transform(read_rgb(path)).unsqueeze(0).to(device)).softmax(dim=1)[0].cpu()
    top = probabilities.topk(min(5, len(classes)))
    ranked = [{"class": classes[i], "score": s} for s, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)]
    return {"image": path.name, "top5": ranked}


def lower_score_threshold(model: torch.nn.Module, threshold: float) -> None:
    """Lower the detector's own score cut (Faster R-CNN's ``roi_heads.score_thresh``, RetinaNet's and FCOS's
    ``score_thresh``, 0.05 by default) to ``threshold`` where it is higher, so that a user's lower threshold is not
    silently overruled inside the model."""
    for owner in (model, getattr(model, "roi_heads", None)):
        if isinstance(getattr(owner, "score_thresh", None), float):
            owner.score_thresh = min(owner.score_thresh, threshold)


def _detect_all(checkpoint: str | Path, model: torch.nn.Module, config: TrainConfig, classes: list[str],
                files: list[Path], threshold: float, output: Path, device: str) -> list[dict]:  # fmt: skip
    lower_score_threshold(model, threshold)
    meta = load_training_checkpoint(checkpoint)[CHECKPOINT_KEY]
    ids = meta.get("category_ids") or list(range(1, len(classes) + 1))
    return [r for f in files for r in _detect(model, f, classes, ids, threshold, output, device)]


def _classify_all(checkpoint: str | Path, model: torch.nn.Module, config: TrainConfig, classes: list[str],
                  files: list[Path], threshold: float, output: Path, device: str) -> list[dict]:  # fmt: skip
    transform = build_transform(config.img_size, train=False)
    return [_classify(model, f, classes, transform, device) for f in files]


PREDICTORS = {"classify": _classify_all, "detect": _detect_all}  # by the recipe's task
