"""What attention costs in arithmetic vs what it costs in time: MAC ratio beside latency ratio, per attention.

    python benchmarks/attention_overhead.py [--attention das,aw,eam,triplet,cbam,se,aa | all] [--runtime eager,compile]
        [--repeats 10] [--backbone resnet50] [--json out.json]

For each attention, ``<backbone>_<attention>`` against the plain backbone in one interleaved run per setting
(``cnnattn.analysis.bench``): inference at batch 16 and 224², and a training step (forward, backward,
optimiser-free) at batch 8 and 160², in each runtime (eager and ``torch.compile`` / inductor). Ratios are medians
over the repeats divided by the plain model's median in the same run. Prints a Markdown table with the machine;
``--json`` writes the machine, date, command, each model's params and MACs and every row, which
``python -m cnnattn.analysis.report`` turns into the tables of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys

from cnnattn.analysis import machine_info
from cnnattn.analysis.bench import bench
from cnnattn.attention import list_attention
from cnnattn.utils import format_table

SETTINGS = {"inference": dict(mode="infer", batch_size=16, img_size=224),
            "training step": dict(mode="train", batch_size=8, img_size=160)}  # fmt: skip


def overhead(backbone: str, attentions: list[str], runtimes: list[str], repeats: int) -> list[dict]:
    """A row per (attention, runtime): MAC ratio, and latency ratio and peak memory per setting."""
    names = [backbone] + [f"{backbone}_{a}" for a in attentions]
    rows = {(a, r): {"attention": a, "runtime": r} for a in attentions for r in runtimes}
    none = {"attention": "none", "runtime": "eager"}
    for label, setting in SETTINGS.items():
        print(f"timing {label}: {', '.join(names)} in {', '.join(runtimes)}", file=sys.stderr, flush=True)
        results = bench(names, runtimes=runtimes, repeats=repeats, warmup=3, **setting)
        plain = {r.runtime: r for r in results if r.model == backbone}
        eager_plain = plain.get("eager")
        if label == "inference" and eager_plain:
            none.update(params=eager_plain.params, macs=eager_plain.macs)
        for r in results:
            if r.model == backbone:
                continue
            row = rows[(r.model.removeprefix(f"{backbone}_"), r.runtime)]
            if label == "inference":  # MACs per image at the inference size
                row["params"], row["macs"], row["mac_ratio"] = r.params, r.macs, r.macs / plain[r.runtime].macs
            row[f"{label} ratio"] = r.median_ms / plain[r.runtime].median_ms
            row[f"{label} ms"] = r.median_ms
            if r.peak_memory_mb and eager_plain and eager_plain.peak_memory_mb:
                row[f"{label} memory ratio"] = r.peak_memory_mb / eager_plain.peak_memory_mb
    return [none, *rows.values()] if "macs" in none else list(rows.values())


def table(rows: list[dict]) -> str:
    headers = ["attention", "runtime", "MACs vs plain", "inference, batch 16, 224²", "training step, batch 8, 160²"]
    cells = [
        [
            row["attention"],
            row["runtime"],
            f"{row['mac_ratio']:.2f}×",
            *(f"{row[f'{label} ratio']:.2f}×" + (f" (mem {row[f'{label} memory ratio']:.2f}×)"
              if f"{label} memory ratio" in row else "") for label in SETTINGS),
        ]
        for row in rows
        if row["attention"] != "none"
    ]  # fmt: skip
    return format_table(headers, cells)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--attention", default="das,aw,eam,triplet,cbam,se,aa", help="comma-separated, or all")
    parser.add_argument("--runtime", default="eager,compile")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    attentions = [i.name for i in list_attention()] if args.attention == "all" else args.attention.split(",")
    rows = overhead(args.backbone, attentions, args.runtime.split(","), args.repeats)
    print(f"{json.dumps(machine_info())}\n\n{table(rows)}")
    if args.json:
        record = {"machine": machine_info(), "date": datetime.date.today().isoformat(),
                  "command": "python benchmarks/attention_overhead.py " + " ".join(sys.argv[1:]),
                  "backbone": args.backbone, "settings": SETTINGS, "rows": rows}  # fmt: skip
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
