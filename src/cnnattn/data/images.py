"""Reading image files as users have them: any mode to 8-bit RGB, EXIF rotation applied, decompression bombs refused.

Every loader of cnnattn (folders, zips, fine-grained lists, detection, ``predict``, ``show``) reads through
:func:`read_rgb`, so a file reads the same everywhere.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from .errors import DataError

__all__ = ["IMG_EXTENSIONS", "image_files", "read_rgb", "to_rgb"]

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

_WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")  # more than 8 bits per pixel


def read_rgb(file: str | Path | BinaryIO) -> Image.Image:
    """The image in ``file`` as 8-bit RGB, EXIF orientation applied (see :func:`to_rgb`).

    Raises OSError for anything that is not a readable image (empty, truncated, another format), and for an
    image larger than Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS`` pixels; raise it to read
    such files on purpose), which would otherwise stall a data-loading worker for minutes.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(file) as image:
                return to_rgb(ImageOps.exif_transpose(image))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise OSError(f"larger than Pillow's decompression-bomb limit ({err})") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB: 16-bit and 32-bit greyscale scaled (65535 → 255, not clipped), transparent
    palette and alpha images flattened, CMYK and greyscale converted."""
    if image.mode in _WIDE_MODES:
        pixels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I") else max(float(pixels.max()), 1.0)
        image = Image.fromarray(np.clip(np.round(pixels * (255.0 / top)), 0, 255).astype(np.uint8), mode="L")
    elif image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert("RGB")


def image_files(images: str | Path) -> list[Path]:
    """The image file ``images``, or every image under the folder ``images`` (sorted); DataError if none."""
    path = Path(images)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder of images.")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS)
    if not files:
        raise DataError(f"{path}: no image files ({', '.join(IMG_EXTENSIONS)}) in this folder.")
    return files
