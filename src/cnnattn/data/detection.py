"""Detection datasets read in place: COCO JSON, Pascal VOC (standard and flat layouts).

Every layout becomes a :class:`DetectionSet`: images with boxes in pixels of the original image (x0, y0, x1, y1,
continuous coordinates, 0-based), contiguous labels 1..K (0 is the background, torchvision's convention) and the
mapping back to the dataset's own category ids (COCO's 1–90 with gaps). Objects to ignore (COCO ``iscrowd``,
VOC ``difficult``) are kept with ``ignore=True``: out of training targets, handled by the evaluator as COCO
handles crowds. Images without boxes are kept.

Layouts:

* COCO: ``annotations/instances_<split>.json`` and ``<split>/`` images (e.g. ``train2017``/``val2017``).
* Pascal VOC: ``Annotations/*.xml``, ``JPEGImages/``, ``ImageSets/Main/<split>.txt`` (``train``, ``val``).
* Flat VOC: VOC XML files anywhere under the root, each naming its image (``<filename>``), images anywhere in
  the tree; without split files, a deterministic split: the ``val_fraction`` of images whose file-name hash is
  smallest are the validation set (the same on every run and machine).

Bad input never crashes and never silently changes labels: a box outside the image is clipped, a box of zero
area (after clipping) is dropped, an unreadable XML file is skipped, each with a warning naming the file; a
dataset with no usable box is a :class:`DataError`.
"""

from __future__ import annotations

import json
import warnings
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from .errors import DataError
from .images import IMG_EXTENSIONS, read_rgb

__all__ = [
    "DetectionImages",
    "DetectionRecord",
    "DetectionSet",
    "collate_detection",
    "detection_transform",
    "open_detection",
    "split_names",
]

SPLIT_NAMES = {"train": ("train",), "val": ("val", "test")}


@dataclass
class DetectionRecord:
    """One image: its file, size and objects. ``boxes`` (N, 4) float64 pixels (x0, y0, x1, y1), ``labels`` (N,)
    in 1..K, ``ignore`` (N,) crowd or difficult, ``areas`` (N,) in pixels² (COCO's own ``area`` where given,
    which the evaluator's size ranges use, else the box area)."""

    image: Path
    image_id: int
    width: int
    height: int
    boxes: torch.Tensor
    labels: torch.Tensor
    ignore: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.bool))
    areas: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.float64))

    def target(self) -> dict[str, torch.Tensor]:
        """Training target: float32 boxes and labels of the objects not ignored."""
        keep = ~self.ignore
        return {"boxes": self.boxes[keep].float(), "labels": self.labels[keep], "image_id": torch.tensor(self.image_id)}


@dataclass
class DetectionSet:
    """Records of one split, class names (index i ↔ label i + 1) and the dataset's own category ids."""

    records: list[DetectionRecord]
    classes: list[str]
    category_ids: list[int]
    layout: str

    @property
    def num_classes(self) -> int:
        """Classes including the background, as torchvision's detectors count them."""
        return len(self.classes) + 1

    def __len__(self) -> int:
        return len(self.records)


def _clean_boxes(boxes: torch.Tensor, width: int, height: int, source: str) -> torch.Tensor:
    """Clip boxes to the image and return the mask of those with positive area; warn naming ``source``."""
    if not len(boxes):
        return torch.zeros(0, dtype=torch.bool)
    limits = torch.tensor([width, height, width, height], dtype=boxes.dtype)
    clipped = torch.minimum(boxes.clamp_min(0), limits)
    outside = (clipped != boxes).any(dim=1)
    keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    if (outside & keep).any():
        warnings.warn(
            f"{source}: {int((outside & keep).sum())} box(es) reach outside the image; clipped.", stacklevel=3
        )
    if (~keep).any():
        warnings.warn(f"{source}: {int((~keep).sum())} box(es) of zero area (after clipping); dropped.", stacklevel=3)
    boxes.copy_(clipped)
    return keep


Objects = list[tuple[list[float], int, bool, float | None]]  # (x0, y0, x1, y1), label, ignore, area


