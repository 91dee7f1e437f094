"""``cnnattn bench``: latency, throughput and peak memory of several models, side by side.

All models are timed in one process, interleaved round-robin after a shared warm-up (medians and
quartiles); CUDA work is synchronised. ``runtimes`` times each model in several runtimes in the same
interleaved run: ``eager`` PyTorch, ``compile`` (``torch.compile``, inductor; the warm-up compiles) and
``onnxruntime`` (the model exported to ONNX and run in an onnxruntime CPU session; inference only). With
``detector`` each name is a backbone of that torchvision detector (built by
:func:`~cnnattn.models.create_detector` at ``img_size`` for both min and max size, its default
``trainable_layers``); a training step then sums the detector's losses on one centred box per image.
Peak memory: CUDA max allocated during one step, or on CPU the growth of peak resident memory over one step
measured in a fresh process per model (eager entries only).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..models import create_detector, create_model
from ..utils import format_table
from .complexity import count_macs, count_params
from .isolated import run_isolated
from .timing import peak_rss_bytes, rss_baseline, time_interleaved

__all__ = ["RUNTIMES", "BenchResult", "bench", "bench_model", "bench_table", "dynamo_room"]

MODES = ("infer", "train")
RUNTIMES = ("eager", "compile", "onnxruntime")


@dataclass
class BenchResult:
    """One model's measurements; ``ratio`` is its median latency over the first model's in the same runtime
    (what the model costs beside the first one), ``vs_eager`` its median over its own eager median (what the runtime
    buys; None for eager entries and where eager was not timed)."""

    model: str
    batch_size: int
    img_size: int
    device: str
    mode: str
    threads: int
    median_ms: float
    p25_ms: float
    p75_ms: float
    throughput: float
    params: int
    macs: int
    peak_memory_mb: float | None = None
    ratio: float = 1.0
    detector: str | None = None
    runtime: str = "eager"
    vs_eager: float | None = None

    @property
    def label(self) -> str:
        """The model, with its runtime unless eager."""
        return self.model if self.runtime == "eager" else f"{self.model} ({self.runtime})"

    def to_dict(self) -> dict:
        return asdict(self)


def _autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    if not amp:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if device.type == "cpu" else torch.float16)


def _loss_fn(model: nn.Module, x: torch.Tensor, detection: bool) -> Callable[[], torch.Tensor]:
    """The training loss of one batch: cross-entropy to class 0, or a detector's summed losses on one box
    covering the central half of each image (class 1)."""
    if not detection:
        target = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        return lambda: F.cross_entropy(model(x), target)
    h, w = x.shape[-2:]
    box = torch.tensor([[w / 4, h / 4, 3 * w / 4, 3 * h / 4]], device=x.device)
    label = torch.ones(1, dtype=torch.long, device=x.device)
    targets = [{"boxes": box, "labels": label} for _ in range(x.shape[0])]
    return lambda: sum(model(list(x), targets).values())


def make_step(model: nn.Module, x: torch.Tensor, mode: str, amp: bool, detection: bool = False) -> Callable[[], None]:
    """One inference forward (no grad) or one training step (forward, loss, backward, SGD); ``detection``: the
    model is a torchvision detector, given the batch as a list of images."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}.")
    if mode == "infer":
        model.eval()
        inputs = list(x) if detection else x

        def infer() -> None:
            with torch.no_grad(), _autocast(x.device, amp):
                model(inputs)

        return infer
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    loss_fn = _loss_fn(model, x, detection)

    def train() -> None:
        with _autocast(x.device, amp):
            loss = loss_fn()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return train


def bench_model(name: str, num_classes: int, img_size: int, detector: str | None = None,
                model_kwargs: dict | None = None) -> nn.Module:  # fmt: skip
    """The model ``name`` with ``num_classes`` outputs, or the ``detector`` on backbone ``name`` resizing every
    image to ``img_size`` (``num_classes`` then counts the background); ``model_kwargs`` go to the (backbone)
    model, e.g. ``{'stem': 'cifar'}``."""
    if detector:
        return create_detector(
            detector, name, num_classes, min_size=img_size, max_size=img_size, backbone_kwargs=model_kwargs
        )
    return create_model(name, num_classes=num_classes, **(model_kwargs or {}))


