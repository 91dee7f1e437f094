"""torch.hub entry points: every cnnattn model name, e.g.
``torch.hub.load("path/to/cnnattn", "resnet50_das", source="local", num_classes=10)``.

Each entry point is ``cnnattn.create_model(name, **kwargs)``. cnnattn hosts no weights: ``pretrained=True`` raises,
naming ``checkpoint_path=`` for a local state dict.
"""

from __future__ import annotations

from typing import Any as _Any

import cnnattn as _cnnattn

dependencies = ["torch", "torchvision", "timm", "cnnattn"]


def _entry(name: str) -> _Any:
    def entry(pretrained: bool = False, **kwargs: _Any) -> _Any:
        if pretrained:
            raise ValueError(
                f"{name}: cnnattn hosts no weights and torch.hub downloads none for it. Pass a local file instead: "
                f"torch.hub.load(..., {name!r}, source='local', checkpoint_path='weights.pth')."
            )
        return _cnnattn.create_model(name, **kwargs)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = f"cnnattn model {name}: cnnattn.create_model({name!r}, **kwargs)."
    return entry


for _name in _cnnattn.list_models():
    globals()[_name] = _entry(_name)
