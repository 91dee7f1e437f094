"""DAS placement ablation: position ('stage' vs 'block') × reduction α, beside SE and CBAM.

Two parts:

* ``complexity``: params and MACs at 224² on ResNet-18 and ResNet-50 for every variant.
* ``accuracy``: top-1 on a class-balanced CIFAR-10 subset read from the zip in ../shared/data, ResNet-18
  at a small image size, one fixed recipe (SGD + nesterov, warm-up then cosine, flips and padded crops),
  the same seeds for every variant. Each finished run is appended to ``--results`` (JSON lines), so an
  interrupted ablation keeps its runs and ``summary`` can tabulate them.

    python benchmarks/das_ablation.py complexity
    python benchmarks/das_ablation.py accuracy --epochs 8 --seeds 0,1 --results docs/results/das_ablation.jsonl
    python benchmarks/das_ablation.py summary --results docs/results/das_ablation.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import cnnattn
from cnnattn.analysis import complexity_table, count_macs, count_params, machine_info
from cnnattn.data import ZipImageFolder
from cnnattn.utils import format_table

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-jpg.zip"
REDUCTIONS = (4, 8, 16)
VARIANTS = ["none", "se", "cbam", *(f"das-{pos}-{a}" for pos in ("stage", "block") for a in REDUCTIONS)]
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def build(backbone: str, variant: str, num_classes: int) -> nn.Module:
    """``none``, a registry default (``se``, ``cbam``) or ``das-<position>-<α>`` on all four stages."""
    if variant == "none":
        return cnnattn.create_model(backbone, num_classes=num_classes)
    if not variant.startswith("das-"):
        return cnnattn.create_model(f"{backbone}_{variant}", num_classes=num_classes)
    _, position, alpha = variant.split("-")
    return cnnattn.create_model(
        f"{backbone}_das",
        num_classes=num_classes,
        attn_position=position,
        attn_stages=(1, 2, 3, 4),
        attn_kwargs={"rd_ratio": 1 / alpha},
    )


def complexity(_: argparse.Namespace) -> None:
    print("Params and MACs at 224×224, 1000 classes (MACs: multiply-accumulates; GFLOPs = 2 × MACs)\n")
    for backbone in ("resnet18", "resnet50"):
        headers, rows = complexity_table({f"{backbone} {v}": build(backbone, v, 1000) for v in VARIANTS})
        print(format_table(headers, rows), end="\n\n")


def load_subset(path: Path, split: str, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode a class-balanced subset once: uint8 images (N, 3, H, W) and labels (N,)."""
    dataset = ZipImageFolder(path, split)
    indices = dataset.subset_indices(per_class, seed)
    images = torch.stack(
        [
            torch.frombuffer(bytearray(dataset.load_image(i).tobytes()), dtype=torch.uint8)
            .view(32, 32, 3)
            .permute(2, 0, 1)
            for i in indices
        ]
    )
    return images, torch.tensor([dataset.targets[i] for i in indices])


def prepare(images: torch.Tensor, size: int, train: bool, generator: torch.Generator) -> torch.Tensor:
    """uint8 batch -> normalised float at ``size``; training adds flips and 4-pixel padded random crops."""
    x = images.float().div_(255)
    if train:
        flip = torch.rand(len(x), generator=generator) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        padded = F.pad(x, (4, 4, 4, 4), mode="reflect")
        dy, dx = torch.randint(0, 9, (2,), generator=generator).tolist()
        x = padded[..., dy : dy + 32, dx : dx + 32]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to zero at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def train_and_evaluate(model: nn.Module, data: dict, args: argparse.Namespace, seed: int) -> float:
    """Train with the fixed recipe and return test top-1 (%)."""
    generator = torch.Generator().manual_seed(seed)
    train_x, train_y = data["train"]
    steps_per_epoch = math.ceil(len(train_x) / args.batch_size)
    total, warmup = args.epochs * steps_per_epoch, steps_per_epoch
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, warmup, total))
    model.train()
    for _ in range(args.epochs):
        order = torch.randperm(len(train_x), generator=generator)
        for start in range(0, len(order), args.batch_size):
            idx = order[start : start + args.batch_size]
            if len(idx) < 2:
                continue
            loss = F.cross_entropy(model(prepare(train_x[idx], args.img_size, True, generator)), train_y[idx])
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()}; lower --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()
    test_x, test_y = data["test"]
    correct = 0
    with torch.no_grad():
        for start in range(0, len(test_x), 256):
            logits = model(prepare(test_x[start : start + 256], args.img_size, False, generator))
            correct += (logits.argmax(1) == test_y[start : start + 256]).sum().item()
    return 100.0 * correct / len(test_x)


