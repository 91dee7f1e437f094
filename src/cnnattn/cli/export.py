"""``cnnattn export``: a checkpoint or model name to ONNX, .pt2, TorchScript or the Hub layout, verified against eager
PyTorch."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from ..deploy.export import FORMATS
from .common import at_least

if TYPE_CHECKING:
    from torch import nn

    from ..engine.config import TrainConfig


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "export",
        help="export to ONNX, torch.export (.pt2), TorchScript or the Hub layout and verify against eager PyTorch",
        description=(
            "Write the model in FORMAT, load it back in its runtime (onnxruntime, torch.export.load, torch.jit.load, "
            "timm.create_model('local-dir:DIR')), run it on random input (and on a second batch and size when "
            "dynamic) and print the largest absolute difference to eager PyTorch; more than --tolerance is an error. "
            "Detectors: torchscript only. --format hf writes a folder (config.json, model.safetensors, README.md "
            "model card with the run's recipe and results.json metrics) that timm and cnnattn load as "
            "'local-dir:DIR', and that huggingface_hub.upload_folder publishes."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a training checkpoint (its EMA weights when the run used EMA)")
    source.add_argument("--model", help="a model name (untrained), e.g. resnet18_das")
    parser.add_argument("--format", choices=FORMATS, default="onnx")
    parser.add_argument("--img-size", type=at_least(1), help="example input side (default: the checkpoint's, else 224)")
    parser.add_argument("--batch-size", type=at_least(1), default=2)
    parser.add_argument("--num-classes", type=at_least(1), default=1000, help="with --model")
    parser.add_argument("--dynamic-batch", action="store_true", help="leave the batch size free")
    parser.add_argument("--dynamic-size", action="store_true", help="leave height and width free")
    parser.add_argument("--opset", type=at_least(7), help="ONNX opset (default: the exporter's)")
    parser.add_argument("--strict", action="store_true", help="torch.export in strict mode")
    parser.add_argument("--tolerance", type=at_least(0, float, inclusive=False), default=1e-4)
    parser.add_argument("--license", default="apache-2.0", help="with --format hf: the weights' licence on the card")
    parser.add_argument("--output", required=True, help="file to write (--format hf: a folder)")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..deploy.export import export
    from ..models import create_model

    img_size, config = args.img_size, None
    if args.checkpoint:
        from ..engine.trained import load_trained_model

        model, config, _ = load_trained_model(args.checkpoint)
        img_size = img_size or config.img_size
    else:
        model = create_model(args.model, num_classes=args.num_classes)
    hub = _hub_layout(model, args, config, img_size) if args.format == "hf" else None
    result = export(
        model,
        args.output,
        args.format,
        img_size=img_size or 224,
        batch_size=args.batch_size,
        dynamic_batch=args.dynamic_batch,
        dynamic_size=args.dynamic_size,
        opset=args.opset,
        strict=args.strict,
        tolerance=args.tolerance,
        hub=hub,
    )
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    shapes = ", ".join("×".join(map(str, s)) for s in result.checked_shapes)
    print(f"wrote {result.path} ({result.format}); checked in {result.runtime} on {shapes}: "
          f"max |difference| to eager PyTorch {result.max_abs_diff:.2e}")  # fmt: skip
    return 0


def _hub_layout(model: nn.Module, args: argparse.Namespace, config: TrainConfig | None, img_size: int | None) -> dict:
    """``save_hub_layout``'s card and preprocessing: a checkpoint's recipe, its run's ``results.json`` metrics and
    the eval transform ``cnnattn eval`` applies to it; a model name's defaults."""
    from ..analysis.complexity import card_stats
    from ..data.transforms import eval_data_config
    from ..deploy.hub import model_card

    results = _run_results(args.checkpoint) if args.checkpoint else None
    recipe = config.to_dict() if config else None
    stats = card_stats(model, img_size or model.pretrained_cfg["input_size"][-1])
    card = model_card(model, license=args.license, stats=stats, recipe=recipe, results=results)
    if config is None or img_size is None:
        return {"card": card}
    return {"card": card, "data_config": eval_data_config(img_size)}


def _run_results(checkpoint: str) -> dict | None:
    """The ``results.json`` of the run a checkpoint (``<run>/checkpoints/*.ckpt``) belongs to, if there is one."""
    path = Path(checkpoint).resolve().parent.parent / "results.json"
    return json.loads(path.read_text()) if path.is_file() else None
