"""COCO metrics: identical to pycocotools run on the dataset's own annotation file; empty and edge cases."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from cnnattn.data.detection import DetectionSet, open_detection
from cnnattn.engine.coco_eval import METRICS, coco_metrics, coco_results
from tiny_detection import coco_tree, voc_flat, voc_standard

SHARED_COCO = Path(__file__).resolve().parents[3] / "shared" / "data" / "coco_tiny"


def _fixed_predictions(dataset: DetectionSet) -> list[dict[str, torch.Tensor]]:
    """Deterministic: every object found with a shifted box, a wrong-class copy and a stray box, varied scores."""
    predictions = []
    for i, record in enumerate(dataset.records):
        shift = torch.tensor([1.5, -1.0, 2.0, 0.5], dtype=torch.float64) * (i % 3)
        stray = torch.tensor([[0.0, 0.0, 8.0, 8.0]], dtype=torch.float64)
        boxes = torch.cat([record.boxes + shift, record.boxes, stray])
        n = len(record.boxes)
        wrong = (record.labels % len(dataset.classes)) + 1
        labels = torch.cat([record.labels, wrong, torch.tensor([1])])
        scores = torch.linspace(0.95, 0.05, 2 * n + 1, dtype=torch.float64).roll(i)
        predictions.append({"boxes": boxes, "labels": labels, "scores": scores})
    return predictions


def _pycocotools_directly(annotation_file: Path, results: list[dict]) -> list[float]:
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(str(annotation_file))
        evaluator = COCOeval(truth, truth.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [None if v < 0 else 100 * float(v) for v in evaluator.stats]


def _assert_same_as_pycocotools(root: Path, split: str) -> dict:
    dataset = open_detection(root, "val")
    predictions = _fixed_predictions(dataset)
    ours = coco_metrics(dataset, predictions)
    reference = _pycocotools_directly(
        root / "annotations" / f"instances_{split}.json", coco_results(dataset, predictions)
    )
    assert list(ours) == list(METRICS)
    for name, expected in zip(METRICS, reference, strict=True):
        assert ours[name] == pytest.approx(expected, abs=1e-9), name
    return ours


def test_metrics_equal_pycocotools_on_the_annotation_file(tmp_path: Path) -> None:
    ours = _assert_same_as_pycocotools(coco_tree(tmp_path), "val2017")
    assert 0 < ours["AP"] < 100


@pytest.mark.skipif(not SHARED_COCO.is_dir(), reason="../shared/data/coco_tiny is absent")
def test_metrics_equal_pycocotools_on_shared_coco_tiny() -> None:
    ours = _assert_same_as_pycocotools(SHARED_COCO, "val2017")  # 80 categories, crowds, every size range
    assert all(ours[k] is not None for k in ("APs", "APm", "APl"))


def test_empty_predictions_and_images_without_boxes_evaluate(tmp_path: Path) -> None:
    dataset = open_detection(coco_tree(tmp_path), "val")  # one image has no box
    empty = [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}]
    metrics = coco_metrics(dataset, empty * len(dataset))
    assert metrics["AP"] == 0.0 and metrics["AR100"] == 0.0
    assert metrics["APl"] is None  # no large object in this data: undefined, as COCOeval's -1


def test_single_class_perfect_predictions_score_100(tmp_path: Path) -> None:
    dataset = open_detection(voc_flat(tmp_path, count=10), "val")
    perfect = [{"boxes": r.boxes, "scores": torch.ones(len(r.boxes)), "labels": r.labels} for r in dataset.records]
    assert coco_metrics(dataset, perfect)["AP"] == pytest.approx(100.0)


def test_difficult_objects_are_neither_misses_nor_false_positives(tmp_path: Path) -> None:
    dataset = open_detection(voc_standard(tmp_path), "val")  # image 000003 holds a difficult car
    found = [{"boxes": r.boxes[~r.ignore], "scores": torch.ones(int((~r.ignore).sum())), "labels": r.labels[~r.ignore]}
             for r in dataset.records]  # fmt: skip
    assert coco_metrics(dataset, found)["AP50"] == pytest.approx(100.0)  # the difficult car is not a miss
    with_hard = [{"boxes": r.boxes, "scores": torch.ones(len(r.boxes)), "labels": r.labels} for r in dataset.records]
    assert coco_metrics(dataset, with_hard)["AP50"] == pytest.approx(100.0)  # and detecting it is not a mistake


def test_predictions_must_cover_every_image(tmp_path: Path) -> None:
    dataset = open_detection(coco_tree(tmp_path), "val")
    with pytest.raises(ValueError, match="predictions for 1 images; the dataset has 3"):
        coco_metrics(dataset, _fixed_predictions(dataset)[:1])
