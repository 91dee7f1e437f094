"""cnnattn's SE and CBAM: timm's modules with the same outputs; every gate that fuses a residual block's shortcut
(``fuses_shortcut``) returns ``attn(x) + shortcut`` from ``attn(x, shortcut)``, outputs and gradients alike."""

from __future__ import annotations

import pytest
import torch
from timm.layers.cbam import CbamModule as TimmCbam
from timm.layers.squeeze_excite import SEModule as TimmSE

from cnnattn.attention import create_attention, list_attention

FUSING = [i.name for i in list_attention() if hasattr(getattr(i.factory, "func", i.factory), "fuses_shortcut")]


def test_the_fusing_gates_are_the_block_gates_we_sped_up() -> None:
    assert {"se", "cbam", "triplet"} <= set(FUSING)


@pytest.mark.parametrize(("name", "timm_class"), [("se", TimmSE), ("cbam", TimmCbam)])
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


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_cbam_trains_as_timms_with_equal_gradients_and_scripts() -> None:
    """Where every maximum is unique (random float64 input), the gradient to one maximum equals timm's tie-sharing
    one; the channels-last spatial conv of training changes no number."""
    torch.manual_seed(0)
    ours = create_attention("cbam", 32).double().train()
    reference = TimmCbam(32, rd_ratio=1 / 16).double().train()
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(2, 32, 7, 9, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(2, 32, 7, 9, dtype=torch.float64)
    got, want = ours(x), reference(x)
    torch.testing.assert_close(got, want)
    got_grads = torch.autograd.grad(got, [x, *ours.parameters()], grad)
    for a, b in zip(got_grads, torch.autograd.grad(want, [x, *reference.parameters()], grad), strict=True):
        torch.testing.assert_close(a, b)
    ours.eval()
    torch.testing.assert_close(torch.jit.script(ours)(x.detach()), ours(x.detach()))


@pytest.mark.parametrize("name", [*FUSING, "das"])
def test_inference_in_place_writes_leave_inputs_alone_and_equal_the_recorded_path(name: str) -> None:
    """Without autograd, gates write into their own temporaries (``may_overwrite_temporaries``): the outputs equal
    those of the path autograd records, and neither ``x`` nor ``shortcut`` changes."""
    torch.manual_seed(0)
    module = create_attention(name, 16).eval()
    x, shortcut = torch.randn(2, 16, 6, 5), torch.randn(2, 16, 6, 5)
    x_before, shortcut_before = x.clone(), shortcut.clone()
    fuses = hasattr(module, "fuses_shortcut")
    expected = module(x.requires_grad_(), shortcut) if fuses else module(x.requires_grad_())
    with torch.no_grad():
        got = module(x, shortcut) if fuses else module(x)
    assert torch.equal(x.detach(), x_before) and torch.equal(shortcut, shortcut_before)
    torch.testing.assert_close(got, expected.detach(), rtol=1e-6, atol=1e-6)
