"""Freeze BatchNorm in place: running statistics only, no affine updates, modules and state-dict keys kept."""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

__all__ = ["FrozenBatchNorm2d", "freeze_batch_norm"]


class FrozenBatchNorm2d(nn.BatchNorm2d):
    """A ``BatchNorm2d`` that always normalises with its running statistics (it never enters train mode)."""

    def train(self, mode: bool = True) -> FrozenBatchNorm2d:
        return super().train(False)


def freeze_batch_norm(model: nn.Module, exclude: Iterable[nn.Module] = ()) -> nn.Module:
    """Turn every ``BatchNorm2d`` of ``model`` into :class:`FrozenBatchNorm2d` in place and return ``model``.

    Unlike timm's ``freeze_batch_norm_2d``, which swaps in modules without ``num_batches_tracked``, modules keep
    their identity and checkpoint keys stay as they are. Affine parameters stop receiving gradients. (Attention
    placed by cnnattn survives either: it is called from the blocks' ``forward``.) Norms inside the modules in
    ``exclude`` (e.g. attention modules, whose own norms a detector leaves alone) are not touched.
    """
    skipped = {id(m) for module in exclude for m in module.modules()}
    for module in model.modules():
        if type(module) is nn.BatchNorm2d and id(module) not in skipped:
            module.__class__ = FrozenBatchNorm2d
            module.requires_grad_(False)
            module.eval()
    return model
