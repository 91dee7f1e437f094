"""Datasets that read in place."""

from .zip_folder import IMG_EXTENSIONS, ZipImageFolder

__all__ = ["IMG_EXTENSIONS", "ZipImageFolder"]
