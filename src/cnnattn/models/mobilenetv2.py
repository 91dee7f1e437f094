"""torchvision's MobileNetV2 with timm's model contract, keeping torchvision's modules and state-dict keys.

timm code (``features_only``, ``forward_head(pre_logits=True)``, ``reset_classifier``, grad checkpointing,
``forward_intermediates``) then works on ``mobilenetv2_*`` as on timm's own models, and torchvision's ImageNet
weights still load unchanged (``features.*``, ``classifier.1.*``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from timm.models._features import feature_take_indices
from timm.models._manipulate import checkpoint_seq
from torch import nn
from torchvision.models import MobileNetV2

from .adapters.mobilenetv2 import MobileNetV2Adapter, pretrained_cfg

__all__ = ["TimmMobileNetV2"]


def _check_pool(global_pool: str, num_classes: int) -> None:
    """MobileNetV2 pools by average (``'avg'``), or not at all (``''``) where no classifier follows."""
    if global_pool not in ("avg", ""):
        raise ValueError(f"MobileNetV2 pools by average ('avg') or not at all (''); got global_pool={global_pool!r}.")
    if global_pool == "" and num_classes > 0:
        raise ValueError(
            "global_pool='' leaves unpooled maps, which a linear classifier cannot take: use num_classes=0."
        )


class TimmMobileNetV2(MobileNetV2):
    """torchvision ``MobileNetV2`` (same arguments: ``num_classes``, ``width_mult``, ``dropout``...) that also
    answers timm's interface. ``forward`` = ``forward_head(forward_features(x))``, as torchvision computes it."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float | None = None,
        drop_path_rate: float | None = None,
        global_pool: str = "avg",
        **kwargs: Any,
    ) -> None:
        """torchvision's arguments (``width_mult``, ``dropout``, ...) and timm's ``create_model`` keywords:
        ``in_chans`` (a new first conv for other than 3 channels), ``drop_rate`` (the classifier's dropout,
        torchvision's ``dropout``), ``drop_path_rate`` (0 or None only: the blocks have no drop path) and
        ``global_pool`` (``'avg'``, or ``''`` for unpooled features without a classifier)."""
        if drop_path_rate:
            raise ValueError(f"torchvision's MobileNetV2 has no drop path; got drop_path_rate={drop_path_rate}.")
        _check_pool(global_pool, num_classes)
        if drop_rate is not None:
            kwargs["dropout"] = drop_rate
        super().__init__(num_classes=num_classes, **kwargs)
        if in_chans != 3:
            stem = self.features[0][0]
            self.features[0][0] = nn.Conv2d(in_chans, stem.out_channels, 3, stride=2, padding=1, bias=False)
        self.global_pool = global_pool
        if num_classes == 0:  # timm's convention: no classifier, the (pooled) features out
            self.classifier[-1] = nn.Identity()
        self.num_classes, self.num_features = num_classes, self.last_channel
        self.head_hidden_size = self.last_channel
        self.grad_checkpointing = False
        self.feature_info = MobileNetV2Adapter().feature_info(self)
        self.pretrained_cfg = self.default_cfg = {**pretrained_cfg(num_classes), "input_size": (in_chans, 224, 224)}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) → (B, num_features, H/32, W/32)."""
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(self.features, x)
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool (none with ``global_pool=''``), then (unless ``pre_logits``) dropout and the linear
        classifier."""
        if self.global_pool == "avg":
            x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.classifier[-1]

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A fresh classifier of ``num_classes`` outputs; 0 leaves the pooled features, or with ``global_pool=''``
        the unpooled maps (B, num_features, H/32, W/32)."""
        if global_pool is not None:
            _check_pool(global_pool, num_classes)
            self.global_pool = global_pool
        self.num_classes = num_classes
        self.classifier[-1] = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.pretrained_cfg = self.default_cfg = {**self.pretrained_cfg, "num_classes": num_classes}

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """timm's layer groups (layer-wise learning-rate decay): the stem, then each block of ``features``."""
        return dict(stem=r"^features\.0", blocks=r"^features\.(\d+)")

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm's ``forward_intermediates``: the ``feature_info`` maps at ``indices`` (last n if an int, all if
        None), and unless ``intermediates_only`` the final features too (``norm`` has no effect: no final norm)."""
        if output_fmt != "NCHW":
            raise ValueError(f"MobileNetV2 gives NCHW intermediates only; got output_fmt={output_fmt!r}.")
        take, max_index = feature_take_indices(len(self.feature_info), indices)
        positions = [int(info["module"].split(".")[1]) for info in self.feature_info]
        wanted = {positions[i] for i in take}
        last = positions[max_index] if stop_early else len(self.features) - 1
        intermediates = []
        for index, layer in enumerate(self.features[: last + 1]):
            x = layer(x)
            if index in wanted:
                intermediates.append(x)
        return intermediates if intermediates_only else (x, intermediates)
