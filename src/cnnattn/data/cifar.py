"""CIFAR-10/100 in the original python format, read with an unpickler that can only build arrays.

The python release stores each batch as a pickle of ``{b'data': uint8 (N, 3072), b'labels' or
b'fine_labels': [...], ...}``. ``torchvision.datasets.CIFAR10`` reads it with plain ``pickle.load``; here
only NumPy array reconstruction is allowed, so a tampered file cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from .builtin import ArrayImageDataset
from .errors import DataError

__all__ = ["CIFAR_LAYOUTS", "CIFARPython", "safe_unpickle"]

CIFAR_LAYOUTS = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "batches.meta"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "meta"),
}
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only NumPy arrays are expected")
        return super().find_class(module, name)


def safe_unpickle(path: Path) -> dict:
    """A CIFAR batch file as a dict with str keys; DataError naming the file if it is not one."""
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as err:
        raise DataError(f"{path}: not a CIFAR python batch ({err}).") from None
    if not isinstance(batch, dict):
        raise DataError(f"{path}: expected a dict of arrays, found {type(batch).__name__}.")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}


class CIFARPython(ArrayImageDataset):
    """CIFAR-10 (``'cifar10'``) or CIFAR-100 fine labels (``'cifar100'``) from ``root/<folder>/``."""

    def __init__(self, root: str | Path, variant: str = "cifar10", train: bool = True, transform=None) -> None:
        folder, train_files, test_files, meta_file = CIFAR_LAYOUTS[variant]
        base = Path(root) / folder
        names = train_files if train else test_files
        missing = [n for n in [*names, meta_file] if not (base / n).is_file()]
        if missing:
            raise DataError(f"{base}: missing {', '.join(missing)}; expected the python release of {variant}.")
        batches = [safe_unpickle(base / n) for n in names]
        key = "labels" if variant == "cifar10" else "fine_labels"
        try:
            images = np.concatenate([b["data"] for b in batches]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            labels = np.concatenate([np.asarray(b[key]) for b in batches])
        except (KeyError, ValueError) as err:
            raise DataError(f"{base}: batches lack 'data' (N, 3072) or {key!r} ({err}).") from None
        meta = safe_unpickle(base / meta_file)
        classes = [
            c.decode() if isinstance(c, bytes) else c
            for c in meta["label_names" if variant == "cifar10" else "fine_label_names"]
        ]
        super().__init__(np.ascontiguousarray(images), labels, classes, transform)
