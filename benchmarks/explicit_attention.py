"""Explicit attention: separable EAM vs dense EAM vs the AA layer, time and peak memory against map size.

    python benchmarks/explicit_attention.py speed [--cases 512x14,256x28,128x56,64x112] [--part layer|attention]
        [--json out.json]
    python benchmarks/explicit_attention.py table

``table``: params and GFLOPs (2 × MACs, the AA paper's convention; EAM also dense-equivalent) of
ResNet-34/50/101/152, plain, with AA and with EAM, beside the published AA figures.

Each case (layer, C, size, mode) runs in a fresh process (``cnnattn.analysis.scaling.measure_layer``)
under a memory limit, so its peak memory is its own and an out-of-memory case is recorded, not fatal.
Layers: 3×3 augmented convs C → C, stride 1. "map elements" is what the attention map itself holds per
head: H·H + W·W for the separable form, (H·W)² dense.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import cnnattn
from cnnattn.analysis import machine_info, profile
from cnnattn.analysis.isolated import run_isolated
from cnnattn.utils import format_table

LAYERS = {"EAM separable": ("eam", {}), "EAM dense": ("eam", {"impl": "dense"}), "AA": ("aa", {})}


def measure(name: str, kwargs: dict, channels: int, size: int, mode: str, batch: int, limit: int, part: str) -> dict:
    return run_isolated(
        "cnnattn.analysis.scaling.measure_layer",
        dict(name=name, channels=channels, size=size, batch_size=batch, mode=mode, kwargs=kwargs, part=part),
        timeout_s=600,
        memory_limit_bytes=limit,
    )


def _cell(result: dict) -> str:
    return f"{result['seconds'] * 1e3:.1f}" if result["status"] == "ok" else result["status"]


# Published (Bello et al. 2019, via SPEC §5): params (M), GFLOPs, top-1 — plain and AA.
PAPER_AA = {
    34: ((21.8, 7.4, 73.6), (20.7, 7.1, 74.7)),
    50: ((25.6, 8.2, 76.4), (25.8, 8.3, 77.7)),
    101: ((44.5, 15.6, 77.9), (45.4, 16.1, 78.7)),
}


def table(_: argparse.Namespace) -> None:
    rows = []
    for depth in (34, 50, 101, 152):
        for suffix in ("", "_aa", "_eam"):
            result = profile(cnnattn.create_model(f"resnet{depth}{suffix}"))
            paper = PAPER_AA.get(depth, (None, None))[1 if suffix == "_aa" else 0] if suffix != "_eam" else None
            rows.append(
                (
                    f"resnet{depth}{suffix}",
                    f"{result.params / 1e6:.2f}",
                    f"{2 * result.macs / 1e9:.2f}",
                    f"{2 * result.dense_macs / 1e9:.2f}",
                    f"{paper[0]} / {paper[1]}" if paper else "—",
                )
            )
    print("224×224, 1000 classes; GFLOPs = 2 × MACs (the AA paper's convention)\n")
    print(
        format_table(
            ("model", "params (M)", "GFLOPs executed", "GFLOPs dense-equivalent", "paper params (M) / GFLOPs"), rows
        )
    )


def speed(args: argparse.Namespace) -> None:
    limit = int(args.memory_limit_gb * 2**30)
    rows, records = [], []
    for case in args.cases.split(","):
        channels, size = (int(v) for v in case.split("x"))
        results = {
            (label, mode): measure(name, kwargs, channels, size, mode, args.batch_size, limit, args.part)
            for label, (name, kwargs) in LAYERS.items()
            for mode in ("infer", "train")
        }
        records += [{"channels": channels, "size": size, "layer": label, "mode": mode, **result}
                    for (label, mode), result in results.items()]  # fmt: skip
        sep, dense = results[("EAM separable", "train")], results[("EAM dense", "train")]
        speedup = f"{dense['seconds'] / sep['seconds']:.1f}×" if dense["status"] == sep["status"] == "ok" else "—"
        rows.append(
            (
                f"{channels} @{size}²",
                *(_cell(results[(label, m)]) for m in ("infer", "train") for label in LAYERS),
                speedup,
                *(
                    f"{results[(label, 'train')].get('peak_memory_mb', 0) or 0:.0f}"
                    if results[(label, "train")]["status"] == "ok"
                    else results[(label, "train")]["status"]
                    for label in LAYERS
                ),
                f"{2 * size * size:,}",
                f"{(size * size) ** 2:,}",
            )
        )
        print(f"done: {case}", file=sys.stderr)
    modes = [f"{m} {label} ms" for m in ("infer", "train") for label in LAYERS]
    print(
        format_table(
            (
                "C @ size",
                *modes,
                "train dense/separable",
                *(f"train peak MB {label}" for label in LAYERS),
                "map elements separable",
                "map elements dense",
            ),
            rows,
        )
    )
    if args.json:
        record = {"machine": machine_info(), "date": datetime.date.today().isoformat(), "command": _command(),
                  "part": args.part, "batch_size": args.batch_size, "rows": records}  # fmt: skip
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")


def _command() -> str:
    return f"python benchmarks/explicit_attention.py {' '.join(sys.argv[1:])}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("speed")
    run.add_argument("--cases", default="512x14,256x28,128x56,64x112", help="CxSIZE,...")
    run.add_argument("--batch-size", type=int, default=1)
    run.add_argument("--memory-limit-gb", type=float, default=16.0)
    run.add_argument(
        "--part",
        choices=("layer", "attention"),
        default="layer",
        help="the whole layer, or only its attention branch (the part that differs)",
    )
    run.add_argument("--json", help="also write the machine, date, command and every measurement here")
    run.set_defaults(func=speed)
    commands.add_parser("table").set_defaults(func=table)
    args = parser.parse_args()
    print(f"machine: {machine_info()}\ncommand: {_command()}\n")
    args.func(args)


if __name__ == "__main__":
    main()
