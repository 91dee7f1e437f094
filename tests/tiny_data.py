"""Tiny datasets in every supported on-disk layout, written into a test's tmp folder."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("cat", "dog", "owl")


def _image(seed: int, size: int = 12) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def image_folder(root: Path, per_class: int = 4, eval_split: str = "val") -> Path:
    """``root/{train,<eval_split>}/<class>/<n>.png``."""
    for split in ("train", eval_split):
        for c, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                _image(100 * c + i + (50 if split != "train" else 0)).save(folder / f"{i}.png")
    return root


def image_zip(path: Path, per_class: int = 4) -> Path:
    """The image folder layout inside ``path`` (a .zip), with a ``test/`` split."""
    with zipfile.ZipFile(path, "w") as archive:
        for split in ("train", "test"):
            for c, name in enumerate(CLASSES):
                for i in range(per_class):
                    buffer = _png_bytes(_image(100 * c + i))
                    archive.writestr(f"{split}/{name}/{i}.png", buffer)
    return path


def _png_bytes(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def cifar_python(root: Path, variant: str = "cifar10", per_file: int = 6) -> Path:
    """The python release layout (pickled dicts of arrays) with ``per_file`` images per batch file."""
    rng = np.random.default_rng(0)
    if variant == "cifar10":
        folder, files, key = (
            root / "cifar-10-batches-py",
            [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"],
            b"labels",
        )
        meta = ("batches.meta", {b"label_names": [n.encode() for n in CLASSES]})
    else:
        folder, files, key = root / "cifar-100-python", ["train", "test"], b"fine_labels"
        meta = ("meta", {b"fine_label_names": [n.encode() for n in CLASSES]})
    folder.mkdir(parents=True)
    for name in files:
        batch = {b"data": rng.integers(0, 256, (per_file, 3072), dtype=np.uint8), key: [i % 3 for i in range(per_file)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    (folder / meta[0]).write_bytes(pickle.dumps(meta[1], protocol=2))
    return root


def stanford_dogs(root: Path, per_class: int = 3) -> Path:
    """``Images/<wnid>-<breed>/`` and ``lists/{train,test}_list.mat`` as in the official release."""
    from scipy.io import savemat

    breeds = [f"n0208{i}-{name}" for i, name in enumerate(CLASSES)]
    (root / "lists").mkdir(parents=True)
    for split, offset in (("train", 0), ("test", per_class)):
        files, labels = [], []
        for c, breed in enumerate(breeds):
            (root / "Images" / breed).mkdir(parents=True, exist_ok=True)
            for i in range(offset, offset + per_class):
                _image(10 * c + i).save(root / "Images" / breed / f"{i}.jpg")
                files.append(f"{breed}/{i}.jpg")
                labels.append(c + 1)
        file_list = np.empty((len(files), 1), dtype=object)
        for i, name in enumerate(files):
            file_list[i, 0] = np.array([name])
        savemat(root / "lists" / f"{split}_list.mat", {"file_list": file_list, "labels": np.array(labels)[:, None]})
    return root


def cub200(root: Path, per_class: int = 4) -> Path:
    """``CUB_200_2011/`` with images/ and the official index files; half of each class is train."""
    base = root / "CUB_200_2011"
    images, labels, split, classes = [], [], [], []
    n = 0
    for c, name in enumerate(CLASSES, 1):
        folder = f"{c:03d}.{name}"
        classes.append(f"{c} {folder}")
        (base / "images" / folder).mkdir(parents=True)
        for i in range(per_class):
            n += 1
            _image(n).save(base / "images" / folder / f"{i}.jpg")
            images.append(f"{n} {folder}/{i}.jpg")
            labels.append(f"{n} {c}")
            split.append(f"{n} {int(i < per_class // 2)}")
    for name, lines in (
        ("images", images),
        ("image_class_labels", labels),
        ("train_test_split", split),
        ("classes", classes),
    ):
        (base / f"{name}.txt").write_text("\n".join(lines) + "\n")
    return root


ALL_LAYOUTS = {
    "folder": lambda tmp: image_folder(tmp / "folder"),
    "zip": lambda tmp: image_zip(tmp / "set.zip"),
    "cifar10": lambda tmp: cifar_python(tmp / "c10"),
    "cifar100": lambda tmp: cifar_python(tmp / "c100", "cifar100"),
    "stanford_dogs": lambda tmp: stanford_dogs(tmp / "dogs"),
    "cub200": lambda tmp: cub200(tmp / "cub"),
}
