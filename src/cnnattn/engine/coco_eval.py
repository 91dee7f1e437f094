"""COCO detection metrics with pycocotools' ``COCOeval`` (the reference), for COCO and VOC data alike.

The ground truth comes from a :class:`~cnnattn.data.detection.DetectionSet`: boxes in original-image pixels,
the dataset's own category ids, COCO's ``area`` where the data gives one, and ignored objects (COCO crowds,
VOC difficult) as ``iscrowd``, which COCOeval does not count as misses. Metrics are percentages; a size range
with no ground truth is ``None`` (COCOeval's -1).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import torch

from ..data.detection import DetectionSet

__all__ = ["METRICS", "coco_ground_truth", "coco_metrics", "coco_results"]

# COCOeval.stats, in order
METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def _xywh(boxes: torch.Tensor) -> list[list[float]]:
    boxes = boxes.double()
    return torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).tolist()


def coco_ground_truth(dataset: DetectionSet) -> dict:
    """The dataset as a COCO instances dictionary."""
    images, annotations = [], []
    for record in dataset.records:
        images.append({"id": record.image_id, "width": record.width, "height": record.height})
        columns = (_xywh(record.boxes), record.labels.tolist(), record.ignore.tolist(), record.areas.tolist())
        for box, label, ignore, area in zip(*columns, strict=True):
            annotation = {"image_id": record.image_id, "category_id": dataset.category_ids[label - 1], "bbox": box}
            annotations.append({"id": len(annotations) + 1, **annotation, "area": area, "iscrowd": int(ignore)})
    categories = [{"id": i, "name": n} for i, n in zip(dataset.category_ids, dataset.classes, strict=True)]
    return {"images": images, "annotations": annotations, "categories": categories}


def coco_results(dataset: DetectionSet, predictions: Sequence[dict[str, torch.Tensor]]) -> list[dict]:
    """Predictions (one dict of ``boxes`` (N, 4) x0y0x1y1 pixels, ``scores``, ``labels`` 1..K per record, in
    record order) in COCO's results format."""
    if len(predictions) != len(dataset.records):
        raise ValueError(f"got predictions for {len(predictions)} images; the dataset has {len(dataset.records)}.")
    results = []
    for record, prediction in zip(dataset.records, predictions, strict=True):
        for box, score, label in zip(
            _xywh(prediction["boxes"]), prediction["scores"].tolist(), prediction["labels"].tolist(), strict=True
        ):
            category = dataset.category_ids[int(label) - 1]
            results.append({"image_id": record.image_id, "category_id": category, "bbox": box, "score": score})
    return results


def coco_metrics(dataset: DetectionSet, predictions: Sequence[dict[str, torch.Tensor]]) -> dict[str, float | None]:
    """AP, AP50, AP75, APs/m/l and AR1/10/100, ARs/m/l in percent, from pycocotools' COCOeval (bbox)."""
    from pycocotools.cocoeval import COCOeval

    truth = _coco(coco_ground_truth(dataset))
    results = coco_results(dataset, predictions)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and table
        # loadRes refuses an empty list; an empty result set is what COCOeval then sees
        detections = truth.loadRes(results) if results else _coco({**truth.dataset, "annotations": []})
        evaluator = COCOeval(truth, detections, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {
        name: None if value < 0 else 100 * float(value) for name, value in zip(METRICS, evaluator.stats, strict=True)
    }


def _coco(dataset: dict):
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = dataset
        coco.createIndex()
    return coco
