"""``export``: a model to ONNX, a ``torch.export`` program (.pt2), TorchScript or the Hub layout (``hf``: a folder
of ``config.json``, ``model.safetensors`` and a model card, :mod:`cnnattn.deploy.hub`), verified against eager PyTorch.

After writing, the artefact is loaded back in its own runtime (onnxruntime, ``torch.export.load``,
``torch.jit.load``) and run on random input of the export size and, when dynamic, of a second batch and size;
the largest absolute difference to the eager model must stay within ``tolerance`` (1e-4 for fp32), else
:class:`ExportError`. A Hub-layout folder is loaded back with ``timm.create_model("local-dir:DIR", pretrained=True)``.
Classification models export to every format. Detectors: TorchScript only (torchvision
scripts its detectors; ``torch.export`` and ONNX cannot express their data-dependent post-processing), and only
with scriptable attention (the gates; AA, AW and EAM refuse scripting).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["FORMATS", "ExportError", "ExportResult", "export"]

FORMATS = ("onnx", "pt2", "torchscript", "hf")
SUFFIXES = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".pt", "hf": ""}


class ExportError(RuntimeError):
    """The export failed or its artefact disagrees with eager PyTorch."""


@dataclass
class ExportResult:
    """What was written and how well it agrees with eager PyTorch (max |difference| over every checked input)."""

    path: str
    format: str
    runtime: str
    checked_shapes: list[tuple[int, ...]]
    max_abs_diff: float
    dynamic_batch: bool
    dynamic_size: bool

    def to_dict(self) -> dict:
        return asdict(self)


def _is_detector(model: nn.Module) -> bool:
    return hasattr(model, "transform") and hasattr(model, "backbone")


def _dynamic_shapes(dynamic_batch: bool, dynamic_size: bool) -> tuple[dict[int, object]] | None:
    auto = torch.export.Dim.AUTO
    axes = ([0] if dynamic_batch else []) + ([2, 3] if dynamic_size else [])
    return ({axis: auto for axis in axes},) if axes else None


def _check_shapes(shape: tuple[int, ...], dynamic_batch: bool, dynamic_size: bool) -> list[tuple[int, ...]]:
    batch, channels, height, width = shape
    shapes = [shape]
    if dynamic_batch or dynamic_size:
        other = (batch + 1 if dynamic_batch else batch, channels) + (
            (height + 32, width + 16) if dynamic_size else (height, width)
        )
        shapes.append(other)
    return shapes


def write_onnx(model: nn.Module, x: torch.Tensor, path: Path, dynamic: tuple | None = None, opset: int | None = None
               ) -> Callable[[torch.Tensor], np.ndarray]:  # fmt: skip
    """Export ``model`` at the example ``x`` to ONNX (dynamo exporter) and return a runner of the file in an
    onnxruntime CPU session: (B, C, H, W) tensor → output array."""
    import onnxruntime

    torch.onnx.export(model, (x,), str(path), dynamo=True, dynamic_shapes=dynamic, opset_version=opset,
                      verbose=False, external_data=False)  # fmt: skip
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda t: session.run(None, {name: t.numpy()})[0]


def _write_pt2(model: nn.Module, x: torch.Tensor, path: Path, dynamic: tuple | None, strict: bool
               ) -> Callable[[torch.Tensor], np.ndarray]:  # fmt: skip
    program = torch.export.export(model, (x,), dynamic_shapes=dynamic, strict=strict)
    torch.export.save(program, str(path))
    loaded = torch.export.load(str(path)).module()
    return lambda t: loaded(t).detach().numpy()


def _write_torchscript(model: nn.Module, x: torch.Tensor, path: Path) -> tuple[Callable, str]:
    """Scripted where the model allows it (control flow kept), else traced; returns the runner and which. A
    scripted torchvision detector returns (losses, detections): the runner gives the first image's boxes."""
    try:
        scripted, how = torch.jit.script(model), "scripted"
    except Exception as err:  # any scripting failure falls back to tracing
        if _is_detector(model):
            raise ExportError(
                f"this detector cannot be scripted ({str(err).splitlines()[0]}); detectors export to TorchScript "
                "only with scriptable attention (gates such as se, cbam, das)."
            ) from None
        scripted, how = torch.jit.trace(model, (x,), check_trace=False), "traced"
    scripted.save(str(path))
    loaded = torch.jit.load(str(path))
    if _is_detector(model):
        return (lambda images: loaded(images)[1][0]["boxes"].numpy()), how
    return (lambda t: loaded(t).detach().numpy()), how


