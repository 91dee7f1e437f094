"""Deformable convolution: cnnattn's sampled path vs torchvision's kernel, side by side.

Shapes: a 64→64-channel 3×3 deformable conv at 56×56 and the DAS deformable conv of ResNet-50 at 224²
in each stage (C/α → C at 56², 28², 14², 7²), at batch 1 and 8. For each, inference (no grad) and a
training step (forward + backward to input, offset and weight): median of repeated runs and the peak
resident memory of a fresh process running only that case.

    python benchmarks/deform_conv.py [--reduction 16] [--repeats 7] [--device cpu] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import torch

from cnnattn.analysis import machine_info, peak_rss_bytes, rss_baseline, time_fn
from cnnattn.ops import deform_conv2d
from cnnattn.utils import format_table

IMPLS = ("sampled", "torchvision")


def shapes(reduction: int) -> list[tuple[str, int, int, int]]:
    """(label, C_in, C_out, size) of each case."""
    das = [
        (f"DAS stage {i + 1} (α={reduction})", c // reduction, c, s)
        for i, (c, s) in enumerate(((256, 56), (512, 28), (1024, 14), (2048, 7)))
    ]
    return [("target 64→64", 64, 64, 56), *das]


def run_case(impl: str, batch: int, c_in: int, c_out: int, size: int, repeats: int, device: str) -> dict:
    """Time one case in this process (called in a fresh subprocess so its peak memory is its own)."""
    torch.manual_seed(0)
    dev = torch.device(device)
    x = torch.randn(batch, c_in, size, size, device=dev, requires_grad=True)
    weight = torch.randn(c_out, c_in, 3, 3, device=dev, requires_grad=True)
    offset = (torch.randn(batch, 18, size, size, device=dev) * 2).requires_grad_()
    base = rss_baseline()

    def infer() -> None:
        with torch.no_grad():
            deform_conv2d(x, offset, weight, padding=1, impl=impl)

    def train() -> None:
        deform_conv2d(x, offset, weight, padding=1, impl=impl).sum().backward()

    t_infer = time_fn(infer, repeats=repeats, device=dev)
    peak_infer = peak_rss_bytes() - base
    t_train = time_fn(train, repeats=max(3, repeats // 2), device=dev)
    peak_train = peak_rss_bytes() - base
    return {
        "infer_s": t_infer.median,
        "train_s": t_train.median,
        "infer_peak_mb": peak_infer / 2**20,
        "train_peak_mb": peak_train / 2**20,
    }


def _in_subprocess(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--case", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reduction", type=int, default=16, help="DAS α for the per-stage shapes")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--json", help="also write the rows as JSON here")
    parser.add_argument("--case", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        impl, batch, c_in, c_out, size, repeats = args.case
        print(json.dumps(run_case(impl, int(batch), int(c_in), int(c_out), int(size), int(repeats), args.device)))
        return

    print(f"machine: {machine_info()}\ncommand: python benchmarks/deform_conv.py {' '.join(sys.argv[1:])}\n")
    rows, records = [], []
    for batch in (int(b) for b in args.batches.split(",")):
        for label, c_in, c_out, size in shapes(args.reduction):
            res = {
                impl: _in_subprocess([impl, str(batch), str(c_in), str(c_out), str(size), str(args.repeats)])
                for impl in IMPLS
            }
            s, t = res["sampled"], res["torchvision"]
            records.append(
                {
                    "batch": batch,
                    "case": label,
                    "c_in": c_in,
                    "c_out": c_out,
                    "size": size,
                    **{f"{impl}_{k}": v for impl in IMPLS for k, v in res[impl].items()},
                }
            )
            rows.append(
                (
                    batch,
                    label,
                    f"{c_in}→{c_out} @{size}²",
                    f"{s['infer_s'] * 1e3:.1f}",
                    f"{t['infer_s'] * 1e3:.1f}",
                    f"{t['infer_s'] / s['infer_s']:.2f}×",
                    f"{s['train_s'] * 1e3:.1f}",
                    f"{t['train_s'] * 1e3:.1f}",
                    f"{t['train_s'] / s['train_s']:.2f}×",
                    f"{s['train_peak_mb']:.0f} / {t['train_peak_mb']:.0f}",
                )
            )
            print(f"done: B={batch} {label}", file=sys.stderr)
    print(
        format_table(
            (
                "B",
                "case",
                "shape",
                "infer sampled ms",
                "infer tv ms",
                "infer speed-up",
                "train sampled ms",
                "train tv ms",
                "train speed-up",
                "train peak MB sampled / tv",
            ),
            rows,
        )
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine_info(), "rows": records}, f, indent=1)


if __name__ == "__main__":
    main()
