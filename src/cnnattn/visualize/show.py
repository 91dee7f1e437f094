"""``show``: one picture grid of what models attend to, a row per image and a column per (model, method).

Methods: ``attention`` (a captured map: see :func:`spatial_attention`), ``offsets`` (DAS sampling points
traced through the stacked gates, deepest first, from the deepest gate's most-attended position), and the CAMs
``gradcam``, ``gradcampp``, ``eigencam`` (:mod:`.cam`). Each cell: the map over the image with a colour bar,
the layer, the predicted class and score, and the true class where the data has one. Detector checkpoints get
``eigencam`` on their feature pyramid with their detected boxes drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ..data.samples import Sample
from .capture import Maps, attention_named_modules, capture, default_layer, spatial_attention
from .sampling import deform_layers, to_image, trace

if TYPE_CHECKING:  # matplotlib loads when a figure is drawn, not with the CLI
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["METHODS", "Cell", "Subject", "attention_cells", "grid_figure", "model_subject", "render"]

METHODS = ("attention", "offsets", "gradcam", "gradcampp", "eigencam")


@dataclass
class Subject:
    """A model to look at: its column label, the model (eval mode), class names, input side, and whether it is a
    detector (boxes drawn, CAMs on its feature pyramid)."""

    label: str
    model: nn.Module
    classes: list[str]
    img_size: int
    detects: bool = False


@dataclass
class Cell:
    """What one grid cell shows: a map (h, w), traced points (N, 2) (y, x) with per-point levels, boxes
    (x1, y1, x2, y2 in shown pixels, caption), and text."""

    title: str
    heat: np.ndarray | None = None
    points: list[np.ndarray] = field(default_factory=list)
    boxes: list[tuple[list[float], str]] = field(default_factory=list)
    note: str = ""


def model_subject(model: str, img_size: int | None = None, num_classes: int = 10) -> Subject:
    """An untrained model by name (``cnnattn show --model``); a trained run's is
    :func:`cnnattn.engine.trained.trained_subject`."""
    from ..models import create_model

    network = create_model(model, num_classes=num_classes).eval()
    return Subject(model, network, [str(i) for i in range(num_classes)], img_size or 224)


def _caption(subject: Subject, probs: torch.Tensor, sample: Sample, layer: str) -> str:
    score, index = probs.max(dim=0)
    truth = f" · true {subject.classes[sample.label]}" if sample.label is not None else ""
    return f"{subject.label} · {layer}\npred {subject.classes[index]} {100 * float(score):.0f} %{truth}"


def attention_cells(subject: Subject, samples: Sequence[Sample], method: str, layer: str | None,
                    target: int | None = None) -> tuple[list[Cell], dict[str, np.ndarray]]:  # fmt: skip
    """One cell per sample for ``subject`` and ``method``, and the raw maps by name (for ``--npz``)."""
    if subject.detects:
        return _detection_cells(subject, samples, method)
    batch = torch.stack([s.tensor for s in samples])
    with torch.no_grad(), capture(subject.model) as maps:
        probs = subject.model(batch).float().softmax(dim=-1)
    if method in ("gradcam", "gradcampp", "eigencam"):
        from .cam import class_activation_maps

        classes = None if target is None else [target] * len(samples)
        result = class_activation_maps(subject.model, batch, method, classes, layer)
        cells = [
            Cell(_caption(subject, p, s, result.layer), heat=m)
            for p, s, m in zip(probs, samples, result.maps, strict=True)
        ]
        return cells, {f"{subject.label}/{method}": result.maps}
    if method == "offsets":
        return _offset_cells(subject, samples, maps, probs)
    name = layer or default_layer(maps, len(samples))
    if name is None or name not in maps:
        known = ", ".join(n for n, _ in attention_named_modules(subject.model)) or "none"
        note = f"no spatial attention map (attention modules: {known})" if layer is None else f"{layer}: not captured"
        return [Cell(_caption(subject, p, s, "—"), note=note) for p, s in zip(probs, samples, strict=True)], {}
    heat = spatial_attention(maps[name], len(samples))
    if heat is None:
        return [
            Cell(_caption(subject, p, s, name), note=f"{name} has no spatial map")
            for p, s in zip(probs, samples, strict=True)
        ], {}
    cells = [
        Cell(_caption(subject, p, s, name), heat=h.cpu().numpy()) for p, s, h in zip(probs, samples, heat, strict=True)
    ]
    return cells, {f"{subject.label}/attention/{name}/{k}": v.cpu().numpy() for k, v in maps[name].items()}


DETECTION_MIN_SCORE = 0.5  # boxes drawn on detector cells
DETECTION_MAX_BOXES = 5


def _detection_cells(subject: Subject, samples: Sequence[Sample],
                     method: str) -> tuple[list[Cell], dict[str, np.ndarray]]:  # fmt: skip
    """EigenCAM of a detector's feature pyramid with its boxes (score ≥ 0.5, at most 5) on each image."""
    from .cam import detection_activation_maps

    images = torch.stack([torch.from_numpy(s.pixels).permute(2, 0, 1).float() / 255 for s in samples])
    result = detection_activation_maps(subject.model, images, method)
    cells = []
    for heat, found in zip(result.maps, result.detections, strict=True):
        keep = (found["scores"] >= DETECTION_MIN_SCORE).nonzero().flatten()[:DETECTION_MAX_BOXES].tolist()
        boxes = [(found["boxes"][i].tolist(), _box_caption(subject.classes, found, i)) for i in keep]
        title = f"{subject.label} · {result.layer} (FPN) {method}\n{len(boxes)} box(es) ≥ {DETECTION_MIN_SCORE:.0%}"
        cells.append(Cell(title, heat=heat, boxes=boxes))
    return cells, {f"{subject.label}/{method}": result.maps}


