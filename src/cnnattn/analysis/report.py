"""The documentation's tables of figures, generated from the result files in ``docs/results/``.

    python -m cnnattn.analysis.report [--docs docs] [--check]

A page holds a generated table between ``<!-- generated: NAME -->`` (or ``NAME:FILE`` for the renderers that
take a file of ``docs/results/``) and ``<!-- end generated -->``; this command rewrites each such block from the
result file its table is built from, headed by the machine, date and command that produced the file. ``--check``
writes nothing and exits 1 listing the pages whose blocks differ from what the results give (a test runs it).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..utils import format_table

__all__ = ["RENDERERS", "generate", "main", "render_block"]

BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w-]+(?::[\w./-]+)?) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)
CURVE_EPOCHS = (1, 2, 3, 4, 6, 8, 10, 15)


def _load(results: Path, name: str) -> dict[str, Any]:
    return json.loads((results / name).read_text())


def _source(record: dict[str, Any], file: str) -> str:
    """One line: where the figures come from (machine, versions, date, command, file)."""
    m = record["machine"]
    cpu = str(m["cpu"]).replace("(R)", "")
    machine = f"{cpu}, {m['cores']} cores, {m['torch_threads']} torch threads, torch {m['torch']}, Python {m['python']}"
    return f"*{machine}; {record['date']}. `{record['command']}` → `docs/results/{file}`.*\n\n"


def _x(value: float) -> str:
    return f"{value:.2f}×"


def _overhead_rows(record: dict[str, Any], runtime: str) -> list[dict[str, Any]]:
    return [r for r in record["rows"] if r["runtime"] == runtime and r["attention"] != "none"]


def overview(results: Path) -> str:
    """ResNet-50 with each attention beside the plain model: params, MACs, CPU latency and memory ratios."""
    file = "attention_overhead_all_cpu.json"
    record = _load(results, file)
    plain = next(r for r in record["rows"] if r["attention"] == "none")
    headers = ["attention", "params (M)", "GMACs", "MACs ×", "inference ×", "training step ×", "inference memory ×"]
    rows = [["none", f"{plain['params'] / 1e6:.2f}", f"{plain['macs'] / 1e9:.3f}", "1.00×", "1.00×", "1.00×", "1.00×"]]
    for r in sorted(_overhead_rows(record, "eager"), key=lambda r: r["inference ratio"]):
        memory = r.get("inference memory ratio")
        ratios = [_x(r[k]) for k in ("mac_ratio", "inference ratio", "training step ratio")]
        rows.append([r["attention"], f"{r['params'] / 1e6:.2f}", f"{r['macs'] / 1e9:.3f}", *ratios,
                     _x(memory) if memory else "—"])  # fmt: skip
    inference, training = (record["settings"][k] for k in ("inference", "training step"))
    note = (
        f"ResNet-50, eager, ratios to the plain model timed in the same interleaved run (medians): inference at batch "
        f"{inference['batch_size']}, {inference['img_size']}²; training step (forward + backward) at batch "
        f"{training['batch_size']}, {training['img_size']}²; memory: peak resident memory in a fresh process.\n\n"
    )
    return _source(record, file) + note + format_table(headers, rows)


def layer_speedups(results: Path) -> str:
    """The seed layers against their strongest references: torchvision's kernel, the dense map, own calls."""
    deform, eam, aw = (_load(results, f) for f in ("deform_conv_cpu.json", "eam_attention_cpu.json",
                                                   "awconv_speed_cpu.json"))  # fmt: skip
    target = next(r for r in deform["rows"] if r["batch"] == 8 and r["case"].startswith("target"))
    by = {(r["layer"], r["mode"], r["channels"], r["size"]): r for r in eam["rows"]}
    dense, sep = by[("EAM dense", "train", 128, 56)], by[("EAM separable", "train", 128, 56)]
    ratios = [r["own_calls/batched"] for r in aw["rows"]]
    worst = min(aw["rows"], key=lambda r: r["own_calls/batched"])
    rows = [
        ["deformable conv, 64→64 @56², batch 8, training step", "`torchvision.ops.deform_conv2d`",
         _x(target["torchvision_train_s"] / target["sampled_train_s"]), deform["date"], deform["machine"]["cpu"]],
        ["EAM attention branch, 128 ch @56², training step", "the same map, dense ((H·W)² elements)",
         _x(dense["seconds"] / sep["seconds"]), eam["date"], eam["machine"]["cpu"]],
        ["AW batched, ResNet-50's 3×3 shapes, batch 8–64, inference and training",
         "the same layer called on each sample",
         f"{_x(min(ratios))}–{_x(max(ratios))} (median {_x(statistics.median(ratios))}; lowest at "
         f"{worst['channels']}@{worst['size']}² {worst['mode']} batch {worst['batch']})",
         aw["date"], aw["machine"]["cpu"]],
    ]  # fmt: skip
    headers = ["layer", "reference", "speed-up (reference time / cnnattn time)", "measured", "CPU"]
    return format_table(headers, [[str(c).replace("(R)", "") for c in row] for row in rows])