def _write_hub_layout(model: nn.Module, path: Path, hub: dict | None) -> Callable[[torch.Tensor], np.ndarray]:
    import timm

    from .hub import save_hub_layout

    save_hub_layout(model, path, **(hub or {}))
    loaded = timm.create_model(f"local-dir:{path}", pretrained=True).eval()
    return lambda t: loaded(t).numpy()


@torch.no_grad()
def export(
    model: nn.Module,
    output: str | Path,
    format: str = "onnx",
    *,
    img_size: int = 224,
    batch_size: int = 2,
    dynamic_batch: bool = False,
    dynamic_size: bool = False,
    opset: int | None = None,
    strict: bool = False,
    tolerance: float = 1e-4,
    hub: dict | None = None,
) -> ExportResult:
    """Export a classification ``model`` (eval mode) and verify the artefact (see module docs).

    Args:
        model: A classifier taking (B, 3, H, W); a detector for ``format='torchscript'`` only.
        output: File to write (its suffix is not changed); for ``hf`` a folder.
        format: ``onnx`` (dynamo exporter, run in onnxruntime), ``pt2`` (``torch.export``), ``torchscript``, or
            ``hf`` (the Hub layout; the size and batch are free, checked at ``img_size`` and one more).
        img_size, batch_size: The example input's side and batch.
        dynamic_batch, dynamic_size: Leave the batch / the height and width free in the artefact.
        opset: ONNX opset (default: the exporter's).
        strict: ``torch.export`` in strict mode (TorchDynamo tracing) rather than non-strict (Python tracing).
        tolerance: Largest allowed absolute difference to eager PyTorch.
        hub: With ``hf``: keywords of :func:`cnnattn.deploy.hub.save_hub_layout` (``card``, ``data_config``).
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {format!r}.")
    detector = _is_detector(model)
    if format == "hf":
        dynamic_batch = dynamic_size = True
    if detector and format != "torchscript":
        raise ValueError(
            f"detectors export to torchscript only: torch.export and ONNX cannot express torchvision's "
            f"data-dependent detection post-processing; got format {format!r}."
        )
    model = model.eval()
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = torch.randn(batch_size, _in_chans(model), img_size, img_size)
    dynamic = _dynamic_shapes(dynamic_batch, dynamic_size)
    try:
        if format == "onnx":
            import onnxruntime

            run, runtime = write_onnx(model, x, path, dynamic, opset), f"onnxruntime {onnxruntime.__version__}"
        elif format == "hf":
            run, runtime = _write_hub_layout(model, path, hub), "timm.create_model('local-dir:...')"
        elif format == "pt2":
            run, runtime = _write_pt2(model, x, path, dynamic, strict), f"torch.export.load (torch {torch.__version__})"
        else:
            run, how = _write_torchscript(model, x, path)
            runtime = f"torch.jit.load ({how}, torch {torch.__version__})"
    except ImportError as err:
        raise ImportError(f"ONNX export needs onnx, onnxscript and onnxruntime: pip install \"cnnattn[deploy]\" ({err})"
                          ) from None  # fmt: skip
    return _verify(model, run, path, format, runtime, x.shape, dynamic_batch, dynamic_size, tolerance, detector)


def _in_chans(model: nn.Module) -> int:
    return (getattr(model, "pretrained_cfg", None) or {}).get("input_size", (3,))[0]


def _verify(model: nn.Module, run: Callable, path: Path, format: str, runtime: str, shape: torch.Size,
            dynamic_batch: bool, dynamic_size: bool, tolerance: float, detector: bool) -> ExportResult:  # fmt: skip
    shapes = [tuple(shape)] if detector else _check_shapes(tuple(shape), dynamic_batch, dynamic_size)
    worst = 0.0
    for check in shapes:
        x = torch.randn(*check)
        if detector:
            expected, got = model([x[0]])[0]["boxes"].numpy(), run([x[0]])  # type: ignore[arg-type]
        else:
            expected, got = model(x).numpy(), run(x)
        if got.shape != expected.shape:
            raise ExportError(f"{path}: output shape {got.shape} at input {check}, eager PyTorch {expected.shape}.")
        worst = max(worst, float(np.abs(got - expected).max(initial=0.0)))
    if not worst <= tolerance:
        raise ExportError(f"{path}: differs from eager PyTorch by {worst:.3g} (> {tolerance:g}) on inputs {shapes}.")
    return ExportResult(str(path), format, runtime, shapes, worst, dynamic_batch, dynamic_size)
