"""What attention costs in each backbone family: params, MACs and CPU latency of the named models beside their
plain bases.

    python benchmarks/families.py [--bases convnext_tiny,efficientnet_b0,...] [--attention se,das]
        [--batch-size 4] [--img-size 224] [--repeats 5] [--json out.json]

For each base (``cnnattn.models.factory.TIMM_BASES`` by default), the plain timm model and ``<base>_<attention>``
at the attention's default placement for that family are timed side by side in one interleaved run
(``cnnattn.analysis.bench``, eager inference); ratios are medians over the repeats divided by the plain model's
median in the same run. Prints a Markdown table with the machine, ready for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys

from cnnattn.analysis import machine_info
from cnnattn.analysis.bench import bench
from cnnattn.models import create_model
from cnnattn.models.factory import TIMM_BASES
from cnnattn.utils import format_table


def rows(bases: list[str], attentions: list[str], batch_size: int, img_size: int, repeats: int) -> list[dict]:
    """A row per (base, variant): params, MACs and median latency, each with its ratio to the plain base."""
    out = []
    for base in bases:
        names = [base] + [f"{base}_{a}" for a in attentions]
        print(f"timing {', '.join(names)}", file=sys.stderr, flush=True)
        results = bench(names, mode="infer", batch_size=batch_size, img_size=img_size, repeats=repeats, warmup=2)
        plain = results[0]
        for r in results:
            placement = getattr(create_model(r.model), "cnnattn_placements", [])
            where = f"{placement[0].position} ×{len(placement[0].modules)}" if placement else ""
            out.append(dict(model=r.model, base=base, placement=where, params=r.params, macs=r.macs,
                            median_ms=r.median_ms, params_ratio=r.params / plain.params, mac_ratio=r.macs / plain.macs,
                            latency_ratio=r.median_ms / plain.median_ms))  # fmt: skip
    return out


def table(entries: list[dict], batch_size: int, img_size: int) -> str:
    headers = ["model", "placement", "params (M)", "GMACs", f"latency, batch {batch_size}, {img_size}² (ms)",
               "params vs plain", "MACs vs plain", "latency vs plain"]  # fmt: skip
    cells = [
        [e["model"], e["placement"] or "—", f"{e['params'] / 1e6:.2f}", f"{e['macs'] / 1e9:.2f}",
         f"{e['median_ms']:.0f}", f"{e['params_ratio']:.3f}×", f"{e['mac_ratio']:.3f}×", f"{e['latency_ratio']:.2f}×"]
        for e in entries
    ]  # fmt: skip
    return format_table(headers, cells)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bases", default=",".join(TIMM_BASES))
    parser.add_argument("--attention", default="se,das")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None, help="also write the rows and the machine to this file")
    args = parser.parse_args(argv)
    entries = rows(args.bases.split(","), args.attention.split(","), args.batch_size, args.img_size, args.repeats)
    machine = machine_info()
    print(f"Machine: {machine}\n")
    print(table(entries, args.batch_size, args.img_size))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "command": " ".join(sys.argv), "rows": entries}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
