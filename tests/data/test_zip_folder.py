from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from cnnattn.data import ZipImageFolder

CIFAR_ZIP = Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10-jpg.zip"


def _make_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for split, per_class in (("train", 3), ("test", 1)):
            archive.writestr(f"{split}/", "")
            for cls, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
                for i in range(per_class):
                    buffer = io.BytesIO()
                    Image.new("RGB", (6, 4), colour).save(buffer, format="PNG")
                    archive.writestr(f"{split}/{cls}/{i:04d}.png", buffer.getvalue())
    return path


def test_reads_imagefolder_layout_in_place(tmp_path: Path) -> None:
    dataset = ZipImageFolder(_make_zip(tmp_path / "toy.zip"), "train")
    assert len(dataset) == 6 and dataset.classes == ["cat", "dog"]
    image, label = dataset[4]
    assert image.size == (6, 4) and label == 1 and image.getpixel((0, 0)) == (0, 0, 255)
    assert ZipImageFolder(tmp_path / "toy.zip", "test", transform=lambda im: im.size)[0] == ((6, 4), 0)
    assert dataset.subset_indices(2, seed=1) == sorted(dataset.subset_indices(2, seed=1))
    assert len(dataset.subset_indices(2)) == 4


def test_errors_name_the_path_and_layout(tmp_path: Path) -> None:
    bad = tmp_path / "not.zip"
    bad.write_text("x")
    with pytest.raises(FileNotFoundError, match=r"not a zip file.*train/<class>/<image>"):
        ZipImageFolder(bad)
    with pytest.raises(FileNotFoundError, match=r"no images under val/<class>/; splits found: \['test', 'train'\]"):
        ZipImageFolder(_make_zip(tmp_path / "toy.zip"), "val")


def test_pickles_without_the_open_handle(tmp_path: Path) -> None:
    import pickle

    dataset = ZipImageFolder(_make_zip(tmp_path / "toy.zip"))
    dataset[0]
    clone = pickle.loads(pickle.dumps(dataset))
    assert clone[1][1] == 0


@pytest.mark.skipif(not CIFAR_ZIP.is_file(), reason=f"shared CIFAR-10 zip not found at {CIFAR_ZIP}")
def test_cifar10_zip() -> None:
    train, test = ZipImageFolder(CIFAR_ZIP, "train"), ZipImageFolder(CIFAR_ZIP, "test")
    assert (len(train), len(test)) == (50_000, 10_000)
    assert train.classes[:3] == ["airplane", "automobile", "bird"]
    image, label = train[12_345]
    assert image.size == (32, 32) and 0 <= label < 10
