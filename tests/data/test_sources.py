"""Every dataset layout opens with the right splits and classes; bad data gives errors naming path and layout."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnattn.data import ClassificationData, DataError, LoadedView, build_transform, resolve_source
from cnnattn.data.builtin import cluttered_digits, digits
from cnnattn.data.cifar import safe_unpickle
from cnnattn.data.loading import collate_skipping_bad

from tiny_data import ALL_LAYOUTS, CLASSES, cifar_python, cub200, image_folder, stanford_dogs

SIZES = {  # (train, val) images of each tiny layout
    "folder": (12, 12),
    "zip": (12, 12),
    "cifar10": (30, 6),
    "cifar100": (6, 6),
    "stanford_dogs": (9, 9),
    "cub200": (6, 6),
}


@pytest.mark.parametrize("layout", sorted(ALL_LAYOUTS))
def test_every_layout_opens_both_splits(tmp_path: Path, layout: str) -> None:
    source = resolve_source(ALL_LAYOUTS[layout](tmp_path))
    assert source.format == layout
    train, val = source.open("train"), source.open("val")
    assert (len(train), len(val)) == SIZES[layout]
    assert len(train.classes) == 3 and train.classes == val.classes
    image, label = train[0]
    assert image.mode == "RGB" and label == 0
    assert {val[i][1] for i in range(len(val))} == {0, 1, 2}


def test_official_splits_are_respected(tmp_path: Path) -> None:
    dogs = resolve_source(stanford_dogs(tmp_path / "dogs"))
    train_files = {p.name for p, _ in dogs.open("train").samples}
    test_files = {p.name for p, _ in dogs.open("val").samples}
    assert train_files == {"0.jpg", "1.jpg", "2.jpg"} and test_files == {"3.jpg", "4.jpg", "5.jpg"}
    cub = resolve_source(cub200(tmp_path / "cub")).open("train")
    assert [p.name for p, _ in cub.samples] == ["0.jpg", "1.jpg"] * 3
    assert cub.classes == ["001.cat", "002.dog", "003.owl"]


def test_cifar_folder_itself_is_recognised(tmp_path: Path) -> None:
    cifar_python(tmp_path)
    assert resolve_source(tmp_path / "cifar-10-batches-py").format == "cifar10"


def test_cifar_reader_refuses_pickled_code(tmp_path: Path) -> None:
    import pickle

    evil = tmp_path / "data_batch_1"
    evil.write_bytes(pickle.dumps({"data": Path("/etc")}))  # any non-array class
    with pytest.raises(DataError, match="refusing to load"):
        safe_unpickle(evil)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda tmp: tmp / "absent", "no such file or directory; expected builtin:digits"),
        (lambda tmp: _write(tmp / "notes.txt", "x"), "a file but not a zip"),
        (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", "unrecognised dataset layout"),
    ],
)
def test_unrecognised_data_names_path_and_layouts(tmp_path: Path, make, match: str) -> None:
    path = make(tmp_path)
    with pytest.raises(DataError, match=match) as err:
        resolve_source(path)
    assert str(path) in str(err.value) and "train/<class>/<image>" in str(err.value)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_malformed_layouts_name_what_is_missing(tmp_path: Path) -> None:
    image_folder(tmp_path / "noval", eval_split="other")
    with pytest.raises(DataError, match="no val/ or test/ folder"):
        resolve_source(tmp_path / "noval").open("val")
    stanford_dogs(tmp_path / "dogs")
    (tmp_path / "dogs" / "lists" / "test_list.mat").unlink()
    with pytest.raises(DataError, match=r"missing lists/test_list.mat; expected Images/"):
        resolve_source(tmp_path / "dogs").open("val")
    cub200(tmp_path / "cub")
    (tmp_path / "cub" / "CUB_200_2011" / "images.txt").write_text("1 a.jpg\nnot-a-line\n")
    with pytest.raises(DataError, match=r"images.txt:2: expected '<id> <value>'"):
        resolve_source(tmp_path / "cub").open("train")
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as archive:
        archive.writestr("train/a/0.png", b"x")
    with pytest.raises(DataError, match="no val/ or test/ folder in the zip"):
        resolve_source(tmp_path / "bad.zip").open("val")
    with pytest.raises(DataError, match="unknown built-in dataset 'builtin:mnist'"):
        resolve_source("builtin:mnist")


def test_unreadable_image_is_skipped_with_a_warning_naming_it(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "set")
    broken = root / "train" / "dog" / "1.png"
    broken.write_bytes(b"not a png")
    dataset = resolve_source(root).open("train")
    index = [str(p) for p, _ in dataset.samples].index(str(broken))
    view = LoadedView(dataset, build_transform(16, train=True))
    with pytest.warns(UserWarning, match=f"skipping unreadable image {broken}"):
        assert view[index] is None
    batch = collate_skipping_bad([view[0], None, view[1]])
    assert batch[0].shape == (2, 3, 16, 16)
    strict = LoadedView(dataset, build_transform(16, train=True), on_bad_image="error")
    with pytest.raises(DataError, match=f"cannot read {broken}"):
        strict[index]


def test_a_whole_epoch_with_a_bad_image_loads_the_rest(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "set")
    (root / "train" / "cat" / "0.png").write_bytes(b"")
    data = ClassificationData(str(root), 16, batch_size=4, num_workers=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seen = sum(len(batch[1]) for batch in data.train_dataloader() if batch is not None)
    assert seen == 11 and any("0.png" in str(w.message) for w in caught)


def test_augmentation_depends_only_on_seed_epoch_and_index(tmp_path: Path) -> None:
    dataset = resolve_source(image_folder(tmp_path / "set")).open("train")
    view = LoadedView(dataset, build_transform(16, train=True), seed=3)
    torch.manual_seed(0)
    a = view[(2, 5)][0]
    torch.manual_seed(123)  # global RNG state must not matter...
    assert torch.equal(a, view[(2, 5)][0])
    assert not torch.equal(a, view[(3, 5)][0])  # ...but the epoch does


def test_builtin_digits_are_real_and_split_without_overlap() -> None:
    train, test = digits("train"), digits("test")
    assert (len(train), len(test)) == (1438, 359) and train.classes == [str(d) for d in range(10)]
    flat = {im.tobytes() for im in train.images}
    assert sum(im.tobytes() in flat for im in test.images) < 5  # a few true duplicates exist in optdigits
    assert np.bincount(test.labels).min() >= 34  # stratified


def test_cluttered_digits_are_deterministic_and_cluttered() -> None:
    a = cluttered_digits("train", size=64, seed=1)
    b = cluttered_digits("train", size=64, seed=1)
    c = cluttered_digits("train", size=64, seed=2)
    assert np.array_equal(a.images, b.images) and not np.array_equal(a.images, c.images)
    assert a.images.shape == (64, 40, 40)
    assert a[0][0].size == (40, 40)
    # more lit pixels than the digit alone: clutter fragments are there
    assert (a.images > 64).mean() > 0.08


def test_transform_sizes_and_errors() -> None:
    from PIL import Image

    image = Image.new("RGB", (40, 30))
    assert build_transform(32, train=True)(image).shape == (3, 32, 32)
    assert build_transform(128, train=False)(image).shape == (3, 128, 128)
    with pytest.raises(ValueError, match="img_size must be at least 8"):
        build_transform(4, train=True)
    with pytest.raises(ValueError, match="augment must be"):
        build_transform(32, train=True, augment="mixup")


def test_data_module_shards_without_overlap(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "set", per_class=4)

    class FakeTrainer:
        def __init__(self, rank: int) -> None:
            self.world_size, self.global_rank, self.accelerator = 2, rank, object()

    keys = []
    for rank in (0, 1):
        data = ClassificationData(str(root), 16, batch_size=2, num_workers=0)
        data.trainer = FakeTrainer(rank)
        sampler = data.train_dataloader().sampler
        keys.append([i for _, i in sampler])
    assert not set(keys[0]) & set(keys[1]) and len(keys[0]) == len(keys[1]) == 6
    assert sorted(CLASSES) == ClassificationData(str(root), 16, 2).classes


def test_a_new_layout_is_one_registry_entry(tmp_path: Path) -> None:
    """A layout of one's own (here: a folder holding a ``labels.csv``) resolves and opens through the registry, and
    error messages list it."""
    from cnnattn.data import sources

    (tmp_path / "labels.csv").write_text("image,label\n")
    layout = sources.Layout(
        "csv_list",
        "a folder with labels.csv",
        lambda spec: spec if Path(spec, "labels.csv").is_file() else None,
        lambda root, train: [("image", 0)] if train else [],
    )
    sources.register_layout(layout)
    try:
        source = resolve_source(tmp_path)
        assert (source.format, source.location) == ("csv_list", str(tmp_path))
        assert source.open("train") == [("image", 0)] and source.open("val") == []
        assert "a folder with labels.csv" in sources.layouts_text()
        with pytest.raises(ValueError, match="already registered"):
            sources.register_layout(layout)
    finally:
        del sources._LAYOUTS["csv_list"]
    assert [layout.name for layout in sources.list_layouts()][:2] == ["builtin:digits", "builtin:cluttered"]
