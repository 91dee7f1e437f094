from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import cnnattn
from cnnattn.attention import registry
from cnnattn.attention.registry import (
    create_attention,
    get_attention_info,
    list_attention,
    register_attention,
)

REQUIRED_GATES = ("se", "eca", "cbam", "gc", "nl", "coord", "bam", "triplet")
GATES = [i.name for i in list_attention("gate")]


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Let a test register names without leaking them into the shared registry."""
    snapshot = dict(registry._REGISTRY)
    monkeypatch.setattr(registry, "_REGISTRY", snapshot)
    return snapshot


def test_required_gates_are_registered_with_kind_and_description() -> None:
    infos = {i.name: i for i in cnnattn.list_attention()}
    for name in REQUIRED_GATES:
        assert infos[name].kind == "gate"
        assert infos[name].description and "\n" not in infos[name].description
    assert "gc_scale" in infos  # timm's multiplicative GC, kept under its own name


def test_gc_uses_additive_fusion_and_gc_scale_multiplicative() -> None:
    gc, gc_scale = create_attention("gc", 64), create_attention("gc_scale", 64)
    assert gc.mlp_add is not None and gc.mlp_scale is None
    assert gc_scale.mlp_scale is not None and gc_scale.mlp_add is None


def test_list_attention_filters_by_kind() -> None:
    assert all(i.kind == "gate" for i in list_attention("gate"))
    with pytest.raises(ValueError, match="kind must be one of"):
        list_attention("spatial")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", GATES)
@pytest.mark.parametrize("batch", [1, 3])
def test_every_gate_preserves_shape(name: str, batch: int) -> None:
    gate = create_attention(name, 32).eval()
    x = torch.randn(batch, 32, 9, 7)
    assert gate(x).shape == x.shape


def test_unknown_name_lists_available() -> None:
    with pytest.raises(ValueError, match=r"unknown attention 'sea'.*cbam.*se"):
        create_attention("sea", 64)


def test_gate_call_contract_is_checked() -> None:
    with pytest.raises(ValueError, match=r"create_attention\('se', channels"):
        create_attention("se", 64, 64)
    with pytest.raises(ValueError, match="channels must be a positive int"):
        create_attention("se", 0)


def test_user_module_joins_registry_models_and_timm(isolated_registry: dict) -> None:
    import timm

    @register_attention("userscale", description="Per-channel scale.")
    class UserScale(nn.Module):
        def __init__(self, channels: int) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(channels, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.scale

    assert get_attention_info("userscale").description == "Per-channel scale."
    assert "resnet18_userscale" in cnnattn.list_models()
    model = timm.create_model("resnet18_userscale", num_classes=3)
    assert isinstance(model.layer1[0].attn, UserScale)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_register_rejects_duplicates_bad_kind_and_bad_names(isolated_registry: dict) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_attention("se")(nn.Identity)
    register_attention("se", overwrite=True, description="replaced")(nn.Identity)
    assert get_attention_info("se").description == "replaced"
    with pytest.raises(ValueError, match="kind must be one of"):
        register_attention("x", kind="spatial")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lower-case"):
        register_attention("My-Gate")
    with pytest.raises(ValueError, match="is a gate"):
        register_attention("y", position="conv")


def test_conv_kind_contract(isolated_registry: dict) -> None:
    @register_attention("plainconv", kind="conv")
    class PlainConv(nn.Conv2d):
        """A conv-kind stand-in."""

        def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> None:
            super().__init__(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2)

    info = get_attention_info("plainconv")
    assert (info.kind, info.position, info.description) == ("conv", "conv", "A conv-kind stand-in.")
    conv = create_attention("plainconv", 8, 16, stride=2)
    assert conv(torch.randn(1, 8, 10, 10)).shape == (1, 16, 5, 5)
    assert create_attention("plainconv", 8, 16, 5).kernel_size == (5, 5)
    with pytest.raises(ValueError, match="builds a conv"):
        create_attention("plainconv", 8)


@pytest.mark.parametrize("name", [i.name for i in list_attention()])
def test_a_forward_logs_no_warning(name: str, caplog: pytest.LogCaptureFixture) -> None:
    """Nothing a module asks of torch while running may print into a user's output (a one-time warning of
    ``torch.fx`` once did, in every ``cnnattn compare`` with DAS)."""
    from torch.fx._symbolic_trace import is_fx_tracing_warning

    from cnnattn.analysis.scaling import build_layer

    is_fx_tracing_warning.cache_clear()  # logged once per process: make this test see a first call
    layer = build_layer(name, 16)
    with caplog.at_level("WARNING"):
        for mode in (True, False):
            layer.train(mode)(torch.randn(2, 16, 12, 12))
    assert [r.getMessage() for r in caplog.records] == []


REDUCING = ["se", "cbam", "bam", "coord", "gc", "gc_scale", "nl", "das"]  # ECA reduces only with use_mlp=True


@pytest.mark.parametrize("name", [*REDUCING, "aw"])
def test_every_reducing_module_takes_timms_rd_ratio(name: str) -> None:
    args = (64, 64) if get_attention_info(name).kind == "conv" else (64,)
    assert sum(p.numel() for p in create_attention(name, *args, rd_ratio=1 / 4).parameters()) > sum(
        p.numel() for p in create_attention(name, *args, rd_ratio=1 / 16).parameters()
    )


def test_unknown_keywords_are_refused_naming_module_keyword_and_accepted_ones() -> None:
    with pytest.raises(ValueError, match=r"attention 'das' \(DASGate\) takes no keyword 'reduction'; it takes: "
                       r"rd_ratio, rd_channels, .*a channel reduction r is rd_ratio=1/r"):  # fmt: skip
        create_attention("das", 64, reduction=16)
    model = torchvision.models.resnet18()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="attention 'se' .* takes no keyword 'squeeze'"):
        cnnattn.attach(model, "se", squeeze=2)
    assert type(model.layer1[0]) is torchvision.models.resnet.BasicBlock  # nothing changed
    assert model.state_dict().keys() == before.keys()
    with pytest.raises(ValueError, match="attention 'aw' .* takes no keyword 'reduction'"):
        cnnattn.create_model("resnet18_aw", attn_kwargs={"reduction": 8, "rd_ratio": 0.5})
