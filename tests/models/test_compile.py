"""The real ``torch.compile``: models compiled one after another in one process each run and train their own
attention. With forward-hook placement the second model reused the first model's graph, so its attention never
ran and got no gradient.

Dynamo (graph capture and its guards, where that bug lived) and AOTAutograd run in every test. The default test
lowers with the ``aot_eager`` backend, every attention in seconds; the slow one with inductor, the default
backend, which ``cnnattn train --compile`` also runs end to end in tests/engine.
"""

from __future__ import annotations

import copy

import placement_reference as ref
import pytest
import torch
from torch import nn
from torch._dynamo.testing import CompileCounterWithBackend

import cnnattn
from cnnattn.attention import list_attention

from helpers import assert_rel_close

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
ATTENTIONS = [i.name for i in list_attention() if i.name in ref.BUILTIN_ATTENTIONS]


def _model(attention: str | None) -> tuple[nn.Module, list[nn.Module]]:
    model = ref.FAMILIES["tv_basic"]()
    if attention is not None:
        cnnattn.attach(model, attention, position=ref.positions(attention)[0])
    ref.deterministic_fill(model.double())  # no zero-init gate or norm: every attention module gets a gradient
    names = [n for p in getattr(model, "cnnattn_placements", []) for n in p.modules]
    return model.train(), [model.get_submodule(n) for n in names]


def _count_calls(modules: list[nn.Module]) -> list[int]:
    calls = [0] * len(modules)
    for i, module in enumerate(modules):
        module.register_forward_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1))
    return calls


def _check_compiled_runs_and_trains_its_attention(attention: str, plain_out: torch.Tensor, backend: str) -> None:
    """Compiled: every attention module runs once per forward, output and attention gradients equal eager's."""
    model, modules = _model(attention)
    eager_model = copy.deepcopy(model)
    x = ref.reference_input()
    eager_out = eager_model(x)
    eager_out.square().mean().backward()
    calls = _count_calls(modules)
    counter = CompileCounterWithBackend(backend)
    out = torch.compile(model, backend=counter)(x)
    assert counter.frame_count >= 1, f"{attention}: nothing was compiled (eager fallback)"
    assert calls == [1] * len(modules), f"{attention}: attention calls per module under compile: {calls}"
    torch.testing.assert_close(out, eager_out, rtol=1e-6, atol=1e-8)  # float64: fusion rounding stays tiny
    assert not torch.allclose(out, plain_out, rtol=1e-3, atol=1e-3), f"{attention}: compiled output is the plain one"
    out.square().mean().backward()
    names = [n for p in model.cnnattn_placements for n in p.modules]
    eager_modules = [eager_model.get_submodule(n) for n in names]
    for name, module, eager_module in zip(names, modules, eager_modules, strict=True):
        grads, expected = _flat_grads(module), _flat_grads(eager_module)
        assert grads.abs().sum() > 0, f"{attention}: {name} got no gradient under compile"
        # relative to the module's largest gradient: some entries are zero up to rounding (a bias before a norm)
        assert_rel_close(grads, expected, 1e-6, f"{attention} {name} gradients, compiled vs eager")


def _flat_grads(module: nn.Module) -> torch.Tensor:
    return torch.cat([(torch.zeros_like(p) if p.grad is None else p.grad).flatten() for p in module.parameters()])


def _compiled_plain_output(backend: str) -> torch.Tensor:
    plain, _ = _model(None)
    return torch.compile(plain, backend=backend)(ref.reference_input()).detach()


def _compile_every_attention_after_the_plain_model(backend: str) -> None:
    torch._dynamo.reset()
    with torch._dynamo.config.patch(recompile_limit=64):  # one cache entry per architecture, all kept
        plain_out = _compiled_plain_output(backend)
        for attention in ATTENTIONS:
            _check_compiled_runs_and_trains_its_attention(attention, plain_out, backend)


def test_models_compiled_in_one_process_each_run_and_train_their_own_attention() -> None:
    _compile_every_attention_after_the_plain_model("aot_eager")


@pytest.mark.slow
def test_same_with_inductor() -> None:
    _compile_every_attention_after_the_plain_model("inductor")


@pytest.mark.parametrize("attention", [i.name for i in list_attention()])
def test_every_attention_module_compiles_as_one_graph_without_a_recompile_per_batch_size(attention: str) -> None:
    """``fullgraph=True``: a graph break raises. Batch 2 compiles a static graph, batch 3 the dynamic one that
    batches 4 and 5 reuse (AW's batched path included)."""
    from cnnattn.analysis.scaling import build_layer

    torch._dynamo.reset()
    layer = build_layer(attention, 16).train()
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(layer, backend=counter, fullgraph=True)
    for batch in (2, 3, 4, 5):
        x = torch.randn(batch, 16, 12, 12, requires_grad=True)
        compiled(x).square().mean().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()
    assert counter.frame_count <= 2, f"{attention}: {counter.frame_count} compilations for 4 batch sizes"
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), layer(x))
