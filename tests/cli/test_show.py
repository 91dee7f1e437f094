"""``cnnattn show``: a PNG grid of the expected size for every method, raw maps in .npz, checkpoints and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnattn.cli import main
from cnnattn.data.samples import load_samples
from cnnattn.engine import TrainConfig, train
from cnnattn.visualize.show import METHODS
from tiny_detection import voc_flat

from tiny_data import CLASSES, image_zip

CELL = (320, 340)  # pixels per grid cell (3.2 × 3.4 inches at 100 dpi)


@pytest.mark.parametrize("method", METHODS)
def test_show_writes_a_grid_of_the_expected_size(tmp_path: Path, method: str) -> None:
    if method in ("gradcam", "gradcampp", "eigencam"):
        pytest.importorskip("pytorch_grad_cam", reason="the viz extra is not installed")
    out = tmp_path / "grid.png"
    argv = ["show", "--model", "resnet18_das", "--model", "resnet18_eam", "--images", "builtin:cluttered",
            "--method", method, "--img-size", "64", "--max-images", "2", "--output", str(out)]  # fmt: skip
    assert main(argv) == 0
    with Image.open(out) as image:
        assert image.size == (2 * CELL[0], 2 * CELL[1])
    assert (tmp_path / "grid_eam_radius.png").stat().st_size > 1000  # the EAM model's radius per layer


def test_show_a_trained_checkpoint_with_two_methods_and_raw_maps(tmp_path: Path, capsys) -> None:
    config = TrainConfig(data="builtin:cluttered", model="resnet18_cbam", img_size=64, epochs=1, batch_size=32,
                         workers=0, train_subset=64, progress=False, tensorboard=False)  # fmt: skip
    config = config.replace(output=str(tmp_path / "run"))
    checkpoint = train(config).last_checkpoint
    folder = tmp_path / "images" / "7"  # a class-named folder: the true class is known
    folder.mkdir(parents=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(folder / "a.png")
    out, npz = tmp_path / "grid.png", tmp_path / "maps.npz"
    argv = ["show", "--checkpoint", checkpoint, "--images", str(tmp_path / "images"), "--method", "attention,offsets",
            "--output", str(out), "--npz", str(npz)]  # fmt: skip
    assert main(argv) == 0 and "written:" in capsys.readouterr().out
    with Image.open(out) as image:
        assert image.size == (2 * CELL[0], CELL[1])
    with np.load(npz) as maps:
        spatial = [k for k in maps.files if k.endswith("__spatial")]
        assert spatial and maps[spatial[0]].shape[0] == 1


def test_one_column_per_layer(tmp_path: Path) -> None:
    out = tmp_path / "stages.png"
    argv = ["show", "--model", "resnet18_das", "--images", "builtin:cluttered", "--img-size", "64", "--max-images", "1",
            "--layer", "layer1.1.attn_stage,layer2.1.attn_stage,layer3.1.attn_stage", "--output", str(out)]  # fmt: skip
    assert main(argv) == 0
    with Image.open(out) as image:
        assert image.size == (3 * CELL[0], CELL[1])


def test_show_errors_are_one_line(capsys) -> None:
    assert main(["show", "--model", "resnet18", "--images", "builtin:cluttered", "--method", "saliency",
                 "--output", "x.png"]) != 0  # fmt: skip
    assert "unknown method(s) saliency" in capsys.readouterr().err
    assert main(["show", "--model", "resnet18", "--images", "builtin:mnist", "--output", "x.png"]) != 0
    assert "unknown built-in dataset 'builtin:mnist'" in capsys.readouterr().err


@pytest.mark.slow  # trains a detector (~20 s); detection_activation_maps itself is tested in tests/visualize
def test_show_a_detector_checkpoint_with_eigencam_and_its_boxes(tmp_path: Path, capsys) -> None:
    pytest.importorskip("pytorch_grad_cam", reason="the viz extra is not installed")
    data = voc_flat(tmp_path / "d", count=6)
    config = TrainConfig(task="detect", model="resnet18_das", data=str(data), img_size=64, epochs=1, batch_size=2,
                         workers=0, progress=False, tensorboard=False, output=str(tmp_path / "run"))  # fmt: skip
    checkpoint = train(config).last_checkpoint
    out = tmp_path / "det.png"
    argv = ["show", "--checkpoint", checkpoint, "--images", str(data / "images"), "--method", "eigencam",
            "--max-images", "2", "--output", str(out), "--npz", str(tmp_path / "det.npz")]  # fmt: skip
    assert main(argv) == 0
    with Image.open(out) as image:
        assert image.size == (CELL[0], 2 * CELL[1])
    with np.load(tmp_path / "det.npz") as maps:
        assert maps["run__last__eigencam"].shape == (2, 64, 64)
    argv[argv.index("eigencam")] = "gradcam"
    assert main(argv) != 0
    assert "detectors support method eigencam (gradient-free); got 'gradcam'" in capsys.readouterr().err


def test_show_takes_images_from_a_zip_datasets_validation_split(tmp_path: Path) -> None:
    data = image_zip(tmp_path / "data.zip", per_class=4)
    out = tmp_path / "zip.png"
    argv = ["show", "--model", "resnet18_das", "--images", str(data), "--img-size", "64", "--max-images", "3",
            "--output", str(out)]  # fmt: skip
    assert main(argv) == 0
    with Image.open(out) as image:
        assert image.size == (CELL[0], 3 * CELL[1])
    samples = load_samples(str(data), 32, CLASSES, max_images=3)  # evenly spaced: first, middle, last image
    assert [s.label for s in samples] == [0, len(CLASSES) // 2, len(CLASSES) - 1]
    assert [s.name for s in samples] == ["0.png", "2.png", "3.png"] and samples[0].pixels.shape == (32, 32, 3)