def _box_caption(classes: Sequence[str], found: dict[str, torch.Tensor], index: int) -> str:
    """``class score %`` of detection ``index`` (torchvision labels count the background as 0)."""
    return f"{classes[int(found['labels'][index]) - 1]} {100 * float(found['scores'][index]):.0f} %"


def _offset_cells(subject: Subject, samples: Sequence[Sample], maps: Maps,
                  probs: torch.Tensor) -> tuple[list[Cell], dict[str, np.ndarray]]:  # fmt: skip
    size = tuple(samples[0].tensor.shape[-2:])
    cells, raw = [], {}
    for index, (sample, p) in enumerate(zip(samples, probs, strict=True)):
        layers = deform_layers(subject.model, maps, size, index)
        if not layers:
            cells.append(Cell(_caption(subject, p, sample, "—"), note="no deformable gate (DAS) in this model"))
            continue
        deepest = next(n for n in reversed(list(maps)) if "offsets" in maps[n])
        gate = maps[deepest]["gate"][index].mean(dim=0)
        row, col = divmod(int(gate.argmax()), gate.shape[-1])
        start = (to_image(float(row), layers[0].input_stride), to_image(float(col), layers[0].input_stride))
        levels = trace(layers[:2], start)  # two levels: k² + k⁴ points, readable on one image
        cells.append(Cell(_caption(subject, p, sample, f"{deepest} → 2 levels"),
                          points=[lv["points"].numpy() for lv in levels]))  # fmt: skip
        raw.update(
            {f"{subject.label}/offsets/{sample.name}/level{i}": lv["points"].numpy() for i, lv in enumerate(levels)}
        )
    return cells, raw


def grid_figure(samples: Sequence[Sample], columns: Sequence[list[Cell]]) -> Figure:
    """The grid (rows: samples; columns: cell lists) as a matplotlib figure, 3.2 × 3.4 inches per cell."""
    from ..analysis.plots import new_figure

    rows, cols = len(samples), len(columns)
    fig = new_figure(3.2 * cols, 3.4 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for r, sample in enumerate(samples):
        for c, column in enumerate(columns):
            _draw(fig, axes[r][c], sample, column[r])
    fig.tight_layout()
    return fig


def render(samples: Sequence[Sample], columns: Sequence[list[Cell]], path: str | Path) -> Path:
    """Draw the grid (rows: samples; columns: cell lists) to a PNG at ``path``."""
    from ..analysis.plots import save_figure

    return save_figure(grid_figure(samples, columns), path)


def _draw(fig: Figure, ax: Axes, sample: Sample, cell: Cell) -> None:
    from matplotlib.patches import Rectangle

    height, width = sample.pixels.shape[:2]
    ax.imshow(sample.pixels)
    if cell.heat is not None:
        heat = torch.nn.functional.interpolate(torch.as_tensor(cell.heat)[None, None].float(), size=(height, width),
                                               mode="bilinear", align_corners=False)[0, 0].numpy()  # fmt: skip
        shown = ax.imshow(heat, cmap="jet", alpha=0.5)
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    for level, points in enumerate(cell.points):
        ax.scatter(points[:, 1], points[:, 0], s=14 if level else 40, c="red" if level else "yellow",
                   edgecolors="black", linewidths=0.5)  # fmt: skip
    for (bx1, by1, bx2, by2), caption in cell.boxes:
        ax.add_patch(Rectangle((bx1, by1), bx2 - bx1, by2 - by1, fill=False, edgecolor="yellow", linewidth=1.2))
        ax.text(bx1, by1, caption, fontsize=6, color="black", va="bottom", bbox={"facecolor": "yellow", "pad": 1})
    if sample.box is not None:
        x1, y1, x2, y2 = sample.box
        ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, edgecolor="white", linestyle="--"))
    if cell.note:
        ax.text(0.5, 0.5, cell.note, ha="center", va="center", wrap=True, fontsize=7, transform=ax.transAxes,
                bbox={"facecolor": "white", "alpha": 0.8})  # fmt: skip
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_title(cell.title, fontsize=7)
    ax.axis("off")


def eam_radii(model: nn.Module) -> dict[str, list[float]]:
    """The learned σ (pixels of each layer's input) of every explicit-attention (EAM) layer, by module name."""
    from ..attention.eam import ExplicitAttentionConv2d

    return {n: m.radius.detach().tolist() for n, m in model.named_modules() if isinstance(m, ExplicitAttentionConv2d)}


def plot_radii(radii: dict[str, dict[str, list[float]]], path: str | Path) -> Path:
    """Learned EAM radius per layer (one line per model; several radii of a layer are averaged)."""
    from ..analysis.plots import new_figure, save_figure

    fig = new_figure(6.4, 3.6, dpi=120)
    ax = fig.subplots()
    for label, layers in radii.items():
        ax.plot(range(len(layers)), [float(np.mean(v)) for v in layers.values()], marker="o", label=label)
        ax.set_xticks(range(len(layers)), list(layers), rotation=45, ha="right", fontsize=7)
    ax.set(ylabel="σ (input pixels)", title="learned explicit-attention radius per layer")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
