"""Tiny detection datasets in every supported layout, written into a test's tmp folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = (48, 40)  # width, height


def _image(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def coco_tree(root: Path, split: str = "val2017") -> Path:
    """Three images: one with a cat and a crowd of dogs, one with a dog, one without boxes. Category ids 3 and
    17 (COCO-style gaps)."""
    images = [dict(id=10 + i, file_name=f"{i}.jpg", width=SIZE[0], height=SIZE[1]) for i in range(3)]
    for i in range(3):
        _image(root / split / f"{i}.jpg", i)
    annotations = [
        dict(id=1, image_id=10, category_id=3, bbox=[4, 5, 20, 15], iscrowd=0, area=300),
        dict(id=2, image_id=10, category_id=17, bbox=[25, 2, 20, 30], iscrowd=1, area=600),
        dict(id=3, image_id=11, category_id=17, bbox=[1, 1, 30, 30], iscrowd=0, area=900),
    ]
    categories = [dict(id=17, name="dog"), dict(id=3, name="cat")]
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    data = dict(images=images, annotations=annotations, categories=categories)
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))
    return root


def voc_xml(filename: str, objects: list[tuple[str, tuple[int, int, int, int], int]]) -> str:
    """A VOC annotation; boxes are VOC's 1-based (xmin, ymin, xmax, ymax)."""
    parts = [
        f"<object><name>{name}</name><difficult>{hard}</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
        f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for name, (x0, y0, x1, y1), hard in objects
    ]
    return (
        f"<annotation><filename>{filename}</filename><size><width>{SIZE[0]}</width><height>{SIZE[1]}</height>"
        f"<depth>3</depth></size>{''.join(parts)}</annotation>"
    )


def voc_standard(root: Path) -> Path:
    """Four images, train = 0, 1 and val = 2, 3; classes bird and car; image 3 holds a difficult car."""
    objects = {
        0: [("bird", (5, 5, 20, 20), 0)],
        1: [("car", (10, 10, 40, 30), 0)],
        2: [("bird", (1, 1, 48, 40), 0)],
        3: [("car", (3, 3, 9, 9), 1), ("bird", (20, 10, 30, 30), 0)],
    }
    for i, objs in objects.items():
        _image(root / "JPEGImages" / f"{i:06d}.jpg", i)
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / f"{i:06d}.xml").write_text(voc_xml(f"{i:06d}.jpg", objs))
    (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("000000\n000001\n")
    (root / "ImageSets" / "Main" / "val.txt").write_text("000002\n000003\n")
    return root


def voc_flat(root: Path, count: int = 10) -> Path:
    """``images/`` + ``annotations/`` (the raccoon layout): ``count`` images of one class."""
    for i in range(count):
        _image(root / "images" / f"r-{i}.jpg", i)
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"r-{i}.xml").write_text(voc_xml(f"r-{i}.jpg", [("raccoon", (2, 3, 30, 35), 0)]))
    return root
