"""Image files as users have them: every mode to 8-bit RGB, EXIF rotation, bombs and broken files refused."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnattn.data.images import read_rgb

RAMP = np.arange(0, 65536, 257, dtype=np.uint16).reshape(16, 16)  # 16-bit greys 0, 257, ..., 65535


def _saved(image: Image.Image, path: Path, **kwargs) -> Path:
    image.save(path, **kwargs)
    return path


def bomb(path: Path) -> Path:
    """A 1-bit PNG of 10,000 × 10,000 pixels (a few kB on disk), over Pillow's 89.5-megapixel limit."""
    return _saved(Image.new("1", (10_000, 10_000)), path)


def test_16_bit_png_is_scaled_to_8_bits_not_clipped(tmp_path: Path) -> None:
    path = _saved(Image.fromarray(RAMP), tmp_path / "wide.png")
    assert Image.open(path).mode.startswith("I")  # Pillow reads it as 16-bit greyscale
    rgb = np.asarray(read_rgb(path))
    assert rgb.dtype == np.uint8 and rgb.shape == (16, 16, 3)
    assert np.array_equal(rgb[..., 0], (RAMP // 257).astype(np.uint8))  # 65535 → 255, 32896 → 128, not 255


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    image = Image.new("RGB", (30, 10), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    path = _saved(image, tmp_path / "rotated.jpg", exif=exif.tobytes())
    assert read_rgb(path).size == (10, 30)


def test_palette_png_with_transparency_cmyk_and_greyscale_read_as_rgb(tmp_path: Path) -> None:
    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    palette.info["transparency"] = 0
    files = [
        _saved(palette, tmp_path / "palette.png", transparency=0),
        _saved(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), tmp_path / "cmyk.jpg"),
        _saved(Image.new("L", (8, 8), 77), tmp_path / "grey.png"),
        _saved(Image.new("LA", (8, 8), (77, 10)), tmp_path / "grey-alpha.png"),
    ]
    colours = [read_rgb(f).getpixel((0, 0)) for f in files]
    assert all(read_rgb(f).mode == "RGB" for f in files)
    assert colours[0] == (200, 100, 50) and colours[2] == (77, 77, 77)
    assert colours[1][0] > 200 and colours[1][1] < 50  # CMYK red stays red


def test_a_png_named_jpg_reads_by_content(tmp_path: Path) -> None:
    path = _saved(Image.new("RGB", (5, 4), (1, 2, 3)), tmp_path / "actually-png.jpg", format="PNG")
    assert read_rgb(path).getpixel((0, 0)) == (1, 2, 3)


def test_broken_files_and_bombs_are_oserrors(tmp_path: Path) -> None:
    good = io.BytesIO()
    Image.new("RGB", (64, 64), (9, 9, 9)).save(good, format="JPEG")
    (tmp_path / "truncated.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image")
    for name in ("truncated.jpg", "empty.jpg", "text.jpg"):
        with pytest.raises(OSError):
            read_rgb(tmp_path / name)
    with pytest.raises(OSError, match="decompression-bomb limit"):
        read_rgb(bomb(tmp_path / "bomb.png"))


def test_file_objects_read_like_paths(tmp_path: Path) -> None:
    path = _saved(Image.fromarray(RAMP), tmp_path / "wide.png")
    assert np.array_equal(np.asarray(read_rgb(io.BytesIO(path.read_bytes()))), np.asarray(read_rgb(path)))