def accuracy(args: argparse.Namespace) -> None:
    if not args.data.is_file():
        sys.exit(f"data not found: {args.data} (expected the CIFAR-10 zip of ../shared/data).")
    data = {
        "train": load_subset(args.data, "train", args.train_per_class, 0),
        "test": load_subset(args.data, "test", args.test_per_class, 0),
    }
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    done = {(r["variant"], r["seed"]) for r in _read(results)}
    for seed in (int(s) for s in args.seeds.split(",")):
        for variant in args.variants.split(","):
            if (variant, seed) in done:
                continue
            torch.manual_seed(seed)
            model = build("resnet18", variant, 10)
            start = time.perf_counter()
            top1 = train_and_evaluate(model, data, args, seed)
            record = {
                "variant": variant,
                "seed": seed,
                "top1": top1,
                "train_s": time.perf_counter() - start,
                "recipe": {
                    k: getattr(args, k)
                    for k in ("epochs", "batch_size", "lr", "img_size", "train_per_class", "test_per_class")
                },
            }
            with results.open("a") as f:
                f.write(json.dumps(record) + "\n")
            print(f"{variant} seed {seed}: top-1 {top1:.2f}% in {record['train_s']:.0f} s", flush=True)


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def summary(args: argparse.Namespace) -> None:
    records = _read(Path(args.results))
    by_variant: dict[str, list[dict]] = {}
    for r in records:
        by_variant.setdefault(r["variant"], []).append(r)
    rows = []
    for variant in [v for v in VARIANTS if v in by_variant]:
        model = build("resnet18", variant, 10)
        accs = [r["top1"] for r in by_variant[variant]]
        std = f"{statistics.stdev(accs):.2f}" if len(accs) > 1 else "—"
        rows.append(
            (
                variant,
                f"{statistics.mean(accs):.2f} ± {std}",
                len(accs),
                f"{count_params(model) / 1e6:.2f}",
                f"{count_macs(model, (3, 64, 64)) / 1e6:.0f}",
                " ".join(f"{r['top1']:.2f}" for r in sorted(by_variant[variant], key=lambda r: r["seed"])),
            )
        )
    if records:
        print(f"recipe: {records[0]['recipe']}\n")
    headers = ("variant", "top-1 % (mean ± std)", "seeds", "params (M)", "MMACs @64²", "top-1 per seed")
    print(format_table(headers, rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("complexity").set_defaults(func=complexity)
    acc = commands.add_parser("accuracy")
    acc.add_argument("--data", type=Path, default=DEFAULT_DATA)
    acc.add_argument("--variants", default=",".join(VARIANTS))
    acc.add_argument("--seeds", default="0")
    acc.add_argument("--epochs", type=int, default=8)
    acc.add_argument("--batch-size", type=int, default=64)
    acc.add_argument("--lr", type=float, default=0.1)
    acc.add_argument("--img-size", type=int, default=64)
    acc.add_argument("--train-per-class", type=int, default=500)
    acc.add_argument("--test-per-class", type=int, default=200)
    acc.add_argument("--results", default="docs/results/das_ablation.jsonl")
    acc.set_defaults(func=accuracy)
    summ = commands.add_parser("summary")
    summ.add_argument("--results", default="docs/results/das_ablation.jsonl")
    summ.set_defaults(func=summary)
    args = parser.parse_args()
    print(f"machine: {machine_info()}", file=sys.stderr)
    args.func(args)


if __name__ == "__main__":
    main()
