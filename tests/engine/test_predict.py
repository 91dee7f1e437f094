"""``cnnattn predict`` on images of any size and mode: boxes in original pixels, drawn pictures, top-5 classes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnattn.cli import main
from cnnattn.data import DataError
from cnnattn.data.images import image_files
from cnnattn.engine import TrainConfig, train
from tiny_detection import voc_flat

TINY = dict(img_size=64, epochs=1, batch_size=2, workers=0, progress=False, tensorboard=False)


def _images(folder: Path) -> dict[str, tuple[int, int]]:
    """Greyscale, RGBA, an EXIF-rotated JPEG and an odd-sized one; returns name -> (width, height) as seen."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (50, 70), dtype=np.uint8), "L").save(folder / "grey.png")
    Image.fromarray(rng.integers(0, 255, (40, 60, 4), dtype=np.uint8), "RGBA").save(folder / "alpha.png")
    rotated = Image.fromarray(rng.integers(0, 255, (30, 80, 3), dtype=np.uint8))
    exif = rotated.getexif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise when displayed
    rotated.save(folder / "exif.jpg", exif=exif)
    Image.fromarray(rng.integers(0, 255, (151, 333, 3), dtype=np.uint8)).save(folder / "odd.jpg")
    return {"grey.png": (70, 50), "alpha.png": (60, 40), "exif.jpg": (30, 80), "odd.jpg": (333, 151)}


def test_predict_with_a_detector_draws_every_image_and_reports_boxes_in_its_pixels(tmp_path: Path, capsys) -> None:
    data = voc_flat(tmp_path / "data", count=6)
    result = train(TrainConfig(task="detect", model="resnet18", data=str(data), output=str(tmp_path / "run"), **TINY))
    sizes = _images(tmp_path / "images")
    out = tmp_path / "predictions"
    args = ["predict", "--checkpoint", result.last_checkpoint, "--images", str(tmp_path / "images"),
            "--output", str(out), "--score-threshold", "0", "--json"]  # fmt: skip
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((out / "predictions.json").read_text())
    assert printed == written and written, "an untrained detector still proposes boxes at threshold 0"
    for entry in written:
        assert set(entry) == {"image", "bbox", "score", "category", "category_id"}
        assert entry["category"] == "raccoon" and entry["category_id"] == 1 and 0 <= entry["score"] <= 1
        width, height = sizes[entry["image"]]
        x, y, w, h = entry["bbox"]
        assert 0 <= x <= x + w <= width + 1e-3 and 0 <= y <= y + h <= height + 1e-3
    for name, size in sizes.items():
        with Image.open(out / f"{Path(name).stem}.png") as drawn:
            assert drawn.size == size and drawn.mode == "RGB"


def test_predict_with_a_classifier_gives_top5(tmp_path: Path) -> None:
    config = TrainConfig(model="resnet18", data="builtin:digits", train_subset=32, output=str(tmp_path / "run"),
                         **{**TINY, "img_size": 32})  # fmt: skip
    result = train(config)
    _images(tmp_path / "images")
    out = tmp_path / "predictions"
    assert main(["predict", "--checkpoint", result.last_checkpoint, "--images", str(tmp_path / "images" / "odd.jpg"),
                 "--output", str(out)]) == 0  # fmt: skip
    (entry,) = json.loads((out / "predictions.json").read_text())
    assert entry["image"] == "odd.jpg" and len(entry["top5"]) == 5
    assert sum(e["score"] for e in entry["top5"]) <= 1 + 1e-6


def test_a_missing_checkpoint_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    args = ["predict", "--checkpoint", str(tmp_path / "missing.ckpt"), "--images", ".", "--output", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "missing.ckpt" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_image_files_name_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or folder of images"):
        image_files(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        image_files(tmp_path / "empty")
    sizes = _images(tmp_path / "images")
    assert [p.name for p in image_files(tmp_path / "images")] == sorted(sizes)


@pytest.mark.parametrize("arch", ["fasterrcnn", "retinanet", "fcos"])
def test_a_threshold_below_the_detectors_own_returns_every_box_it_scored(arch: str) -> None:
    """The detector cuts at its own threshold before the user's applies: predict lowers that cut, never raises it."""
    import torch

    from cnnattn import create_detector
    from cnnattn.engine.predict import lower_score_threshold

    torch.manual_seed(0)
    model = create_detector(arch, "resnet18", num_classes=2, min_size=64, max_size=64).eval()
    owner = model.roi_heads if arch == "fasterrcnn" else model
    owner.score_thresh = 0.99  # an untrained detector scores every box below this
    image = [torch.rand(3, 64, 64)]
    with torch.no_grad():
        assert len(model(image)[0]["scores"]) == 0
        lower_score_threshold(model, 0.0)
        everything = model(image)[0]["scores"]
        lower_score_threshold(model, 0.5)
        again = model(image)[0]["scores"]
    assert len(everything) > 0 and bool((everything < 0.99).all()) and owner.score_thresh == 0.0
    assert torch.equal(again, everything)