def _prepare(
    name: str,
    batch_size: int,
    img_size: int,
    device: str,
    channels_last: bool,
    compile: bool,
    num_classes: int = 1000,
    detector: str | None = None,
    model_kwargs: dict | None = None,
) -> tuple[nn.Module, torch.Tensor]:
    dev = torch.device(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = bench_model(name, num_classes, img_size, detector, model_kwargs).to(dev, memory_format=memory_format)
    x = torch.randn(batch_size, 3, img_size, img_size, device=dev).contiguous(memory_format=memory_format)
    return (torch.compile(model, dynamic=False) if compile else model), x  # one input shape: no dynamic graph


def _check_runtimes(runtimes: Sequence[str], mode: str, amp: bool, device: str, detector: str | None) -> None:
    """ValueError for a runtime that does not exist or cannot run this request."""
    for runtime in runtimes:
        if runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}.")
    if "onnxruntime" in runtimes and (mode != "infer" or amp or detector or not device.startswith("cpu")):
        raise ValueError(
            "runtime onnxruntime times fp32 inference of classifiers on the CPU: use --mode infer and --device cpu, "
            "without --amp or --detector."
        )


def dynamo_room(compiled: int) -> contextlib.AbstractContextManager:
    """Room in ``torch._dynamo``'s cache for ``compiled`` models compiled side by side: instances of one class (every
    timm ResNet) share their ``forward``'s cache entries, and past its limit (8 by default) dynamo silently runs the
    later models eager. Inside, the limit is at least 8 entries per model."""
    if not compiled:
        return contextlib.nullcontext()
    limit = max(torch._dynamo.config.recompile_limit, 8 * compiled)
    return torch._dynamo.config.patch(recompile_limit=limit)


def _onnxruntime_step(model: nn.Module, x: torch.Tensor, path: Path) -> Callable[[], None]:
    """One inference of ``model`` exported to ONNX at ``path`` (fixed input shape) in an onnxruntime CPU
    session."""
    from ..deploy.export import write_onnx

    with torch.no_grad():
        run = write_onnx(model.eval(), x, path)
    return lambda: run(x)


def cpu_step_memory(
    name: str,
    batch_size: int,
    img_size: int,
    mode: str,
    channels_last: bool,
    amp: bool,
    num_classes: int = 1000,
    detector: str | None = None,
    model_kwargs: dict | None = None,
) -> dict:
    """Growth of peak RSS over two steps of one model (run in a fresh process by :func:`bench`)."""
    model, x = _prepare(name, batch_size, img_size, "cpu", channels_last, False, num_classes, detector, model_kwargs)
    step = make_step(model, x, mode, amp, detection=detector is not None)
    base = rss_baseline()
    step()
    step()
    return {"peak_memory_mb": (peak_rss_bytes() - base) / 2**20}


