"""``hubconf.py``: the entry points ``torch.hub.list`` finds and ``torch.hub.load(..., source="local")`` for every
cnnattn name."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import cnnattn

ROOT = Path(__file__).resolve().parents[2]


def test_hub_lists_every_model_name() -> None:
    """What ``torch.hub.list`` returns for the repository (torch 2.14's ``list`` reads GitHub repositories only, so
    its own rule is applied here to the local hubconf: every public callable)."""
    hub = torch.hub._import_module("hubconf", str(ROOT / "hubconf.py"))
    entries = [f for f in dir(hub) if callable(getattr(hub, f)) and not f.startswith("_")]
    assert set(entries) == set(cnnattn.list_models())


def test_hub_load_builds_the_named_model(tmp_path: Path) -> None:
    model = torch.hub.load(str(ROOT), "resnet50_das", source="local", num_classes=10, trust_repo=True)
    reference = cnnattn.create_model("resnet50_das", num_classes=10)
    assert type(model) is type(reference) and model.state_dict().keys() == reference.state_dict().keys()
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)
    torch.save(model.state_dict(), tmp_path / "w.pth")
    again = torch.hub.load(str(ROOT), "resnet50_das", source="local", num_classes=10, trust_repo=True,
                           checkpoint_path=str(tmp_path / "w.pth"))  # fmt: skip
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values(), strict=True))


def test_hub_pretrained_says_weights_must_be_local() -> None:
    with pytest.raises(ValueError, match="hosts no weights.*checkpoint_path="):
        torch.hub.load(str(ROOT), "convnext_atto_se", source="local", pretrained=True, trust_repo=True)