def overhead_runtimes(results: Path) -> str:
    """ResNet-50 with the seed modules and the main baselines, eager and inductor."""
    file = "attention_overhead_cpu_xeon.json"
    record = _load(results, file)
    headers = ["attention", "runtime", "MACs ×", "inference ×", "training step ×"]
    rows = [[r["attention"], r["runtime"], _x(r["mac_ratio"]), _x(r["inference ratio"]), _x(r["training step ratio"])]
            for r in sorted(record["rows"], key=lambda r: (r["attention"], r["runtime"] != "eager"))]  # fmt: skip
    return _source(record, file) + format_table(headers, rows)


def deform_conv(results: Path) -> str:
    """cnnattn's sampled deformable conv against torchvision's kernel, per shape."""
    file = "deform_conv_cpu.json"
    record = _load(results, file)
    headers = ["B", "case", "shape", "infer cnnattn ms", "infer tv ms", "infer ×", "train cnnattn ms", "train tv ms",
               "train ×", "train peak MB cnnattn / tv"]  # fmt: skip
    rows = [[r["batch"], r["case"], f"{r['c_in']}→{r['c_out']} @{r['size']}²", f"{r['sampled_infer_s'] * 1e3:.1f}",
             f"{r['torchvision_infer_s'] * 1e3:.1f}", _x(r["torchvision_infer_s"] / r["sampled_infer_s"]),
             f"{r['sampled_train_s'] * 1e3:.1f}", f"{r['torchvision_train_s'] * 1e3:.1f}",
             _x(r["torchvision_train_s"] / r["sampled_train_s"]),
             f"{r['sampled_train_peak_mb']:.0f} / {r['torchvision_train_peak_mb']:.0f}"]
            for r in record["rows"]]  # fmt: skip
    return _source(record, file) + format_table(headers, rows)


def awconv_speed(results: Path) -> str:
    """Batched AW-convolution against its own per-sample calls and a plain conv, fresh and warm processes."""
    file = "awconv_speed_cpu.json"
    record = _load(results, file)
    headers = ["shape", "batch", "mode", "batched ms", "own calls ms", "plain ms", "own calls / batched (fresh)",
               "each fresh process", "own calls / batched (warm)", "batched / plain (warm)"]  # fmt: skip
    by = {(r["channels"], r["size"], r["batch"], r["mode"], r["process"]): r for r in record["rows"]}
    rows = []
    for (c, s, b, mode, process), warm in by.items():
        if process != "warm":
            continue
        fresh = by[(c, s, b, mode, "fresh")]
        each = ", ".join(f"{ratio:.2f}" for ratio in fresh.get("own_calls/batched runs", [fresh["own_calls/batched"]]))
        rows.append([f"{c} ch @{s}²", b, mode, f"{warm['batched']:.1f}", f"{warm['own_calls']:.1f}",
                     f"{warm['plain']:.1f}", _x(fresh["own_calls/batched"]), each, _x(warm["own_calls/batched"]),
                     _x(warm["batched/plain"])])  # fmt: skip
    return _source(record, file) + format_table(headers, rows)