def _record(image: Path, image_id: int, size: tuple[int, int], objects: Objects, source: str) -> DetectionRecord:
    width, height = size
    boxes = torch.tensor([o[0] for o in objects], dtype=torch.float64).reshape(-1, 4)
    labels = torch.tensor([o[1] for o in objects], dtype=torch.int64)
    ignore = torch.tensor([o[2] for o in objects], dtype=torch.bool)
    keep = _clean_boxes(boxes, width, height, source)
    box_areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    areas = torch.tensor([box_areas[i] if o[3] is None else o[3] for i, o in enumerate(objects)], dtype=torch.float64)
    return DetectionRecord(image, image_id, width, height, boxes[keep], labels[keep], ignore[keep], areas[keep])


def _open_coco(annotations: Path, images: Path) -> DetectionSet:
    try:
        data = json.loads(annotations.read_text())
        categories = sorted(data["categories"], key=lambda c: c["id"])
        infos = data["images"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"{annotations}: not a COCO instances file ({err}).") from None
    label_of = {c["id"]: i + 1 for i, c in enumerate(categories)}
    objects: dict[int, list] = {info["id"]: [] for info in infos}
    for ann in data.get("annotations", []):
        x, y, w, h = ann["bbox"]
        if ann["image_id"] in objects and ann["category_id"] in label_of:
            crowd = bool(ann.get("iscrowd", 0))
            objects[ann["image_id"]].append(
                ([x, y, x + w, y + h], label_of[ann["category_id"]], crowd, ann.get("area"))
            )
    records = [
        _record(
            images / info["file_name"],
            info["id"],
            (info["width"], info["height"]),
            objects[info["id"]],
            f"{annotations} (image {info['file_name']})",
        )
        for info in infos
    ]
    return DetectionSet(records, [c["name"] for c in categories], [c["id"] for c in categories], "coco")


def _voc_objects(xml: Path) -> tuple[str, tuple[int, int], list[tuple[list[float], str, bool]]]:
    root = ET.parse(xml).getroot()
    size = root.find("size")
    width, height = int(float(size.findtext("width"))), int(float(size.findtext("height")))
    objects = []
    for obj in root.iter("object"):
        box = obj.find("bndbox")
        xmin, ymin, xmax, ymax = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        difficult = obj.findtext("difficult", "0").strip() == "1"
        objects.append(([xmin - 1, ymin - 1, xmax, ymax], obj.findtext("name").strip(), difficult))  # 1-based corners
    return root.findtext("filename").strip(), (width, height), objects


def _read_voc(xmls: Iterable[Path], find_image) -> tuple[list, list[str]]:
    parsed = []
    for xml in xmls:
        try:
            filename, size, objects = _voc_objects(xml)
        except (ET.ParseError, OSError, AttributeError, TypeError, ValueError) as err:
            warnings.warn(f"{xml}: unreadable VOC annotation ({err}); skipped.", stacklevel=3)
            continue
        image = find_image(filename, xml)
        if image is None:
            warnings.warn(f"{xml}: its image {filename!r} was not found; skipped.", stacklevel=3)
            continue
        parsed.append((xml, image, size, objects))
    classes = sorted({name for _, _, _, objects in parsed for _, name, _ in objects})
    return parsed, classes


def _voc_set(parsed: list, classes: list[str], layout: str) -> DetectionSet:
    label_of = {name: i + 1 for i, name in enumerate(classes)}
    records = [
        _record(image, i, size, [(box, label_of[name], hard, None) for box, name, hard in objects], str(xml))
        for i, (xml, image, size, objects) in enumerate(parsed)
    ]
    return DetectionSet(records, classes, list(range(1, len(classes) + 1)), layout)


def split_names(names: list[str], split: str, val_fraction: float) -> list[str]:
    """Deterministic split of file names: the ``val_fraction`` with the smallest CRC-32 hashes are validation."""
    if not 0 < val_fraction < 1:
        raise DataError(f"val_fraction must be in (0, 1); got {val_fraction}.")
    ranked = sorted(names, key=lambda n: (zlib.crc32(n.encode()), n))
    count = max(1, round(len(names) * val_fraction))
    chosen = set(ranked[:count] if split == "val" else ranked[count:])
    return [n for n in names if n in chosen]


