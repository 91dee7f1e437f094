"""``cnnattn show``: a picture grid of attention maps, deformable sampling points or CAMs, per model."""

from __future__ import annotations

import argparse

from ..visualize.show import METHODS
from .common import at_least, str_list


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "show",
        help="pictures of what models attend to: attention maps, DAS sampling points, Grad-CAM",
        description=(
            "One PNG grid: a row per image, a column per (checkpoint or model, method); each cell the map over the "
            "image with a colour bar, the layer, the predicted class and score, and the true class where known. "
            "Methods: attention (the captured map of --layer, default the deepest attention module whose map is "
            "at least 4×4), offsets (DAS sampling points traced through two gates), gradcam, gradcampp, "
            'eigencam (these three need pip install "cnnattn[viz]"). A detector checkpoint: eigencam of its feature '
            "pyramid with its detected boxes."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", action="append", help="a training checkpoint (repeat for more columns)")
    source.add_argument("--model", action="append", help="an untrained model name, e.g. resnet18_das")
    parser.add_argument(
        "--images",
        required=True,
        help="image file or folder, a zip dataset (its validation split, e.g. the CIFAR-10 zip), or "
        "builtin:cluttered|builtin:digits",
    )
    parser.add_argument("--method", type=str_list, default=["attention"], help=f"comma-separated: {', '.join(METHODS)}")
    parser.add_argument(
        "--layer",
        type=str_list,
        default=[None],
        help="module name(s), comma-separated, a column each (attention: attention modules; CAMs: target layers)",
    )
    parser.add_argument(
        "--class", dest="target", type=at_least(0), help="explain this class index (default: predicted)"
    )
    parser.add_argument("--img-size", type=at_least(1), help="input side (default: the checkpoint's; 224 for --model)")
    parser.add_argument("--max-images", type=at_least(1), default=4, help="rows of the grid")
    parser.add_argument("--output", required=True, help="the PNG to write")
    parser.add_argument("--npz", help="also save the raw maps and points to this .npz file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..data.samples import load_samples
    from ..engine.trained import trained_subject
    from ..visualize.show import attention_cells, eam_radii, model_subject, plot_radii, render

    unknown = [m for m in args.method if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}.")
    if args.max_images < 1:
        raise ValueError(f"--max-images must be at least 1; got {args.max_images}.")
    subjects = [trained_subject(c, img_size=args.img_size) for c in args.checkpoint or []]
    subjects += [model_subject(m, img_size=args.img_size) for m in args.model or []]
    columns, raw, radii = [], {}, {}
    for subject in subjects:
        samples = load_samples(args.images, subject.img_size, subject.classes, args.max_images)
        for method in args.method:
            for layer in args.layer:
                cells, maps = attention_cells(subject, samples, method, layer, args.target)
                columns.append(cells)
                raw.update(maps)
        if found := eam_radii(subject.model):
            radii[subject.label] = found
    written = [str(render(samples, columns, args.output))]
    if radii:
        written.append(str(plot_radii(radii, args.output.removesuffix(".png") + "_eam_radius.png")))
    if args.npz:
        np.savez_compressed(args.npz, **{k.replace("/", "__"): v for k, v in raw.items()})
        written.append(args.npz)
    print("written: " + ", ".join(written))
    return 0
