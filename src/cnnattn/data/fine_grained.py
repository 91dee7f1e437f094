"""The fine-grained sets of the DAS paper in their official layouts: Stanford Dogs and CUB-200-2011."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from .errors import DataError
from .images import read_rgb

__all__ = ["CUB200", "CUB_LAYOUT", "STANFORD_DOGS_LAYOUT", "FileListDataset", "StanfordDogs"]

STANFORD_DOGS_LAYOUT = "Images/<wnid>-<breed>/<image>.jpg and lists/train_list.mat, lists/test_list.mat"
CUB_LAYOUT = "images/<class>/<image>.jpg, images.txt, image_class_labels.txt, train_test_split.txt, classes.txt"


class FileListDataset(torch.utils.data.Dataset):
    """Images listed as ``(path, label)`` pairs; items are ``(transform(PIL RGB), label)``."""

    def __init__(self, samples: list[tuple[Path, int]], classes: list[str], transform: Callable | None) -> None:
        self.samples, self.classes, self.transform = samples, classes, transform
        self.targets = [label for _, label in samples]

    def __len__(self) -> int:
        return len(self.samples)

    def describe(self, index: int) -> str:
        return str(self.samples[index][0])

    def __getitem__(self, index: int) -> tuple[object, int]:
        path, label = self.samples[index]
        image = read_rgb(path)
        return (self.transform(image) if self.transform else image), label


def _require(root: Path, names: list[str], layout: str) -> None:
    missing = [n for n in names if not (root / n).exists()]
    if missing:
        raise DataError(f"{root}: missing {', '.join(missing)}; expected {layout}.")


class StanfordDogs(FileListDataset):
    """Stanford Dogs (120 breeds; 12,000 train / 8,580 test) with the official split of ``lists/*.mat``."""

    def __init__(self, root: str | Path, split: str = "train", transform: Callable | None = None) -> None:
        from scipy.io import loadmat

        root = Path(root)
        lists = f"lists/{'train' if split == 'train' else 'test'}_list.mat"
        _require(root, ["Images", lists], STANFORD_DOGS_LAYOUT)
        try:
            mat = loadmat(root / lists)
            files = [str(entry[0][0]) for entry in mat["file_list"]]
            labels = [int(v) - 1 for v in mat["labels"].ravel()]
        except (KeyError, ValueError, IndexError, OSError) as err:
            raise DataError(f"{root / lists}: unreadable ({err}); expected 'file_list' and 'labels' arrays.") from None
        classes = sorted({f.split("/")[0] for f in files})
        super().__init__([(root / "Images" / f, y) for f, y in zip(files, labels, strict=True)], classes, transform)


def _read_table(path: Path) -> dict[int, str]:
    """``<id> <value>`` per line → {id: value}."""
    table = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            key, _, value = line.strip().partition(" ")
            if not key.isdigit() or not value:
                raise DataError(f"{path}:{number}: expected '<id> <value>', got {line!r}.")
            table[int(key)] = value.strip()
    return table


class CUB200(FileListDataset):
    """CUB-200-2011 (200 bird species; 5,994 train / 5,794 test) with the official ``train_test_split.txt``."""

    def __init__(self, root: str | Path, split: str = "train", transform: Callable | None = None) -> None:
        root = Path(root)
        tables = ["images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt"]
        _require(root, ["images", *tables], CUB_LAYOUT)
        images, labels, is_train, classes = (_read_table(root / t) for t in tables)
        wanted = "1" if split == "train" else "0"
        samples = [(root / "images" / images[i], int(labels[i]) - 1) for i in sorted(images) if is_train[i] == wanted]
        super().__init__(samples, [classes[k] for k in sorted(classes)], transform)
