"""Wall-clock timing with warm-up and repeats, peak memory, and a description of the machine."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = [
    "Timing",
    "machine_info",
    "peak_rss_bytes",
    "rss_baseline",
    "time_fn",
    "time_interleaved",
    "time_models",
]  # fmt: skip


@dataclass(frozen=True)
class Timing:
    """Seconds per call over repeated runs: median and the 25th/75th percentiles."""

    median: float
    p25: float
    p75: float
    repeats: int

    def __str__(self) -> str:
        return f"{self.median * 1e3:.1f} ms (IQR {self.p25 * 1e3:.1f}–{self.p75 * 1e3:.1f}, n={self.repeats})"


def _clock(fn: Callable[[], object], sync: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def time_fn(
    fn: Callable[[], object], *, warmup: int = 2, repeats: int = 7, device: torch.device | None = None
) -> Timing:
    """Time ``fn()``; CUDA work is synchronised before each clock read."""
    return time_interleaved({"fn": fn}, warmup=warmup, repeats=repeats, device=device)["fn"]


def time_interleaved(
    fns: dict[str, Callable[[], object]], *, warmup: int = 2, repeats: int = 7, device: torch.device | None = None
) -> dict[str, Timing]:
    """Time several functions side by side: all warm up first, then runs alternate round-robin.

    Alternation keeps slow drifts (clock boost, the allocator's state after large frees) from favouring
    whichever function happens to run last.
    """
    sync = torch.cuda.synchronize if device is not None and device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    sync()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(_clock(fn, sync))
    return {name: _summary(values) for name, values in samples.items()}


def time_models(
    models: dict[str, torch.nn.Module], x: torch.Tensor, mode: str, *, repeats: int = 5
) -> dict[str, Timing]:
    """Time several models on one input side by side (:func:`time_interleaved`): ``mode="infer"`` runs them in eval
    mode without autograd, ``"train"`` a training-mode forward and backward of the output's sum (no optimiser)."""
    if mode == "infer":
        fns = {name: (lambda m=m: m.eval()(x)) for name, m in models.items()}
        with torch.no_grad():
            return time_interleaved(fns, repeats=repeats)
    if mode == "train":
        fns = {name: (lambda m=m: m.train()(x).sum().backward()) for name, m in models.items()}
        return time_interleaved(fns, warmup=1, repeats=repeats)
    raise ValueError(f"time_models: mode must be 'infer' or 'train'; got {mode!r}.")


def _summary(samples: list[float]) -> Timing:
    q = statistics.quantiles(samples, n=4) if len(samples) > 1 else samples * 3
    return Timing(statistics.median(samples), q[0], q[2], len(samples))


def _proc_status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith(key)), None)
    except OSError:
        return None


def rss_baseline() -> int:
    """Reset the peak-RSS mark where Linux allows it and return the current resident size (bytes).

    Use ``peak_rss_bytes() - rss_baseline()`` (baseline taken first) for the peak growth of a block of work.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
    except OSError:
        pass
    current = _proc_status_kib("VmRSS")
    return current * 1024 if current is not None else peak_rss_bytes()


def peak_rss_bytes() -> int:
    """Peak resident set size since the last :func:`rss_baseline` (or since start), in bytes."""
    hwm = _proc_status_kib("VmHWM")
    return hwm * 1024 if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), platform.processor())
    except OSError:
        return platform.processor()


def machine_info() -> dict[str, object]:
    """CPU, cores, threads, GPU and library versions, to record beside every benchmark."""
    info: dict[str, object] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info