def _open_voc_standard(root: Path, split: str) -> DetectionSet:
    lists = root / "ImageSets" / "Main"
    name = next((n for n in SPLIT_NAMES[split] if (lists / f"{n}.txt").is_file()), None)
    if name is None:
        raise DataError(f"{lists}: no {' or '.join(f'{n}.txt' for n in SPLIT_NAMES[split])} split file.")
    ids = {line.split()[0] for line in (lists / f"{name}.txt").read_text().splitlines() if line.strip()}
    xmls = sorted((root / "Annotations").glob("*.xml"))  # classes come from every split
    parsed, classes = _read_voc(xmls, lambda filename, _: _exists(root / "JPEGImages" / filename))
    return _voc_set([p for p in parsed if p[0].stem in ids], classes, "voc")


def _exists(path: Path) -> Path | None:
    return path if path.is_file() else None


def _open_voc_flat(root: Path, split: str, val_fraction: float) -> DetectionSet:
    images = {p.name: p for p in sorted(root.rglob("*")) if p.suffix.lower() in IMG_EXTENSIONS}
    xmls = sorted(root.rglob("*.xml"))
    parsed, classes = _read_voc(xmls, lambda filename, xml: images.get(Path(filename).name))
    chosen = set(split_names([xml.name for xml, *_ in parsed], split, val_fraction))
    return _voc_set([p for p in parsed if p[0].name in chosen], classes, "voc-flat")


def _coco_paths(root: Path, split: str) -> tuple[Path, Path] | None:
    for ann in sorted((root / "annotations").glob("instances_*.json")):
        name = ann.stem.removeprefix("instances_")
        if any(name.startswith(s) for s in SPLIT_NAMES[split]) and (root / name).is_dir():
            return ann, root / name
    return None


def open_detection(path: str | Path, split: str, *, val_fraction: float = 0.2) -> DetectionSet:
    """The ``split`` (``'train'`` or ``'val'``) of the detection dataset at ``path``, its layout recognised.

    DataError (one line naming the path and the layouts) when nothing matches or no box is usable.
    """
    root = Path(path)
    if split not in SPLIT_NAMES:
        raise DataError(f"split must be 'train' or 'val'; got {split!r}.")
    if not root.is_dir():
        raise DataError(f"{root}: no such folder; expected a COCO, Pascal VOC or flat VOC detection dataset.")
    if coco := _coco_paths(root, split):
        dataset = _open_coco(*coco)
    elif (root / "Annotations").is_dir() and (root / "ImageSets" / "Main").is_dir():
        dataset = _open_voc_standard(root, split)
    elif next(root.rglob("*.xml"), None) is not None:
        dataset = _open_voc_flat(root, split, val_fraction)
    else:
        raise DataError(
            f"{root}: no detection layout found; expected annotations/instances_<split>.json with <split>/ images "
            "(COCO), Annotations/ + JPEGImages/ + ImageSets/Main/ (Pascal VOC), or VOC XML files with their images "
            "anywhere under the folder (flat VOC)."
        )
    if not any(len(r.boxes) for r in dataset.records):
        raise DataError(f"{root}: the {split} split has no usable box ({len(dataset)} images read).")
    return dataset


class DetectionImages(torch.utils.data.Dataset):
    """``(PIL image, target)`` of every record: RGB (greyscale and RGBA converted, EXIF rotation applied), target
    ``boxes`` (``tv_tensors.BoundingBoxes``, x0y0x1y1 pixels), ``labels`` and ``image_id``, ignored objects out."""

    def __init__(self, dataset: DetectionSet) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset.records)

    def describe(self, index: int) -> str:
        return str(self.dataset.records[index].image)

    def __getitem__(self, index: int) -> tuple[Image.Image, dict[str, torch.Tensor]]:
        record = self.dataset.records[index]
        image = read_rgb(record.image)
        target = record.target()
        target["boxes"] = tv_tensors.BoundingBoxes(target["boxes"], format="XYXY", canvas_size=image.size[::-1])
        return image, target


def detection_transform(train: bool, hflip: float = 0.5) -> v2.Compose:
    """Image to a float tensor in [0, 1] (the detector normalises and resizes), with a horizontal flip of the
    image and its boxes when training; boxes left without area are removed."""
    steps = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    if train and hflip > 0:
        steps += [v2.RandomHorizontalFlip(hflip), v2.SanitizeBoundingBoxes()]
    return v2.Compose(steps)


def collate_detection(batch: list) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]] | None:
    """Lists of images and targets (detectors take images of different sizes); unreadable items dropped."""
    good = [item for item in batch if item is not None]
    return (list(i for i, _ in good), list(t for _, t in good)) if good else None
