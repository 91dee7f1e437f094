"""Reference outputs of every attention × position × backbone family, on weights that do not depend on torch's RNG.

The numbers in ``placement_reference.json`` were computed with the forward-hook placement that cnnattn used
before attention became part of the blocks' ``forward`` (commit eb49bef); the contract suite checks that the
block classes reproduce them. Regenerate only on purpose: ``python tests/models/placement_reference.py``.
"""

from __future__ import annotations

import hashlib
import json
import math
import zlib
from collections.abc import Callable
from pathlib import Path

import timm.models.resnet as timm_resnet
import torch
import torchvision.models as tvm
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

import cnnattn
from cnnattn.attention.registry import list_attention
from cnnattn.models.adapters.base import BLOCK_POSITIONS

GATE_POSITIONS = tuple(p for p in BLOCK_POSITIONS if p != "conv")  # the positions ResNets and MobileNetV2 have

REFERENCE_FILE = Path(__file__).with_name("placement_reference.json")
NUM_CLASSES = 5
IMG_SIZE = 64
BUILTIN_ATTENTIONS = ("aa", "aw", "bam", "cbam", "coord", "das", "eam", "eca", "gc", "gc_scale", "nl", "se", "triplet")

FAMILIES: dict[str, Callable[[], nn.Module]] = {
    "tv_basic": lambda: tvm.ResNet(BasicBlock, [2, 1, 1, 1], num_classes=NUM_CLASSES),
    "tv_bottleneck": lambda: tvm.ResNet(Bottleneck, [1, 2, 1, 1], num_classes=NUM_CLASSES),
    "timm_basic": lambda: timm_resnet.ResNet(timm_resnet.BasicBlock, [2, 1, 1, 1], num_classes=NUM_CLASSES),
    "timm_bottleneck": lambda: timm_resnet.ResNet(timm_resnet.Bottleneck, [1, 2, 1, 1], num_classes=NUM_CLASSES),
    "mobilenetv2": lambda: tvm.mobilenet_v2(width_mult=0.5, num_classes=NUM_CLASSES),
}


def positions(attention: str) -> tuple[str, ...]:
    return GATE_POSITIONS if cnnattn.attention.get_attention_info(attention).kind == "gate" else ("conv",)


def cases() -> list[tuple[str, str, str]]:
    """(attention, position, family) for every built-in attention, valid position and family it can go in."""
    out = []
    for info in list_attention():
        if info.name not in BUILTIN_ATTENTIONS:
            continue
        for position in positions(info.name):
            for family in FAMILIES:
                if family == "mobilenetv2" and info.kind == "conv" and not info.grouped:
                    continue  # MobileNetV2's only k×k convs are depthwise: EAM and AA cannot replace them
                out.append((info.name, position, family))
    return out


def _pseudo_random(name: str, numel: int) -> torch.Tensor:
    """Values in [-1, 1) from a low-discrepancy sequence seeded by the tensor's name: same on every machine."""
    offset = (zlib.crc32(name.encode()) % 10_000) / 10_000
    index = torch.arange(numel, dtype=torch.float64)
    return torch.remainder(index * 0.6180339887498949 + offset, 1.0) * 2 - 1


@torch.no_grad()
def deterministic_fill(model: nn.Module) -> nn.Module:
    """Set every floating tensor of the state dict from its name: ≥2-D weights ~ U(±√(3/fan_in)), 1-D weights
    (norm scales) near 1, running variances in [1, 1.2], everything else in ±0.1."""
    for name, tensor in model.state_dict().items():
        if not tensor.is_floating_point():
            continue
        u = _pseudo_random(name, tensor.numel()).view(tensor.shape).to(tensor.dtype)
        if name.endswith("running_var"):
            value = 1 + 0.2 * u.abs()
        elif tensor.ndim >= 2:
            value = u * math.sqrt(3 / max(1, tensor[0].numel()))
        elif name.endswith("weight") and tensor.ndim == 1:
            value = 1 + 0.1 * u
        else:
            value = 0.1 * u
        tensor.copy_(value)
    return model


def reference_input(batch: int = 2) -> torch.Tensor:
    return _pseudo_random("input", batch * 3 * IMG_SIZE * IMG_SIZE).view(batch, 3, IMG_SIZE, IMG_SIZE)


def build(attention: str, position: str, family: str) -> nn.Module:
    """The family's model with ``attention`` at ``position`` in all four stages, filled, eval, float64."""
    model = FAMILIES[family]()
    cnnattn.attach(model, attention, stages=(1, 2, 3, 4), position=position)
    return deterministic_fill(model.double()).eval()


def keys_digest(model: nn.Module) -> str:
    return hashlib.sha256("\n".join(model.state_dict()).encode()).hexdigest()


def case_id(attention: str, position: str, family: str) -> str:
    return f"{attention}-{position}-{family}"


def compute(attention: str, position: str, family: str) -> dict:
    model = build(attention, position, family)
    with torch.no_grad():
        output = model(reference_input())
    return {"keys_sha256": keys_digest(model), "num_keys": len(model.state_dict()), "output": output.tolist()}


def main() -> None:
    reference = {case_id(*case): compute(*case) for case in cases()}
    REFERENCE_FILE.write_text(json.dumps(reference, indent=1) + "\n")
    print(f"wrote {len(reference)} cases to {REFERENCE_FILE}")


if __name__ == "__main__":
    main()
