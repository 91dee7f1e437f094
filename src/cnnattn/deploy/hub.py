"""Weights in the Hub layout timm users publish and load: ``config.json`` + ``model.safetensors`` + ``README.md``.

:func:`save_hub_layout` writes a folder with timm's ``save_for_hf`` (the model's name as ``architecture``, the
keywords that rebuild it as ``model_args``, its ``pretrained_cfg``), adds what cnnattn knows of the model under
``"cnnattn"`` (version, each attention's placement and arguments) and a model card. After ``import cnnattn``,
``timm.create_model("local-dir:DIR", pretrained=True)`` and ``cnnattn.create_model("local-dir:DIR")`` rebuild
the model with these weights. To publish the folder: ``huggingface_hub.upload_folder(repo_id=..., folder_path=DIR)``
(or timm's ``push_to_hf_hub`` on the loaded model); it then loads as ``hf-hub:user/repo``.
"""

from __future__ import annotations

import inspect
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from torch import nn

__all__ = ["model_card", "save_hub_layout"]

CARD_TAGS = ["image-classification", "timm", "cnnattn"]


def _placements(model: nn.Module) -> list[dict[str, Any]]:
    """Each ``attach`` record as JSON values (a non-JSON argument, such as a layer class, by its ``str``)."""
    fields = ("attention", "position", "stages", "kwargs", "replace_builtin")
    records = [{k: v for k, v in asdict(p).items() if k in fields} for p in getattr(model, "cnnattn_placements", [])]
    return json.loads(json.dumps(records, default=str))


def _attention_notes(model: nn.Module) -> list[str]:
    """The first two paragraphs of each placed attention's module docstring: the paper, what it gives, what is
    assumed."""
    from ..attention.registry import get_attention_info

    notes = []
    for name in dict.fromkeys(p["attention"] for p in _placements(model)):
        doc = inspect.getdoc(sys.modules[get_attention_info(name).factory.__module__]) or ""
        notes.append(f"\n\n**{name}**: " + " ".join(" ".join(doc.split("\n\n")[:2]).split()))
    return notes


def model_card(
    model: nn.Module,
    *,
    license: str = "apache-2.0",
    stats: dict[str, str] | None = None,
    recipe: dict[str, Any] | None = None,
    results: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """timm's model-card fields for ``model``: its placements, the attention's assumptions, and when given its
    ``stats`` (e.g. params and MACs, :func:`cnnattn.analysis.complexity.card_stats`), the training ``recipe``
    and the run's ``results``."""
    details: dict[str, Any] = {"Model Type": "Image classification / feature backbone"}
    if stats:
        details["Model Stats"] = stats
    details["Attention placement"] = [json.dumps(p) for p in _placements(model)] or ["none"]
    if recipe:
        details["Dataset"] = Path(str(recipe.get("data", "unknown"))).name
        details["Training recipe (cnnattn train)"] = {k: v for k, v in recipe.items() if v not in (None, {}, [])}
    if results:
        keep = ("top1", "top5", "best_top1", "loss", "epochs", "seconds")
        details["Validation metrics (%, results.json)"] = {k: results[k] for k in keep if results.get(k) is not None}
    name = model.pretrained_cfg["architecture"]
    usage = (
        "```python\nimport cnnattn  # registers cnnattn's models with timm\nimport timm\n\n"
        'model = timm.create_model("local-dir:PATH/TO/THIS/FOLDER", pretrained=True).eval()  # or "hf-hub:..."\n'
        "```\n"
    )
    description = f"{name}: a cnnattn model (a timm/torchvision backbone with attention)." + "".join(
        _attention_notes(model)
    )
    return {"tags": CARD_TAGS, "license": license, "details": details, "usage": usage, "description": description}


def save_hub_layout(
    model: nn.Module,
    directory: str | Path,
    card: dict[str, Any] | None = None,
    data_config: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (a cnnattn classifier) to ``directory`` in the Hub layout; return the folder.

    Args:
        model: A model of :func:`cnnattn.create_model` (its ``pretrained_cfg`` names it, ``_model_args`` rebuild
            it). Detectors and ``features_only`` models are refused.
        directory: Folder to write (created); existing files of the same names are replaced.
        card: :func:`model_card` fields (default: the card of the untrained recipe-less model).
        data_config: The eval preprocessing to record in ``pretrained_cfg`` (timm's keys: ``input_size``,
            ``interpolation``, ``crop_pct``, ``crop_mode``, ``mean``, ``std``; default: the model's own).
    """
    from timm.models import save_for_hf
    from timm.models._hub import generate_readme

    from ..utils import package_version

    if not hasattr(model, "num_classes") or not hasattr(model, "_model_args"):
        raise ValueError(
            f"the Hub layout holds cnnattn classifiers (cnnattn.create_model); got {type(model).__name__}. "
            "Export detectors with --format torchscript, feature extractors from their classifier."
        )
    directory = Path(directory)
    extra = {"cnnattn": {"version": package_version(), "placements": _placements(model)}}
    save_for_hf(model, str(directory), model_config=extra, safe_serialization=True, data_config=data_config)
    card = card or model_card(model)
    (directory / "README.md").write_text(generate_readme(card, model.pretrained_cfg["architecture"]))
    return directory
