"""Does the data pipeline keep up with CPU training? Loader images/s against model train-step images/s.

Reads the CIFAR-10 zip in place (../shared/data/cifar10-jpg.zip) through the same loader ``cnnattn train``
uses (seeded augmentation, skipping collate), for several worker counts; times forward + backward + SGD
step of a model on random batches of the same shape; and times the two together (loader-fed steps), which
shows whether the loader starves training. Each figure is the median of ``--repeats``
passes of ``--batches`` batches; loader passes start after the workers have warmed up.

    python benchmarks/data_throughput.py --model resnet18 --img-size 32 --batch-size 128 --workers 0,1,2
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from cnnattn.analysis import machine_info
from cnnattn.analysis.bench import make_step
from cnnattn.data import ClassificationData
from cnnattn.models import create_model
from cnnattn.utils import format_table

DEFAULT_ZIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpg.zip"


def loader_rate(data: str, img_size: int, batch_size: int, workers: int, batches: int, repeats: int) -> float:
    """Median images/s of the training loader over ``repeats`` passes of ``batches`` batches."""
    module = ClassificationData(data, img_size, batch_size, workers)
    iterator = iter(module.train_dataloader())
    next(iterator)  # start the workers
    rates = []
    for _ in range(repeats):
        start, images = time.perf_counter(), 0
        for _ in range(batches):
            images += len(next(iterator)[1])
        rates.append(images / (time.perf_counter() - start))
    return statistics.median(rates)


def model_rate(model_name: str, img_size: int, batch_size: int, batches: int, repeats: int) -> float:
    """Median images/s of training steps (forward, cross-entropy, backward, SGD) on random batches."""
    model = create_model(model_name, num_classes=10)
    step = make_step(model, torch.randn(batch_size, 3, img_size, img_size), "train", amp=False)
    step()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(batches):
            step()
        rates.append(batches * batch_size / (time.perf_counter() - start))
    return statistics.median(rates)


def pipeline_rate(
    data: str, model_name: str, img_size: int, batch_size: int, workers: int, batches: int, repeats: int
) -> float:
    """Median images/s of training steps fed by the loader (what a run gets: both share the cores)."""
    model = create_model(model_name, num_classes=10).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    iterator = iter(ClassificationData(data, img_size, batch_size, workers).train_dataloader())
    rates = []
    for repeat in range(repeats + 1):  # the first pass warms up workers and kernels
        start, images = time.perf_counter(), 0
        for _ in range(batches):
            x, y = next(iterator)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            images += len(y)
        if repeat:
            rates.append(images / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_ZIP))
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", default="0,1,2", help="comma-separated worker counts")
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = model_rate(args.model, args.img_size, args.batch_size, args.batches, args.repeats)
    rows = [(f"{args.model} train step", "—", f"{model:.0f}", "1.00")]
    for workers in (int(w) for w in args.workers.split(",")):
        rate = loader_rate(args.data, args.img_size, args.batch_size, workers, args.batches, args.repeats)
        rows.append(("loader alone", workers, f"{rate:.0f}", f"{rate / model:.2f}"))
        both = pipeline_rate(args.data, args.model, args.img_size, args.batch_size, workers, args.batches, args.repeats)
        rows.append(("loader + train step", workers, f"{both:.0f}", f"{both / model:.2f}"))
    print(f"machine: {machine_info()}; {args.img_size}² px, batch {args.batch_size}, medians of {args.repeats}\n")
    print(format_table(("pipeline", "workers", "images/s", "× model"), rows))


if __name__ == "__main__":
    main()
