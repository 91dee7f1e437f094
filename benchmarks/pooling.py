"""Maximum along one dim without autograd: ``torch.max(x, dim)`` (values and indices) vs ``amax``, alone and in
triplet attention, at ResNet-50's stage shapes (batch 16, 224²).

    python benchmarks/pooling.py [--repeats 15]

``cnnattn.ops.pooling.max_along`` is ``amax`` where no gradient is recorded; the ``triplet`` rows time
``TripletAttention(x, shortcut)`` under ``torch.no_grad()`` with that choice against ``torch.max(x, dim)[0]``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import torch

import cnnattn.attention.triplet as triplet
from cnnattn.analysis import machine_info, time_interleaved
from cnnattn.ops.pooling import max_along
from cnnattn.utils import format_table

STAGES = ((256, 56), (512, 28), (1024, 14), (2048, 7))


def _with_indices(x: torch.Tensor, dim: int, keepdim: bool = False) -> torch.Tensor:
    return torch.max(x, dim=dim, keepdim=keepdim)[0]


def _triplet_with(pool: Callable[..., torch.Tensor], module: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        triplet.max_along = pool  # the name TripletAttention looks up at call time
        module(x, x)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    print(f"machine: {machine_info()}\ncommand: python benchmarks/pooling.py {' '.join(sys.argv[1:])}\n")
    rows = []
    with torch.no_grad():
        for channels, side in STAGES:
            x = torch.randn(16, channels, side, side)
            for dim in (1, 2, 3):
                fns = {"max": lambda d=dim, x=x: _with_indices(x, d), "amax": lambda d=dim, x=x: x.amax(d)}
                t = time_interleaved(fns, repeats=args.repeats)
                rows.append((f"dim {dim}", f"{channels} @ {side}²", t["max"].median, t["amax"].median))
            module = triplet.TripletAttention(channels).eval()
            fns = {"max": _triplet_with(_with_indices, module, x), "amax": _triplet_with(max_along, module, x)}
            t = time_interleaved(fns, repeats=args.repeats)
            triplet.max_along = max_along
            rows.append(("triplet", f"{channels} @ {side}²", t["max"].median, t["amax"].median))
    cells = [(what, shape, f"{a * 1e3:.1f}", f"{b * 1e3:.1f}", f"{b / a:.2f}×") for what, shape, a, b in rows]
    print(format_table(("what", "shape", "max(dim) ms", "amax ms", "amax/max"), cells))


if __name__ == "__main__":
    main()