def eam_attention(results: Path) -> str:
    """EAM's attention branch: separable against dense, and AA's content attention, against map size."""
    file = "eam_attention_cpu.json"
    record = _load(results, file)
    by = {(r["layer"], r["mode"], r["channels"], r["size"]): r for r in record["rows"]}
    layers = ("EAM separable", "EAM dense", "AA")
    cases = sorted({(r["channels"], r["size"]) for r in record["rows"]}, key=lambda cs: cs[1])

    def cell(layer: str, mode: str, c: int, s: int, key: str = "seconds") -> str:
        r = by[(layer, mode, c, s)]
        if r["status"] != "ok":
            return r["status"]
        return f"{r['seconds'] * 1e3:.1f}" if key == "seconds" else f"{r.get('peak_memory_mb') or 0:.0f}"

    headers = ["C @ size", *(f"{m} {layer} ms" for m in ("infer", "train") for layer in layers),
               "train dense / separable", *(f"train peak MB {layer}" for layer in layers)]  # fmt: skip
    rows = []
    for c, s in cases:
        sep, dense = by[("EAM separable", "train", c, s)], by[("EAM dense", "train", c, s)]
        ok = sep["status"] == dense["status"] == "ok"
        rows.append([f"{c} @{s}²", *(cell(layer, m, c, s) for m in ("infer", "train") for layer in layers),
                     _x(dense["seconds"] / sep["seconds"]) if ok else "—",
                     *(cell(layer, "train", c, s, "memory") for layer in layers)])  # fmt: skip
    return _source(record, file) + format_table(headers, rows)


def families(results: Path) -> str:
    """The named models of each backbone family beside their plain bases."""
    file = "families_cpu.json"
    record = _load(results, file)
    headers = ["model", "placement", "params (M)", "GMACs", "params ×", "MACs ×", "latency ms", "latency ×"]
    rows = [[r["model"], r["placement"] or "—", f"{r['params'] / 1e6:.2f}", f"{r['macs'] / 1e9:.3f}",
             _x(r["params_ratio"]), _x(r["mac_ratio"]), f"{r['median_ms']:.1f}", _x(r["latency_ratio"])]
            for r in record["rows"]]  # fmt: skip
    return _source(record, file) + format_table(headers, rows)


def runtimes(results: Path) -> str:
    """ResNet-50 with each seed module in eager PyTorch, inductor and onnxruntime."""
    file = "bench_resnet50_runtimes_cpu.json"
    record = _load(results, file)
    eager_plain = next(
        r["median_ms"] for r in record["results"] if r["model"] == "resnet50" and r["runtime"] == "eager"
    )
    headers = ["model", "runtime", "latency ms (IQR)", "× plain eager", "× plain, same runtime"]
    rows = [[r["model"], r["runtime"], f"{r['median_ms']:.1f} ({r['p25_ms']:.1f}–{r['p75_ms']:.1f})",
             _x(r["median_ms"] / eager_plain), _x(r["ratio"])] for r in record["results"]]  # fmt: skip
    return _source(record, file) + format_table(headers, rows)


def das_ablation(results: Path) -> str:
    """The DAS placement ablation: top-1 per variant over seeds (``benchmarks/das_ablation.py``)."""
    runs = [json.loads(line) for line in (results / "das_ablation.jsonl").read_text().splitlines() if line.strip()]
    variants: dict[str, list[float]] = {}
    for run in runs:
        variants.setdefault(run["variant"], []).append(run["top1"])
    recipe = runs[0]["recipe"]
    headers = ["variant", "top-1 % (mean ± std)", "seeds", "top-1 per seed"]
    rows = [[v, f"{statistics.mean(t):.2f} ± {statistics.stdev(t) if len(t) > 1 else 0:.2f}", len(t),
             ", ".join(f"{x:.2f}" for x in t)] for v, t in variants.items()]  # fmt: skip
    note = (
        f"*ResNet-18 on a class-balanced CIFAR-10 subset ({recipe['train_per_class']} train / "
        f"{recipe['test_per_class']} test images per class) at {recipe['img_size']}², {recipe['epochs']} epochs, "
        f"batch {recipe['batch_size']}, lr {recipe['lr']}. `python benchmarks/das_ablation.py accuracy` → "
        "`docs/results/das_ablation.jsonl`.*\n\n"
    )
    return note + format_table(headers, rows)


