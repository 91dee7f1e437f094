"""Files users actually have, tried from the command line: odd and broken images, bad checkpoints, bad configs.

Each case checks the exit code, that the message is one line naming the file and what was expected, that there is
no traceback, and that nothing readable is lost.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image

from cnnattn.cli import main
from cnnattn.engine import TrainConfig, train

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from test_images import RAMP, bomb

TINY_TRAIN = ["--img-size", "16", "--epochs", "1", "--batch-size", "4", "--no-progress", "--no-tensorboard"]
NON_UTF8 = os.fsdecode(b"caf\xe9 \xff.png")  # not valid UTF-8: Python keeps the bytes as surrogates


def _good(path: Path, seed: int) -> Path:
    rng = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (12, 12, 3), generator=rng, dtype=torch.uint8).numpy()
    Image.fromarray(pixels).save(path)
    return path


def _odd_but_readable(folder: Path) -> list[Path]:
    """Files that must be read, not skipped: 16-bit, transparent palette, CMYK, grey, EXIF-rotated, a PNG named
    .jpg, names with spaces and non-UTF-8 bytes."""
    palette = Image.new("P", (12, 12), 1)
    palette.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    exif = Image.Exif()
    exif[0x0112] = 6
    files = {
        "wide-16-bit.png": (Image.fromarray(RAMP), {}),
        "palette-transparent.png": (palette, {"transparency": 0}),
        "cmyk.jpg": (Image.new("CMYK", (12, 12), (0, 255, 255, 0)), {}),
        "grey.png": (Image.new("L", (12, 12), 80), {}),
        "rotated.jpg": (Image.new("RGB", (12, 8), (0, 90, 0)), {"exif": exif.tobytes()}),
        "png-named.jpg": (Image.new("RGB", (12, 12), (5, 5, 5)), {"format": "PNG"}),
        "with space.png": (Image.new("RGB", (12, 12), (9, 9, 9)), {}),
        NON_UTF8: (Image.new("RGB", (12, 12), (7, 7, 7)), {}),
    }
    for name, (image, kwargs) in files.items():
        image.save(folder / name, **kwargs)
    return [folder / name for name in files]


def _unreadable(folder: Path) -> list[Path]:
    """Files that must be skipped, each named: a truncated JPEG, an empty file, a decompression bomb."""
    jpeg = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(jpeg, format="JPEG")
    (folder / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    return [folder / "truncated.jpg", folder / "empty.jpg", bomb(folder / "bomb.png")]


def _dataset(root: Path) -> tuple[list[Path], int]:
    """train/ and val/ with classes a and b: good, odd and unreadable files; the unreadable files and the number
    of readable validation images."""
    for split in ("train", "val"):
        for label in ("a", "b"):
            (root / split / label).mkdir(parents=True)
            for i in range(4):
                _good(root / split / label / f"{i}.png", seed=hash((split, label, i)) % 1000)
    odd = _odd_but_readable(root / "train" / "a") + _odd_but_readable(root / "val" / "a")
    bad = _unreadable(root / "train" / "b") + _unreadable(root / "val" / "b")
    return bad, 2 * 4 + len(odd) // 2  # 4 good images in each of 2 classes, and the odd ones of val/a


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``cnnattn ARGS`` in a fresh process, as a user runs it (warnings printed as Python prints them)."""
    return subprocess.run(
        [sys.executable, "-m", "cnnattn", *args], capture_output=True, text=True, cwd=cwd, timeout=600,
        errors="backslashreplace",
    )  # fmt: skip


