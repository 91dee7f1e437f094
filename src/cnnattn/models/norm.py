"""Freeze BatchNorm in place: running statistics only, no affine updates, modules and state-dict keys kept."""

from __future__ import annotations

from collections.abc import Iterable

from timm.layers import BatchNormAct2d
from torch import nn

__all__ = ["FrozenBatchNorm2d", "FrozenBatchNormAct2d", "freeze_batch_norm"]


class FrozenBatchNorm2d(nn.BatchNorm2d):
    """A ``BatchNorm2d`` that always normalises with its running statistics (it never enters train mode)."""

    def train(self, mode: bool = True) -> FrozenBatchNorm2d:
        return super().train(False)


class FrozenBatchNormAct2d(BatchNormAct2d):
    """timm's ``BatchNormAct2d`` (norm, then its own activation) that always normalises with its running
    statistics."""

    def train(self, mode: bool = True) -> FrozenBatchNormAct2d:
        return super().train(False)


_FROZEN: dict[type[nn.Module], type[nn.Module]] = {
    nn.BatchNorm2d: FrozenBatchNorm2d,
    BatchNormAct2d: FrozenBatchNormAct2d,
}


def freeze_batch_norm(model: nn.Module, exclude: Iterable[nn.Module] = ()) -> nn.Module:
    """Turn every ``BatchNorm2d`` (and timm ``BatchNormAct2d``, keeping its activation) of ``model`` into its frozen
    class in place and return ``model``.

    Unlike timm's ``freeze_batch_norm_2d``, which swaps in modules without ``num_batches_tracked``, modules keep
    their identity and checkpoint keys stay as they are. Affine parameters stop receiving gradients. (Attention
    placed by cnnattn survives either: it is called from the blocks' ``forward``.) Norms inside the modules in
    ``exclude`` (e.g. attention modules, whose own norms a detector leaves alone) are not touched.
    """
    skipped = {id(m) for module in exclude for m in module.modules()}
    for module in model.modules():
        frozen = _FROZEN.get(type(module))
        if frozen is not None and id(module) not in skipped:
            module.__class__ = frozen
            module.requires_grad_(False)
            module.eval()
    return model