def written_table(results: Path, file: str) -> str:
    """The table (and its verdict lines) that a command wrote into the Markdown ``file`` of ``docs/results``:
    ``cnnattn compare``'s ``results.md``, a benchmark script's printed table."""
    lines = (results / file).read_text().splitlines()
    kept = [line for line in lines if line.startswith(("|", "- "))]
    table = [line for line in kept if line.startswith("|")]
    return "\n".join(table) + "\n\n" + "\n".join(line for line in kept if line.startswith("- "))


def curves(results: Path, file: str) -> str:
    """Mean validation top-1 over seeds after each of :data:`CURVE_EPOCHS`, per variant, from a ``curves.csv``."""
    import csv

    with (results / file).open() as f:
        points = list(csv.DictReader(f))
    variants = list(dict.fromkeys(p["variant"] for p in points))
    by: dict[tuple[str, int], list[float]] = {}
    for p in points:
        by.setdefault((p["variant"], int(p["epoch"])), []).append(float(p["top1"]))
    epochs = [e for e in CURVE_EPOCHS if any((v, e) in by for v in variants)]
    rows = [[e, *(f"{statistics.mean(by[(v, e)]):.1f}" if (v, e) in by else "—" for v in variants)] for e in epochs]
    return format_table(["epoch", *variants], rows)


def precision(results: Path, folder: str) -> str:
    """Top-1 in float32 and under each autocast type, and their agreement, from ``cnnattn eval --precision --json``
    outputs (``precision-*.json`` in ``folder``)."""
    rows = []
    for file in sorted((results / folder).glob("precision-*.json")):
        record = json.loads(file.read_text())
        for name, low in record["precisions"].items():
            rows.append([record["model"], record["images"], f"{record['top1']:.2f}", name, f"{low['top1']:.2f}",
                         f"{low['agreement']:.2f}"])  # fmt: skip
    headers = ["model", "images", "top-1 fp32 %", "autocast", "top-1 autocast %", "same top-1 class as fp32 %"]
    return format_table(headers, rows)


RENDERERS: dict[str, Callable[..., str]] = {
    "overview": overview,
    "layer-speedups": layer_speedups,
    "overhead-runtimes": overhead_runtimes,
    "deform-conv": deform_conv,
    "awconv-speed": awconv_speed,
    "eam-attention": eam_attention,
    "families": families,
    "runtimes": runtimes,
    "das-ablation": das_ablation,
    "table": written_table,
    "curves": curves,
    "precision": precision,
}


def render_block(name: str, results: Path) -> str:
    """The generated content of block ``name`` (``NAME`` or ``NAME:FILE``), ending in a newline; ValueError for
    an unknown name."""
    renderer, _, file = name.partition(":")
    if renderer not in RENDERERS:
        raise ValueError(f"unknown generated table {renderer!r}; known: {', '.join(RENDERERS)}.")
    text = RENDERERS[renderer](results, file) if file else RENDERERS[renderer](results)
    return text.rstrip("\n") + "\n"


def generate(docs: Path) -> dict[Path, str]:
    """Every page of ``docs`` (its Markdown files) with its generated blocks rewritten from ``docs/results``."""
    results = docs / "results"
    pages = {}
    for page in sorted(docs.glob("*.md")):
        text = page.read_text()
        pages[page] = BLOCK.sub(lambda m: m.group(1) + render_block(m.group("name"), results) + m.group(4), text)
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=Path, default=Path("docs"), help="the documentation folder (default: docs)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a page is out of date")
    args = parser.parse_args(argv)
    stale = {page: text for page, text in generate(args.docs).items() if page.read_text() != text}
    for page, text in stale.items():
        if args.check:
            print(f"{page}: generated tables differ from docs/results (run python -m cnnattn.analysis.report)")
        else:
            page.write_text(text)
            print(f"rewrote {page}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
