"""cnnattn's SE and CBAM: timm's modules with the same outputs; every gate that fuses a residual block's shortcut
(``fuses_shortcut``) returns ``attn(x) + shortcut`` from ``attn(x, shortcut)``, outputs and gradients alike."""

from __future__ import annotations

import pytest
import torch
from timm.layers.squeeze_excite import SEModule as TimmSE

from cnnattn.attention import create_attention, list_attention

FUSING = [i.name for i in list_attention() if hasattr(getattr(i.factory, "func", i.factory), "fuses_shortcut")]


def test_the_fusing_gates_are_the_block_gates_we_sped_up() -> None:
    assert {"se", "triplet"} <= set(FUSING)


@pytest.mark.parametrize(("name", "timm_class"), [("se", TimmSE)])
def test_same_outputs_and_state_dict_as_timm(name: str, timm_class: type) -> None:
    torch.manual_seed(0)
    ours = create_attention(name, 32).eval()
    reference = timm_class(32, rd_ratio=1 / 16).eval()
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(2, 32, 7, 9)
    torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", FUSING)
@pytest.mark.parametrize("train", [True, False])
def test_fused_shortcut_equals_gate_then_add(name: str, train: bool) -> None:
    torch.manual_seed(0)
    module = create_attention(name, 16).train(train)
    x = torch.randn(3, 16, 6, 5, requires_grad=True)
    shortcut = torch.randn(3, 16, 6, 5, requires_grad=True)
    grad = torch.randn(3, 16, 6, 5)

    def run(fused: bool) -> tuple[torch.Tensor, ...]:
        out = module(x, shortcut) if fused else module(x) + shortcut
        params = [p for p in module.parameters() if p.requires_grad]
        return (out, *torch.autograd.grad(out, [x, shortcut, *params], grad))

    state = {k: v.clone() for k, v in module.state_dict().items()}
    fused = run(True)
    module.load_state_dict(state)  # BatchNorm running stats moved once in training mode
    for got, want in zip(fused, run(False), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
