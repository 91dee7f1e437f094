"""The baselines timm implements are timm's own classes; every gate has one calling convention, ``attn(x)`` of the
shape of ``x``, and the block adds the shortcut (in place only where nothing needs the gate's output)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
import torchvision
from timm.layers.cbam import CbamModule as TimmCbam
from timm.layers.squeeze_excite import SEModule as TimmSE

import cnnattn
from cnnattn.attention import create_attention, list_attention
from cnnattn.fast_paths import fast_paths

GATES = [info.name for info in list_attention() if info.kind == "gate"]


def test_se_is_timms_module_unmodified() -> None:
    assert type(create_attention("se", 32)) is TimmSE


@pytest.mark.parametrize("train", [False, True])
def test_cbam_is_timms_module_and_its_fast_path_gives_timms_outputs_and_gradients(train: bool) -> None:
    """Where every maximum is unique (random float64 input), the gradient to one maximum equals timm's tie-sharing
    one; the channels-last spatial conv of training changes no number."""
    torch.manual_seed(0)
    ours = create_attention("cbam", 32).double().train(train)
    reference = TimmCbam(32, rd_ratio=1 / 16).double().train(train)
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(2, 32, 7, 9, dtype=torch.float64, requires_grad=True)
    got, want = ours(x), reference(x)
    torch.testing.assert_close(got, want)
    grads = [torch.autograd.grad(y.sum(), [x, *m.parameters()]) for y, m in ((got, ours), (want, reference))]
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)
    with fast_paths(False):
        assert torch.equal(ours(x.detach()), reference(x.detach()))  # timm's own formula
    torch.testing.assert_close(torch.jit.script(ours.eval())(x.detach()), reference.eval()(x.detach()))


@pytest.mark.parametrize(("name", "timm_class"), [("se", TimmSE), ("cbam", TimmCbam)])
def test_se_and_cbam_have_timms_parameters(name: str, timm_class: type) -> None:
    module = create_attention(name, 32)
    assert isinstance(module, timm_class)
    assert module.state_dict().keys() == timm_class(32, rd_ratio=1 / 16).state_dict().keys()
    assert [p.shape for p in module.parameters()] == [p.shape for p in timm_class(32, rd_ratio=1 / 16).parameters()]


@pytest.mark.parametrize("name", GATES)
def test_every_gate_takes_one_tensor_and_keeps_its_shape(name: str) -> None:
    module = create_attention(name, 16).eval()
    parameters = list(inspect.signature(module.forward).parameters)
    assert parameters == ["x"], f"{name}: forward{tuple(parameters)}; a gate's forward takes x alone"
    x = torch.randn(2, 16, 6, 5)
    assert module(x).shape == x.shape


def test_no_second_gate_protocol_in_the_source() -> None:
    source = Path(cnnattn.__file__).parent
    assert not [p for p in source.rglob("*.py") if "fuses_shortcut" in p.read_text()]


@pytest.mark.parametrize("name", ["se", "cbam", "triplet", "das"])
def test_inference_in_place_writes_leave_inputs_alone_and_equal_the_recorded_path(name: str) -> None:
    """Without autograd, gates write into their own temporaries and blocks add into the gate's output: the outputs
    equal those of the path autograd records, and the block's input does not change."""
    torch.manual_seed(0)
    model = cnnattn.attach(torchvision.models.resnet18(num_classes=4), name, stages=(1,), position="block").eval()
    block = model.layer1[0]
    x = torch.randn(2, 64, 12, 10)
    before = x.clone()
    expected = block(x.clone().requires_grad_())
    with torch.no_grad():
        got = block(x)
    assert torch.equal(x, before)
    torch.testing.assert_close(got, expected.detach(), rtol=1e-6, atol=1e-6)


def test_training_block_with_a_gate_whose_backward_needs_its_output() -> None:
    """A user's gate returning ``sigmoid(x)`` (whose backward reads its output) trains: under autograd the block adds
    the shortcut out of place."""

    class Squash(torch.nn.Module):
        def __init__(self, channels: int) -> None:
            super().__init__()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(x)

    model = cnnattn.attach(torchvision.models.resnet18(num_classes=4), "se", stages=(1,), position="block")
    model.layer1[0].attn = Squash(64)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert model.conv1.weight.grad is not None