def bench(
    names: Sequence[str],
    *,
    batch_size: int = 1,
    img_size: int = 224,
    device: str = "cpu",
    mode: str = "infer",
    channels_last: bool = False,
    compile: bool = False,
    amp: bool = False,
    warmup: int = 3,
    repeats: int = 10,
    memory: bool = True,
    num_classes: int = 1000,
    detector: str | None = None,
    runtimes: Sequence[str] | None = None,
    model_kwargs: dict | None = None,
) -> list[BenchResult]:
    """Benchmark cnnattn/timm model names side by side (see module docs); models get ``num_classes`` outputs.
    ``detector`` (``fasterrcnn``, ``retinanet``, ``fcos``): time that detector on each backbone name instead.
    ``runtimes``: any of ``RUNTIMES``, each model in each (default: ``eager`` and ``compile`` side by side if
    ``compile``, else ``eager``);
    peak memory is measured for eager entries only. ``model_kwargs`` go to every model (a detector's backbone),
    e.g. ``{'stem': 'cifar'}``."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA device is available; use --device cpu.")
    runtimes = list(runtimes or (["eager", "compile"] if compile else ["eager"]))
    _check_runtimes(runtimes, mode, amp, device, detector)
    dev = torch.device(device)
    entries = [(name, runtime) for name in names for runtime in runtimes]
    prepared = {
        (name, runtime): _prepare(
            name, batch_size, img_size, device, channels_last, runtime == "compile", num_classes, detector, model_kwargs
        )
        for name, runtime in entries
    }
    with tempfile.TemporaryDirectory(prefix="cnnattn-bench-") as folder:  # the ONNX files, loaded into sessions
        steps = {
            entry: _onnxruntime_step(model, x, Path(folder, f"{i}.onnx"))
            if entry[1] == "onnxruntime"
            else make_step(model, x, mode, amp, detector is not None)
            for i, (entry, (model, x)) in enumerate(prepared.items())
        }
    with dynamo_room(sum(runtime == "compile" for _, runtime in entries)):
        timings = time_interleaved(steps, warmup=warmup, repeats=repeats, device=dev)
    results = []
    for (name, runtime), (model, _) in prepared.items():
        t = timings[(name, runtime)]
        plain = getattr(model, "_orig_mod", model)
        results.append(
            BenchResult(
                name,
                batch_size,
                img_size,
                str(dev),
                mode,
                torch.get_num_threads(),
                t.median * 1e3,
                t.p25 * 1e3,
                t.p75 * 1e3,
                batch_size / t.median,
                count_params(plain),
                count_macs(plain, (3, img_size, img_size)),
                detector=detector,
                runtime=runtime,
            )
        )
    if memory:
        for result in results:
            if result.runtime == "eager":
                step = steps[(result.model, result.runtime)]
                result.peak_memory_mb = _peak_memory(
                    result, channels_last, amp, step, dev, num_classes, detector, model_kwargs
                )
    _set_ratios(results)
    return results


def _set_ratios(results: Sequence[BenchResult]) -> None:
    """``ratio`` against the first model in the same runtime, ``vs_eager`` against the same model in eager."""
    first = {r.runtime: r for r in reversed(results)}
    eager = {r.model: r for r in results if r.runtime == "eager"}
    for result in results:
        result.ratio = result.median_ms / first[result.runtime].median_ms
        if result.runtime != "eager" and result.model in eager:
            result.vs_eager = result.median_ms / eager[result.model].median_ms


def _peak_memory(
    result: BenchResult,
    channels_last: bool,
    amp: bool,
    step: Callable[[], None],
    device: torch.device,
    num_classes: int,
    detector: str | None,
    model_kwargs: dict | None = None,
) -> float:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 2**20
    return run_isolated(
        "cnnattn.analysis.bench.cpu_step_memory",
        dict(
            name=result.model,
            batch_size=result.batch_size,
            img_size=result.img_size,
            mode=result.mode,
            channels_last=channels_last,
            amp=amp,
            num_classes=num_classes,
            detector=detector,
            model_kwargs=model_kwargs,
        ),
    )["peak_memory_mb"]


def bench_table(results: Sequence[BenchResult]) -> str:
    """Markdown table of results (one row per model, runtime and batch size): "× first model" in the same runtime,
    and "× eager" (the same model) when more than one runtime was timed."""
    runtimes = len({r.runtime for r in results}) > 1
    rows = [
        (
            r.label,
            r.batch_size,
            f"{r.params / 1e6:.2f}",
            f"{r.macs / 1e9:.3f}",
            f"{r.median_ms:.1f} ({r.p25_ms:.1f}–{r.p75_ms:.1f})",
            f"{r.throughput:.1f}",
            "—" if r.peak_memory_mb is None else f"{r.peak_memory_mb:.0f}",
            f"{r.ratio:.2f}×",
            *([] if not runtimes else ["—" if r.vs_eager is None else f"{r.vs_eager:.2f}×"]),
        )
        for r in results
    ]
    headers = ("model", "batch", "params (M)", "GMACs", "latency ms (IQR)", "img/s", "peak MB", "× first model")
    return format_table(headers + (("× eager",) if runtimes else ()), rows)
