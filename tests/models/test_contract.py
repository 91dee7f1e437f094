"""The contract every attention placement keeps, for every registered attention × valid position × backbone family.

* outputs and state-dict keys equal the forward-hook placement's (``placement_reference.json``);
* every attention module still runs, once per forward, after what rebuilds modules: SyncBatchNorm conversion,
  deepcopy, pickle, cnnattn's and timm's BatchNorm freezing, conv-BN fusion;
* ``torch.jit.script`` compiles every gate placement and refuses conv kinds with a message naming the paths
  that work (tracing, ``torch.export``);
* the real ``torch.compile``: two different models compiled in one process each run and train their own
  attention (the forward-hook placement reused the first model's graph).
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import pickle
import re
from collections.abc import Callable
from pathlib import Path

import placement_reference as ref
import pytest
import torch
from timm.layers import convert_sync_batchnorm, freeze_batch_norm_2d
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

import cnnattn
from cnnattn.attention import get_attention_info, list_attention
from cnnattn.models.norm import freeze_batch_norm

CASES = ref.cases()
IDS = [ref.case_id(*case) for case in CASES]
REFERENCE = json.loads(ref.REFERENCE_FILE.read_text())
SRC = Path(cnnattn.__file__).parent


@functools.lru_cache(maxsize=2)  # tests run case by case (conftest.py): 163 float64 models cached at once took 10 GB
def _reference_model(attention: str, position: str, family: str) -> nn.Module:
    return ref.build(attention, position, family)


def _model(case: tuple[str, str, str]) -> nn.Module:
    return copy.deepcopy(_reference_model(*case))


def _expected(case: tuple[str, str, str]) -> torch.Tensor:
    return torch.tensor(REFERENCE[ref.case_id(*case)]["output"], dtype=torch.float64)


def _attention_modules(model: nn.Module) -> list[nn.Module]:
    names = [name for placement in model.cnnattn_placements for name in placement.modules]
    assert names, "the placement record lists no module"
    return [model.get_submodule(name) for name in names]


def _run_counting(model: nn.Module) -> tuple[torch.Tensor, list[int]]:
    """Output on the reference input, and how often each placed attention module ran."""
    modules = _attention_modules(model)
    calls = [0] * len(modules)
    handles = [
        m.register_forward_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1)) for i, m in enumerate(modules)
    ]
    try:
        with torch.no_grad():
            out = model(ref.reference_input())
    finally:
        for handle in handles:
            handle.remove()
    return out, calls


def test_every_builtin_attention_is_covered() -> None:
    assert {i.name for i in list_attention()} >= set(ref.BUILTIN_ATTENTIONS)
    assert len(CASES) == len(REFERENCE) == 163


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_outputs_and_keys_equal_the_hook_placement(case: tuple[str, str, str]) -> None:
    model = _reference_model(*case)
    expected = REFERENCE[ref.case_id(*case)]
    assert ref.keys_digest(model) == expected["keys_sha256"] and len(model.state_dict()) == expected["num_keys"]
    out, calls = _run_counting(model)
    assert calls == [1] * len(calls)
    torch.testing.assert_close(out, _expected(case), rtol=1e-7, atol=1e-9)


def _sync_bn(model: nn.Module) -> nn.Module:
    """timm's converter, as ``--sync-bn`` uses (torch's drops the activation of timm's BatchNormAct2d)."""
    return convert_sync_batchnorm(model)


def _pickle(model: nn.Module) -> nn.Module:
    return pickle.loads(pickle.dumps(model))


def _timm_freeze(model: nn.Module) -> nn.Module:
    return freeze_batch_norm_2d(model)


def _fuse_conv_bn(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm2d that directly follows a plain Conv2d among its siblings into the conv."""
    for parent in list(model.modules()):
        children = list(parent.named_children())
        for (conv_name, conv), (bn_name, bn) in itertools.pairwise(children):
            if type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d:
                setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(parent, bn_name, nn.Identity())
    return model


REBUILDS: dict[str, Callable[[nn.Module], nn.Module]] = {
    "sync_bn": _sync_bn,
    "deepcopy": copy.deepcopy,
    "pickle": _pickle,
    "freeze_batch_norm": freeze_batch_norm,
    "timm_freeze_batch_norm_2d": _timm_freeze,
    "fuse_conv_bn": _fuse_conv_bn,
}


@pytest.mark.parametrize("rebuild", list(REBUILDS))
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_rebuilt_model_still_runs_every_attention(case: tuple[str, str, str], rebuild: str) -> None:
    model = REBUILDS[rebuild](_model(case)).eval()
    out, calls = _run_counting(model)
    assert calls == [1] * len(calls), f"after {rebuild}, attention calls per module: {calls}"
    torch.testing.assert_close(out, _expected(case), rtol=1e-6, atol=1e-8)


def test_rebuilds_really_rebuild() -> None:
    """The rebuilds above replace the norms the forward-hook placement hung on."""
    model = _model(("se", "block", "tv_basic"))
    norm = model.layer1[0].bn2
    assert type(_sync_bn(copy.deepcopy(model)).layer1[0].bn2) is nn.SyncBatchNorm
    assert type(nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(model)).layer1[0].bn2) is nn.SyncBatchNorm
    assert type(_fuse_conv_bn(copy.deepcopy(model)).layer1[0].bn2) is nn.Identity
    assert type(_timm_freeze(copy.deepcopy(model)).layer1[0].bn2) is not type(norm)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_jit_script_compiles_gates_and_names_tracing_for_conv_kinds(case: tuple[str, str, str]) -> None:
    attention, _, _ = case
    model = _model(case)
    if get_attention_info(attention).kind == "conv":
        with pytest.raises(RuntimeError, match=r"cannot be compiled by torch\.jit\.script.*torch\.jit\.trace.*export"):
            torch.jit.script(model)
        return
    scripted = torch.jit.script(model)
    with torch.no_grad():
        torch.testing.assert_close(scripted(ref.reference_input()), _expected(case), rtol=1e-6, atol=1e-8)


def test_placement_code_uses_no_hooks() -> None:
    pattern = re.compile(r"register_(module_)?forward(_pre)?_hook")
    offenders = [str(p) for p in (SRC / "models").rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_attached_blocks_show_their_attention_in_the_module_tree() -> None:
    model = cnnattn.attach(ref.FAMILIES["tv_basic"](), "se", stages=(1,))
    block = model.layer1[0]
    assert type(block).__name__ == "AttnBasicBlock" and isinstance(block, type(model.layer2[0]))
    assert "(attn): SEModule" in repr(block) and block.attn_post is None and block.attn_stage is None
