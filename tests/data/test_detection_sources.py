"""Detection layouts read in place: COCO, Pascal VOC and flat VOC; bad boxes and files; the shared sets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cnnattn.data import DataError
from cnnattn.data.detection import open_detection, split_names
from tiny_detection import coco_tree, voc_flat, voc_standard, voc_xml

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def test_coco_maps_category_ids_to_contiguous_labels_and_back(tmp_path: Path) -> None:
    data = open_detection(coco_tree(tmp_path), "val")
    assert data.layout == "coco" and data.classes == ["cat", "dog"] and data.category_ids == [3, 17]
    assert data.num_classes == 3 and len(data) == 3  # the image without boxes is kept
    first = data.records[0]
    torch.testing.assert_close(
        first.boxes, torch.tensor([[4.0, 5.0, 24.0, 20.0], [25.0, 2.0, 45.0, 32.0]], dtype=torch.float64)
    )
    assert first.labels.tolist() == [1, 2] and first.ignore.tolist() == [False, True]  # the crowd is kept, ignored
    assert first.areas.tolist() == [300.0, 600.0]  # COCO's own areas (the evaluator's size ranges use them)
    assert first.target()["labels"].tolist() == [1] and data.records[2].target()["boxes"].shape == (0, 4)
    assert first.target()["boxes"].dtype == torch.float32


def test_voc_standard_uses_its_split_files_and_difficult_objects_are_ignored(tmp_path: Path) -> None:
    root = voc_standard(tmp_path)
    train, val = open_detection(root, "train"), open_detection(root, "val")
    assert train.layout == "voc" and [r.image.name for r in train.records] == ["000000.jpg", "000001.jpg"]
    assert [r.image.name for r in val.records] == ["000002.jpg", "000003.jpg"]
    assert train.classes == val.classes == ["bird", "car"]
    torch.testing.assert_close(
        train.records[0].boxes, torch.tensor([[4.0, 4.0, 20.0, 20.0]], dtype=torch.float64)
    )  # 1-based corners
    assert val.records[1].ignore.tolist() == [True, False]


def test_flat_voc_split_is_deterministic_disjoint_and_sized(tmp_path: Path) -> None:
    root = voc_flat(tmp_path, count=10)
    train, val = open_detection(root, "train"), open_detection(root, "val", val_fraction=0.2)
    assert train.layout == "voc-flat" and train.classes == ["raccoon"]
    names = lambda d: {r.image.name for r in d.records}  # noqa: E731
    assert len(val) == 2 and len(train) == 8 and not names(train) & names(val)
    assert names(open_detection(root, "val")) == names(val)
    assert split_names(["b", "a", "c"], "val", 0.34) == split_names(["c", "b", "a"], "val", 0.34)


def test_bad_boxes_are_clipped_or_dropped_with_a_warning_naming_the_file(tmp_path: Path) -> None:
    root = voc_flat(tmp_path, count=5)
    bad = root / "annotations" / "r-0.xml"
    bad.write_text(voc_xml("r-0.jpg", [("raccoon", (-5, 3, 60, 35), 0), ("raccoon", (20, 10, 10, 20), 0)]))
    with pytest.warns(UserWarning) as caught:
        records = open_detection(root, "train").records + open_detection(root, "val").records
    messages = [str(w.message) for w in caught]
    assert any(str(bad) in m and "clipped" in m for m in messages)
    assert any(str(bad) in m and "zero area" in m and "dropped" in m for m in messages)
    record = next(r for r in records if r.image.name == "r-0.jpg")
    torch.testing.assert_close(record.boxes, torch.tensor([[0.0, 2.0, 48.0, 35.0]], dtype=torch.float64))


def test_unreadable_xml_and_missing_image_are_skipped_with_a_warning(tmp_path: Path) -> None:
    root = voc_flat(tmp_path, count=6)
    (root / "annotations" / "broken.xml").write_text("<annotation><filename>")
    (root / "annotations" / "orphan.xml").write_text(voc_xml("nowhere.jpg", [("raccoon", (1, 1, 5, 5), 0)]))
    with pytest.warns(UserWarning) as caught:
        train = open_detection(root, "train")
    messages = " ".join(str(w.message) for w in caught)
    assert "broken.xml: unreadable VOC annotation" in messages and "orphan.xml: its image 'nowhere.jpg'" in messages
    assert all(r.image.exists() for r in train.records)


def test_no_usable_box_and_unknown_layouts_are_one_line_errors(tmp_path: Path) -> None:
    root = voc_flat(tmp_path / "flat", count=3)
    for xml in (root / "annotations").glob("*.xml"):
        xml.write_text(voc_xml(xml.stem + ".jpg", [("raccoon", (10, 10, 5, 5), 0)]))
    with pytest.warns(UserWarning), pytest.raises(DataError, match="has no usable box"):
        open_detection(root, "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no detection layout found.*COCO.*Pascal VOC.*flat VOC") as info:
        open_detection(tmp_path / "empty", "train")
    assert "\n" not in str(info.value)


@pytest.mark.skipif(not (SHARED / "coco_tiny").is_dir(), reason="../shared/data/coco_tiny is absent")
def test_shared_coco_tiny() -> None:
    val = open_detection(SHARED / "coco_tiny", "val")
    assert len(val) == 80 and len(val.classes) == 80 and max(val.category_ids) == 90
    assert sum(len(r.boxes) for r in val.records) == 815 and sum(int(r.ignore.sum()) for r in val.records) == 11


@pytest.mark.skipif(not (SHARED / "raccoon").is_dir(), reason="../shared/data/raccoon is absent")
def test_shared_raccoon_flat_voc() -> None:
    train, val = open_detection(SHARED / "raccoon", "train"), open_detection(SHARED / "raccoon", "val")
    assert (len(train), len(val)) == (160, 40) and train.classes == ["raccoon"]
    assert sum(len(r.boxes) for r in train.records + val.records) == 217