def test_odd_images_are_read_and_every_unreadable_one_is_named(tmp_path: Path) -> None:
    bad, readable_val = _dataset(tmp_path / "data")
    run = _cli(
        "train", "--data", str(tmp_path / "data"), *TINY_TRAIN, "--workers", "2", "--output", "run", cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    skipped = [line for line in run.stderr.splitlines() if "skipping unreadable image" in line]
    for path in bad:  # every one named, in the workers too (not only the first per line of code)
        assert any(str(path) in line for line in skipped), (path, skipped)
    assert any("decompression-bomb limit" in line for line in skipped)
    evaluated = _cli("eval", "--checkpoint", "run/checkpoints/last.ckpt", "--workers", "0", "--json", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert json.loads(evaluated.stdout.strip().splitlines()[-1])["images"] == readable_val  # none of them lost


def _assert_one_line_error(code: int, err: str, command: str, *needles: str) -> None:
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"cnnattn {command}: error: ") and "Traceback" not in err
    assert "weights_only" not in err and "trusted source" not in err  # never advise unsafe loading
    for needle in needles:
        assert needle in err, (needle, err)


def test_a_class_folder_without_images_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    for label in ("a", "b"):
        for split in ("train", "val"):
            (tmp_path / split / label).mkdir(parents=True)
            _good(tmp_path / split / label / "0.png", 0)
    (tmp_path / "train" / "empty").mkdir()
    code = main(["train", "--data", str(tmp_path), *TINY_TRAIN, "--workers", "0", "--output", str(tmp_path / "r")])
    _assert_one_line_error(code, capsys.readouterr().err, "train", "empty", str(tmp_path / "train"))


def _zip_with_directory_entries(path: Path, empty_class: bool = False) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for split in ("train", "val"):
            archive.writestr(f"{split}/", b"")
            for label in ("a", "b") + (("empty",) if empty_class and split == "train" else ()):
                archive.writestr(f"{split}/{label}/", b"")
                for i in range(2 if label != "empty" else 0):
                    archive.writestr(f"{split}/{label}/{i}/", b"")  # a directory entry per image, as some tools do
                    buffer = io.BytesIO()
                    Image.new("RGB", (12, 12), (i, 0, 0)).save(buffer, format="PNG")
                    archive.writestr(f"{split}/{label}/{i}.png", buffer.getvalue())
    return path


def test_zips_with_directory_entries_train_and_empty_classes_are_named(tmp_path: Path, capsys) -> None:
    data = _zip_with_directory_entries(tmp_path / "dirs.zip")
    assert main(["train", "--data", str(data), *TINY_TRAIN, "--workers", "0", "--output", str(tmp_path / "r")]) == 0
    capsys.readouterr()
    bad = _zip_with_directory_entries(tmp_path / "empty.zip", empty_class=True)
    code = main(["train", "--data", str(bad), *TINY_TRAIN, "--workers", "0", "--output", str(tmp_path / "r2")])
    _assert_one_line_error(code, capsys.readouterr().err, "train", str(bad), "empty", "hold no images")


class Pickled:
    """A class: a file holding an instance of it can only be read by unpickling code."""


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    config = TrainConfig(model="resnet18", data="builtin:digits", img_size=16, epochs=1, batch_size=8, workers=0,
                         train_subset=16, progress=False, tensorboard=False, output=str(out))  # fmt: skip
    return Path(train(config).last_checkpoint)


def _tampered(checkpoint: Path, path: Path, **recipe) -> Path:
    state = torch.load(checkpoint, weights_only=True)
    meta = state["cnnattn"]
    meta["config"].update({k: v for k, v in recipe.items() if k != "classes"})
    meta["classes"] = recipe.get("classes", meta["classes"])
    torch.save(state, path)
    return path


BAD_CHECKPOINTS = {
    "garbage": (lambda ck, p: p.write_bytes(os.urandom(4096)), "not a PyTorch file"),
    "empty": (lambda ck, p: p.write_bytes(b""), "the file is empty"),
    "truncated": (lambda ck, p: p.write_bytes(ck.read_bytes()[: ck.stat().st_size // 2]), "truncated or corrupt"),
    "pickled-class": (lambda ck, p: torch.save({"state_dict": Pickled()}, p), "pickled Python object"),
    "state-dict": (lambda ck, p: torch.save(torchvision.models.resnet18().state_dict(), p), "--init-checkpoint"),
    "other-architecture": (lambda ck, p: _tampered(ck, p, model="resnet34"), "(resnet34, 10 classes)"),
    "other-classes": (lambda ck, p: _tampered(ck, p, classes=["x", "y", "z"]), "(resnet18, 3 classes)"),
}


@pytest.mark.parametrize("case", sorted(BAD_CHECKPOINTS))
@pytest.mark.parametrize("command", ["eval", "predict", "export"])
def test_bad_checkpoints_are_one_line_errors_naming_the_file(
    checkpoint: Path, tmp_path: Path, capsys, case: str, command: str
) -> None:
    make, needle = BAD_CHECKPOINTS[case]
    path = tmp_path / f"{case}.ckpt"
    make(checkpoint, path)
    extra = {"eval": [], "predict": ["--images", str(tmp_path), "--output", str(tmp_path / "p")],
             "export": ["--output", str(tmp_path / "x.onnx")]}  # fmt: skip
    code = main([command, "--checkpoint", str(path), *extra[command]])
    _assert_one_line_error(code, capsys.readouterr().err, command, str(path), needle)


def test_a_missing_checkpoint_and_a_foreign_init_checkpoint(checkpoint: Path, tmp_path: Path, capsys) -> None:
    _assert_one_line_error(main(["eval", "--checkpoint", str(tmp_path / "no.ckpt")]), capsys.readouterr().err,
                           "eval", str(tmp_path / "no.ckpt"), "not found")  # fmt: skip
    foreign = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34().state_dict(), foreign)
    code = main(["train", "--data", "builtin:digits", *TINY_TRAIN, "--init-checkpoint", str(foreign),
                 "--output", str(tmp_path / "r")])  # fmt: skip
    _assert_one_line_error(code, capsys.readouterr().err, "train", str(foreign), "another architecture")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--img-size", "0"], "img_size must be in [1, inf); got 0"),
        (["--epochs", "2.5"], "setting epochs: cannot read '2.5'"),
        (["--lr", "-0.1"], "lr must be in [0, inf); got -0.1"),
        (["colour=red"], "unknown setting 'colour'"),
        (["--config", "{bad}"], "config file {bad} not found"),
        (["--config", "{unknown}"], "unknown setting 'epoch'"),
        (["--config", "{wrong_type}"], "setting batch_size: cannot read 'big'"),
    ],
)
def test_bad_recipes_are_one_line_errors_before_training(tmp_path: Path, capsys, args: list[str], needle: str):
    files = {"bad": tmp_path / "missing.yaml", "unknown": tmp_path / "u.yaml", "wrong_type": tmp_path / "w.yaml"}
    files["unknown"].write_text("epoch: 3\n")
    files["wrong_type"].write_text("batch_size: big\n")
    args = [a.format(**{k: str(v) for k, v in files.items()}) for a in args]
    needle = needle.format(**{k: str(v) for k, v in files.items()})
    code = main(["train", "--data", "builtin:digits", "--output", str(tmp_path / "r"), *args])
    _assert_one_line_error(code, capsys.readouterr().err, "train", needle)
    assert not (tmp_path / "r" / "checkpoints" / "last.ckpt").exists()


@pytest.mark.parametrize(
    ("model", "kwargs", "needle"),
    [
        ("resnet18_se", "{reduction: 8}", "attention 'se' (SEModule) takes no keyword 'reduction'; it takes: rd_ratio"),
        (
            "resnet18_cbam",
            "{colour: red}",
            "attention 'cbam' (CbamModule) takes no keyword 'colour'; it takes: rd_ratio",
        ),
        ("resnet18_das", "{alpha: 8}", "attention 'das' (DASGate) takes no keyword 'alpha'; it takes: rd_ratio"),
    ],
)
def test_unknown_attention_keywords_are_one_line_errors_naming_the_accepted_ones(
    tmp_path: Path, capsys, model: str, kwargs: str, needle: str
) -> None:
    code = main(["train", "--data", "builtin:digits", "--model", model, "--attn-kwargs", kwargs, *TINY_TRAIN,
                 "--output", str(tmp_path / "r")])  # fmt: skip
    _assert_one_line_error(code, capsys.readouterr().err, "train", needle)
    assert not (tmp_path / "r" / "checkpoints" / "last.ckpt").exists()
