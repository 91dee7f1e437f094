"""Ten minutes of a GPU, turned into the figures cnnattn lacks: one command, inside a time budget.

    python benchmarks/gpu_kit.py --output docs/results/gpu/ --budget-minutes 10
    python benchmarks/gpu_kit.py --dry-run --output /tmp/kit        # every section at toy sizes, on CPU, < 3 min

Sections, in order (each writes ``<section>.json`` as soon as it has numbers, and ``summary.md`` is rewritten after
each, so a run cut off still leaves what it measured):

1. ``layers``: cnnattn's deformable conv (each ``impl``) vs ``torchvision.ops.deform_conv2d`` vs a plain conv; AW
   batched vs its own per-sample calls vs a plain conv; EAM separable vs dense vs a plain conv. Forward and
   training step, float32 and bfloat16.
2. ``models``: ResNet-50 with each seed attention and the main baselines beside the plain model, batch 64 at 224²,
   channels-last, bf16 autocast, eager and ``torch.compile``: latency ratio beside MAC ratio, peak memory.
3. ``fast_paths``: each device rule of ``cnnattn.fast_paths`` and ``impl='auto'``: the path it picks on this
   device and the time of every path, so the rule can be set from data.
4. ``evidence``: CIFAR-10 (decoded once into device memory) ResNet-18 with the CIFAR stem, none / DAS / EAM / AW /
   SE, one seed, one-cycle SGD, bf16, channels-last, as many epochs as the budget leaves; each run's top-1 per
   epoch is written as it goes.

The clock is checked before every item; what no longer fits is skipped and listed as skipped, with the reason.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shlex
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import cnnattn
from cnnattn.analysis.bench import bench
from cnnattn.analysis.layer_timing import batched_vs_own_calls, live_aw_layer
from cnnattn.analysis.timing import time_interleaved
from cnnattn.attention import ExplicitAttentionConv2d
from cnnattn.fast_paths import aw_factored_is_faster, dsc_channels_last, tuning
from cnnattn.ops import deform_conv2d
from cnnattn.ops.deform_conv import default_impl
from cnnattn.utils import format_table

CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpg.zip"
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


@dataclass(frozen=True)
class Sizes:
    """Problem sizes of one run: the real ones on a GPU, toy ones for ``--dry-run``."""

    layer_batch: int
    layer_shapes: tuple[tuple[int, int], ...]  # (channels, side)
    model_names: tuple[str, ...]
    model_batch: int
    model_img: int
    runtimes: tuple[str, ...]
    memory: bool  # peak memory of each model (on CPU a fresh process per model)
    repeats: int
    cifar_train: int | None  # images (None: all)
    cifar_test: int | None
    cifar_batch: int
    evidence: tuple[str, ...]
    max_epochs: int


FULL = Sizes(
    layer_batch=32,
    layer_shapes=((64, 56), (128, 28), (256, 14), (512, 7)),
    model_names=tuple(f"resnet50{s}" for s in ("", "_das", "_eam", "_aw", "_se", "_cbam", "_eca", "_triplet", "_aa")),
    model_batch=64,
    model_img=224,
    runtimes=("eager", "compile"),
    memory=True,
    repeats=10,
    cifar_train=None,
    cifar_test=None,
    cifar_batch=512,
    evidence=("resnet18", "resnet18_das", "resnet18_eam", "resnet18_aw", "resnet18_se"),
    max_epochs=30,
)
DRY = Sizes(
    layer_batch=2,
    layer_shapes=((8, 8),),
    model_names=("resnet18", "resnet18_das", "resnet18_aw"),
    model_batch=2,
    model_img=64,  # stage 4 at 2×2: DAS's instance norm needs more than one pixel
    runtimes=("eager",),  # inductor compiles take minutes on a CPU: the dry run checks the eager plumbing
    memory=False,
    repeats=1,
    cifar_train=128,
    cifar_test=64,
    cifar_batch=64,
    evidence=("resnet18", "resnet18_das", "resnet18_eam", "resnet18_aw", "resnet18_se"),
    max_epochs=1,
)


@dataclass
class Kit:
    """Budget, output folder and what has been measured or skipped so far."""

    output: Path
    budget_s: float
    device: torch.device
    sizes: Sizes
    command: str
    start: float = field(default_factory=time.monotonic)
    results: dict[str, dict] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.start)

    def fits(self, what: str, need_s: float) -> bool:
        """Whether ``what`` (about ``need_s`` seconds) fits the time left; if not, it is recorded as skipped."""
        if self.left() >= need_s:
            return True
        self.skipped.append(f"{what}: needs about {need_s:.0f} s, {max(0.0, self.left()):.0f} s left")
        print(f"skipped {self.skipped[-1]}", file=sys.stderr, flush=True)
        return False

    def save(self, section: str, rows: list[dict], note: str = "") -> None:
        self.results[section] = {"rows": rows, "note": note}
        self.output.mkdir(parents=True, exist_ok=True)
        payload = {"environment": environment(self.device), "command": self.command, "rows": rows, "note": note}
        (self.output / f"{section}.json").write_text(json.dumps(payload, indent=2) + "\n")
        (self.output / "summary.md").write_text(summary(self))


def environment(device: torch.device) -> dict[str, object]:
    """Device name, driver, torch/CUDA/cuDNN versions, host."""
    env: dict[str, object] = {"device": str(device), "torch": torch.__version__, "torchvision": torchvision.__version__,
                              "cnnattn": cnnattn.__version__, "python": platform.python_version(),
                              "host_cpu": platform.processor() or platform.machine()}  # fmt: skip
    if device.type == "cuda":
        env.update(name=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version(), driver=_driver())  # fmt: skip
    return env


def _driver() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)  # fmt: skip
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _step(fn: Callable[[], torch.Tensor], train: bool, bf16: bool, device: torch.device) -> Callable[[], None]:
    def run() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16), torch.set_grad_enabled(train):
            out = fn()
        if train:
            out.float().sum().backward()

    return run


def _time(fns: dict[str, Callable[[], torch.Tensor]], kit: Kit, train: bool, bf16: bool) -> dict[str, float]:
    steps = {k: _step(f, train, bf16, kit.device) for k, f in fns.items()}
    timings = time_interleaved(steps, warmup=1, repeats=kit.sizes.repeats, device=kit.device)
    return {k: t.median * 1e3 for k, t in timings.items()}


def _modes() -> list[tuple[str, bool, bool]]:
    return [(f"{m} {p}", m == "train", p == "bf16") for m in ("forward", "train") for p in ("fp32", "bf16")]


def _per_shape(kit: Kit, section: str, measure: Callable[[Kit, int, int], list[dict]], note: str) -> list[dict]:
    """``measure(kit, channels, side)`` for each layer shape that fits the time left, saved after each."""
    rows: list[dict] = []
    for channels, side in kit.sizes.layer_shapes:
        if kit.fits(f"{section} {channels}@{side}²", 20 if kit.device.type == "cuda" else 5):
            rows += measure(kit, channels, side)
            kit.save(section, rows, note=note)
    return rows


def layer_rows(kit: Kit) -> list[dict]:
    """Deformable conv, AW and EAM against their references, every mode."""
    note = "median ms; AW: the batched layer, its own per-sample calls, a plain conv"
    return _per_shape(kit, "layers", _layer_shape_rows, note)


def _layer_shape_rows(kit: Kit, channels: int, side: int) -> list[dict]:
    dev, batch, shape = kit.device, kit.sizes.layer_batch, f"{kit.sizes.layer_batch}×{channels}@{side}²"
    x = torch.randn(batch, channels, side, side, device=dev, requires_grad=True)
    weight = (torch.randn(channels, channels, 3, 3, device=dev) * 0.05).requires_grad_()
    offset = torch.randn(batch, 18, side, side, device=dev) * 0.5
    mask = torch.rand(batch, 9, side, side, device=dev)
    eam = {impl: ExplicitAttentionConv2d(channels, channels, 3, impl=impl).to(dev) for impl in ("separable", "dense")}
    plain = nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(dev)

    def deform(impl: str) -> Callable[[], torch.Tensor]:
        return lambda: deform_conv2d(x, offset, weight, padding=1, mask=mask, impl=impl)

    groups = {
        "deformable conv": {"deform sampled": deform("sampled"), "deform torchvision": deform("torchvision"),
                            "torchvision.ops.deform_conv2d":
                                lambda: torchvision.ops.deform_conv2d(x, offset, weight, padding=1, mask=mask),
                            "plain conv": lambda: plain(x)},
        "explicit attention": {"eam separable": lambda: eam["separable"](x), "eam dense": lambda: eam["dense"](x),
                               "plain conv": lambda: plain(x)},
    }  # fmt: skip
    rows = [{"layer": group, "shape": shape, "mode": mode, **_time(fns, kit, train, bf16)}
            for mode, train, bf16 in _modes() for group, fns in groups.items()]  # fmt: skip
    for run, dtype in (("infer", "float32"), ("train", "float32"), ("train", "bfloat16")):
        aw = batched_vs_own_calls(channels, side, batch, run, repeats=kit.sizes.repeats, device=str(dev), dtype=dtype)
        rows.append({"layer": "AW", "shape": shape, "mode": f"{run} {dtype}", **aw})
    return rows


def model_rows(kit: Kit) -> list[dict]:
    """ResNet-50 with each attention beside the plain model: latency ratio, MAC ratio, peak memory."""
    rows, s = [], kit.sizes
    for mode in ("infer", "train"):
        need = len(s.model_names) * len(s.runtimes) * (40 if kit.device.type == "cuda" else 3)
        if not kit.fits(f"models {mode}", need):
            continue
        results = bench(list(s.model_names), batch_size=s.model_batch, img_size=s.model_img,
                        device=str(kit.device), mode=mode, channels_last=True, amp=True, warmup=2,
                        repeats=s.repeats, runtimes=s.runtimes, memory=s.memory)  # fmt: skip
        plain = {r.runtime: r for r in results if r.model == s.model_names[0]}
        for r in results:
            base = plain[r.runtime]
            rows.append({"model": r.model, "mode": mode, "runtime": r.runtime, "batch": r.batch_size,
                         "img": r.img_size, "median_ms": r.median_ms, "latency_ratio": r.median_ms / base.median_ms,
                         "mac_ratio": r.macs / base.macs, "peak_memory_mb": r.peak_memory_mb})  # fmt: skip
        kit.save("models", rows, note="channels-last, bf16 autocast; ratios to the plain model in the same runtime")
    return rows


def _aw_formulations(layer: nn.Module, x: torch.Tensor) -> dict[str, Callable[[], torch.Tensor]]:
    batch, size = x.shape[0], x.shape[2:]

    def grouped() -> torch.Tensor:
        weight = layer.modulated_weight(x)
        flat = weight.view(batch * layer.out_channels, -1, *layer.kernel_size)
        return F.conv2d(x.reshape(1, -1, *size), flat, None, 1, 1, 1, batch).view(batch, -1, *size)

    def unfold_bmm() -> torch.Tensor:
        weight = layer.modulated_weight(x)
        return torch.bmm(weight.view(batch, layer.out_channels, -1), F.unfold(x, 3, 1, 1, 1)).view(batch, -1, *size)

    return {"grouped conv": grouped, "unfold+bmm": unfold_bmm, "per sample": lambda: layer._forward_per_sample(x),
            "factored": lambda: layer._forward_factored(x)}  # fmt: skip


def _aw_pick(layer: nn.Module, x: torch.Tensor, train: bool) -> str:
    with torch.set_grad_enabled(train):
        if layer.uses_factored(x):
            return "factored"
        if layer.uses_per_sample(x):
            return "per sample"
    pixels = x.shape[2] * x.shape[3]
    return "unfold+bmm" if pixels <= tuning(x.device).aw_bmm_max_pixels else "grouped conv"


def fast_path_rows(kit: Kit) -> list[dict]:
    """Every device rule: what it picks here, and the time of each alternative."""
    note = "'picks': the rule in force on this device; 'fastest': as measured"
    return _per_shape(kit, "fast_paths", _fast_path_shape_rows, note)


def _fast_path_shape_rows(kit: Kit, channels: int, side: int) -> list[dict]:
    dev, batch, shape = kit.device, kit.sizes.layer_batch, f"{kit.sizes.layer_batch}×{channels}@{side}²"
    x = torch.randn(batch, channels, side, side, device=dev, requires_grad=True)
    layer = live_aw_layer(channels).to(dev)
    rows = []
    for train in (False, True):
        ms = _time(_aw_formulations(layer, x), kit, train, False)
        mode = "train" if train else "infer"
        rule = aw_factored_is_faster(dev, side * side, channels * channels, train, batch)
        rows.append({"rule": "AWConv2d formulation (impl='auto')", "shape": shape, "mode": mode,
                     "picks": _aw_pick(layer, x, train), "fastest": min(ms, key=ms.get), **ms,
                     "factored_rule": rule})  # fmt: skip
    offset, weight = torch.randn(batch, 18, side, side, device=dev), torch.randn(channels, channels, 3, 3, device=dev)

    def deform(impl: str) -> Callable[[], torch.Tensor]:
        return lambda: deform_conv2d(x, offset, weight, padding=1, impl=impl)

    for train in (False, True):
        ms = _time({i: deform(i) for i in ("sampled", "torchvision")}, kit, train, False)
        rows.append({"rule": "deform_conv2d impl='auto'", "shape": shape, "mode": "train" if train else "infer",
                     "picks": default_impl(dev), "fastest": min(ms, key=ms.get), **ms})  # fmt: skip
    depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels).to(dev)
    layouts = {"contiguous": lambda: depthwise(x),
               "channels-last": lambda: depthwise(x.contiguous(memory_format=torch.channels_last))}  # fmt: skip
    ms = _time(layouts, kit, True, False)
    rows.append({"rule": "DAS depthwise conv channels-last", "shape": shape, "mode": "train",
                 "picks": "channels-last" if dsc_channels_last(x) else "contiguous", "fastest": min(ms, key=ms.get),
                 **ms})  # fmt: skip
    return rows


def load_cifar(device: torch.device, train_limit: int | None, test_limit: int | None) -> dict[str, tuple]:
    """CIFAR-10 from the JPEG zip, decoded once into ``device`` memory: split -> (uint8 images, labels)."""
    out = {}
    with zipfile.ZipFile(CIFAR) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".jpg"))
        classes = sorted({n.split("/")[1] for n in names})
        for split, limit in (("train", train_limit), ("test", test_limit)):
            files = [n for n in names if n.startswith(f"{split}/")]
            if limit is not None:
                files = files[:: max(1, len(files) // limit)][:limit]
            images = [torchvision.io.decode_jpeg(torch.frombuffer(bytearray(archive.read(n)), dtype=torch.uint8))
                      for n in files]  # fmt: skip
            labels = torch.tensor([classes.index(n.split("/")[1]) for n in files])
            out[split] = (torch.stack(images).to(device), labels.to(device))
    return out


def _augment(images: torch.Tensor) -> torch.Tensor:
    """Random crop (4-px padding) and horizontal flip, on the device, batched."""
    batch = images.shape[0]
    padded = F.pad(images, (4, 4, 4, 4), mode="reflect")
    dx, dy = torch.randint(0, 9, (2,), device=images.device).tolist()
    cropped = padded[..., dy : dy + 32, dx : dx + 32]
    flip = torch.rand(batch, device=images.device) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), cropped.flip(-1), cropped)


def _normalise(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(CIFAR_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD, device=images.device).view(1, 3, 1, 1)
    return ((images.float() / 255 - mean) / std).contiguous(memory_format=torch.channels_last)


def _top1(model: nn.Module, data: tuple, batch: int, device: torch.device) -> float:
    images, labels = data
    model.eval()
    correct = 0
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
        for i in range(0, len(labels), batch):
            correct += (model(_normalise(images[i : i + batch])).argmax(1) == labels[i : i + batch]).sum().item()
    return 100.0 * correct / len(labels)


def _train_run(kit: Kit, name: str, data: dict, epochs: int, record: dict) -> None:
    """One evidence run; ``record['top1']`` grows by one value per epoch, saved as it goes."""
    torch.manual_seed(0)
    dev, batch = kit.device, kit.sizes.cifar_batch
    model = cnnattn.create_model(name, num_classes=10, stem="cifar").to(dev, memory_format=torch.channels_last)
    images, labels = data["train"]
    steps = math.ceil(len(labels) / batch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1 * batch / 128, total_steps=epochs * steps)
    for _ in range(epochs):
        model.train()
        start = time.monotonic()
        order = torch.randperm(len(labels), device=dev)
        for i in range(steps):
            index = order[i * batch : (i + 1) * batch]
            with torch.autocast(dev.type, dtype=torch.bfloat16):
                loss = F.cross_entropy(model(_normalise(_augment(images[index]))), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        record["top1"].append(_top1(model, data["test"], batch, dev))
        record["epoch_s"].append(time.monotonic() - start)


def evidence_rows(kit: Kit) -> list[dict]:
    """CIFAR-10 runs of each variant under one schedule; epochs chosen from a timed first epoch of the baseline."""
    s = kit.sizes
    if not CIFAR.is_file():
        kit.skipped.append(f"evidence: {CIFAR} is absent")
        return []
    if not kit.fits("evidence (decoding CIFAR-10)", 30 if kit.device.type == "cuda" else 10):
        return []
    data = load_cifar(kit.device, s.cifar_train, s.cifar_test)
    probe = {"model": s.evidence[0], "top1": [], "epoch_s": []}
    _train_run(kit, s.evidence[0], data, 1, probe)  # times one epoch: the schedule is then sized to the budget
    per_epoch = probe["epoch_s"][0] * 1.5  # attention variants cost more than the plain model
    epochs = max(1, min(s.max_epochs, int(kit.left() / (per_epoch * len(s.evidence)))))
    rows = []
    for name in s.evidence:
        if not kit.fits(f"evidence {name} ({epochs} epochs)", per_epoch * epochs):
            continue
        record = {"model": name, "epochs": epochs, "batch": s.cifar_batch, "top1": [], "epoch_s": [],
                  "train_images": len(data["train"][1]), "test_images": len(data["test"][1])}  # fmt: skip
        rows.append(record)
        _train_run(kit, name, data, epochs, record)
        kit.save("evidence", rows, note="seed 0, one-cycle SGD (nesterov, max lr 0.1·batch/128), bf16, channels-last")
    return rows


def _table(rows: list[dict]) -> str:
    if not rows:
        return "(nothing measured)\n"
    headers = list(dict.fromkeys(k for row in rows for k in row if not isinstance(row[k], list)))
    cells = [[_cell(row.get(h)) for h in headers] for row in rows]
    return format_table(headers, cells)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return "" if value is None else str(value)


def summary(kit: Kit) -> str:
    env = environment(kit.device)
    lines = ["# cnnattn GPU kit results", "", f"Command: `{kit.command}`", "",
             *(f"- {k}: {v}" for k, v in env.items()), ""]  # fmt: skip
    for section, result in kit.results.items():
        lines += [f"## {section}", "", result["note"], "", _table(result["rows"]), ""]
        curves = [r for r in result["rows"] if isinstance(r.get("top1"), list)]
        lines += [f"- {r['model']}: top-1 by epoch {', '.join(f'{t:.2f}' for t in r['top1'])}" for r in curves]
    if kit.skipped:
        lines += ["## Skipped", "", *(f"- {s}" for s in kit.skipped), ""]
    return "\n".join(lines) + "\n"


SECTIONS: dict[str, Callable[[Kit], list[dict]]] = {
    "layers": layer_rows,
    "models": model_rows,
    "fast_paths": fast_path_rows,
    "evidence": evidence_rows,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, required=True, help="folder for <section>.json and summary.md")
    parser.add_argument("--budget-minutes", type=float, default=10.0)
    parser.add_argument("--dry-run", action="store_true", help="toy sizes on CPU: checks every section in minutes")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"any of {', '.join(SECTIONS)}")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        parser.error("no CUDA device: the kit measures a GPU (use --dry-run to check it on CPU)")
    device = torch.device("cpu" if args.dry_run else "cuda")
    words = argv if argv is not None else sys.argv[1:]
    command = "python benchmarks/gpu_kit.py " + " ".join(shlex.quote(a) for a in words)
    kit = Kit(args.output, args.budget_minutes * 60, device, DRY if args.dry_run else FULL, command)
    for section in args.sections.split(","):
        print(f"section {section}: {kit.left():.0f} s left", file=sys.stderr, flush=True)
        kit.save(section, SECTIONS[section](kit))
    print(summary(kit))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
