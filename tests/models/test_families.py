"""The contract of every backbone family × built-in attention × position the family has (families.py): every
plain state-dict key keeps its name and value, each placed module runs once per forward, and the placement
survives deepcopy, pickling, timm's SyncBatchNorm conversion and FX tracing (timm's leaf modules). Each family's
attention-aware blocks compile with ``torch.jit.script`` with every slot filled (where the base model scripts;
that each attention module scripts is the ResNet contract suite's part). A request the family cannot take is
refused before anything changes."""

from __future__ import annotations

import copy
import functools
import pickle
import warnings

import families as fam
import pytest
import timm
import torch
import torchvision.models as tvm
from timm.layers import convert_sync_batchnorm, get_notrace_functions, get_notrace_modules
from timm.models import FeatureListNet
from torch import fx, nn
from torch._dynamo.testing import CompileCounterWithBackend

import cnnattn
from cnnattn.attention import get_attention_info, list_attention
from cnnattn.models import backbone_stages
from cnnattn.models.adapters import find_adapter

BUILTIN = ("aa", "aw", "bam", "cbam", "coord", "das", "eam", "eca", "gc", "gc_scale", "nl", "se", "triplet")
GROUPED = {"timm_resnext", "tv_resnext", "timm_convnext", "tv_convnext", "timm_regnet", "tv_regnet"} | {
    f for f, a in fam.ADAPTERS.items() if a == "efficientnet"
}
UNSCRIPTABLE = {"timm_dla"}  # the feature_info fallback's classes call super().forward
TV_MODELS = (
    "resnext50_32x4d",
    "convnext_tiny",
    "efficientnet_b0",
    "mobilenet_v3_large",
    "regnet_y_400mf",
    "vgg11_bn",
    "densenet121",
)
TIMM_MODELS = (
    "convnext_atto",
    "efficientnet_b0",
    "mobilenetv3_large_100",
    "regnety_008",
    "vgg11_bn",
    "densenet121",
)  # the feature_info fallback's classes call super().forward


def _cases() -> list[tuple[str, str, str]]:
    cases = []
    for family, build in fam.FAMILIES.items():
        positions = find_adapter(build()).positions
        for info in list_attention():
            if info.name in BUILTIN:
                wanted = ("conv",) if info.kind == "conv" else tuple(p for p in positions if p != "conv")
                cases += [(family, info.name, p) for p in wanted if p in positions]
    return cases


CASES = _cases()
INPUT = torch.randn(2, 3, fam.IMG_SIZE, fam.IMG_SIZE, generator=torch.Generator().manual_seed(0))


@functools.lru_cache(maxsize=len(fam.FAMILIES))
def _plain(family: str) -> nn.Module:
    torch.manual_seed(0)
    return fam.FAMILIES[family]().eval()


def _refused(family: str, attention: str) -> bool:
    info = get_attention_info(attention)
    return info.kind == "conv" and not info.grouped and family in GROUPED


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _run_counting(model: nn.Module) -> tuple[torch.Tensor, list[int]]:
    names = [n for p in model.cnnattn_placements for n in p.modules]
    modules = [model.get_submodule(n) for n in names]
    calls = [0] * len(modules)
    handles = [
        m.register_forward_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1)) for i, m in enumerate(modules)
    ]
    try:
        with torch.no_grad():
            out = model(INPUT)
    finally:
        for handle in handles:
            handle.remove()
    return out, calls


class _TimmTracer(fx.Tracer):
    """torch.fx with timm's leaf modules and functions, as timm's own feature extraction traces."""

    def __init__(self) -> None:
        super().__init__(autowrap_functions=tuple(get_notrace_functions()))
        self.leaves = tuple(get_notrace_modules())

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, self.leaves) or super().is_leaf_module(m, qualname)


def _fx(model: nn.Module) -> nn.Module:
    return fx.GraphModule(model, _TimmTracer().trace(model))


@pytest.mark.parametrize("case", CASES, ids=["-".join(c) for c in CASES])
def test_family_placement_keeps_keys_runs_and_survives_rebuilds(case: tuple[str, str, str]) -> None:
    family, attention, position = case
    model = copy.deepcopy(_plain(family))
    before = _state(model)
    if _refused(family, attention):
        with pytest.raises(ValueError, match=r"cannot replace .*groups"):
            cnnattn.attach(model, attention, position=position)
        after = _state(model)
        assert after.keys() == before.keys() and all(torch.equal(after[k], v) for k, v in before.items())
        assert not hasattr(model, "cnnattn_placements") and all(type(m).__name__[:4] != "Attn" for m in model.modules())
        return
    cnnattn.attach(model, attention, position=position)
    placement = model.cnnattn_placements[-1]
    after = model.state_dict()
    kept = {k: v for k, v in before.items() if k not in placement.removed_keys}
    assert all(torch.equal(after[k], v) for k, v in kept.items())
    if get_attention_info(attention).kind == "gate":
        assert placement.removed_keys == []
    else:  # only what the replaced convs held
        assert all(any(k.startswith(f"{c}.") for c in placement.modules) for k in placement.removed_keys)
    out, calls = _run_counting(model)
    assert calls == [1] * len(calls) and torch.isfinite(out).all()
    rebuilds = {"deepcopy": copy.deepcopy, "pickle": lambda m: pickle.loads(pickle.dumps(m))}
    rebuilds["sync_bn"] = lambda m: convert_sync_batchnorm(copy.deepcopy(m)).eval()
    rebuilds["fx"] = _fx
    for name, rebuild in rebuilds.items():
        with torch.no_grad():
            torch.testing.assert_close(rebuild(model)(INPUT), out, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
@pytest.mark.parametrize("family", [f for f in fam.FAMILIES if f not in UNSCRIPTABLE])
def test_family_blocks_script_with_every_slot_filled(family: str) -> None:
    model = copy.deepcopy(_plain(family))
    for position in find_adapter(model).positions:
        if position != "conv":
            cnnattn.attach(model, "se", position=position)
    out, calls = _run_counting(model)
    assert calls == [1] * len(calls)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.script(model)(INPUT), out, rtol=1e-5, atol=1e-6)


def test_the_feature_info_fallback_says_it_does_not_script() -> None:
    model = cnnattn.attach(copy.deepcopy(_plain("timm_dla")), "se", position="stage")
    with pytest.raises(Exception, match="variable number of arguments"):
        torch.jit.script(model)


REAL_MODELS = {
    **{f"tv_{n}": functools.partial(getattr(tvm, n)) for n in TV_MODELS},
    **{f"timm_{n}": functools.partial(timm.create_model, n) for n in TIMM_MODELS},
}


@pytest.mark.parametrize("name", list(REAL_MODELS))
def test_real_models_take_se_at_their_default_and_das_at_stage(name: str) -> None:
    """Full-size torchvision and timm models: SE at the family's default position and DAS at ``stage`` run in
    forward; every plain key keeps its name and value."""
    plain = REAL_MODELS[name]().eval()
    before = _state(plain)
    for attention, position in (("se", None), ("das", "stage")):
        model = cnnattn.attach(copy.deepcopy(plain), attention, position=position)
        after = model.state_dict()
        assert all(torch.equal(after[k], v) for k, v in before.items()), f"{attention} changed a plain key"
        out, calls = _run_counting(model)
        assert calls == [1] * len(calls) and len(calls) >= 4 and out.shape == (2, 1000)


def test_a_refused_request_changes_nothing() -> None:
    """EfficientNetV2's dense fused convs come before its depthwise ones: AA could take the first, not the later."""
    model = timm.create_model("efficientnetv2_rw_t")
    before, classes = _state(model), [type(m) for m in model.modules()]
    with pytest.raises(ValueError, match=r"'aa' cannot replace blocks\.3\.0\.conv_dw .*groups.*aw"):
        cnnattn.attach(model, "aa", position="conv")
    after = _state(model)
    assert after.keys() == before.keys() and all(torch.equal(after[k], v) for k, v in before.items())
    assert [type(m) for m in model.modules()] == classes and not hasattr(model, "cnnattn_placements")
    with pytest.raises(ValueError, match="already has attention"):  # a taken slot, found before anything changes
        cnnattn.attach(cnnattn.attach(model, "se", stages=(4,)), "se", stages=(3, 4))
    assert len(model.cnnattn_placements) == 1 and type(model.blocks[4][0]).__name__ == "InvertedResidual"


def test_the_feature_info_fallback_gates_stages_and_names_what_else_is_possible() -> None:
    model = cnnattn.attach(timm.create_model("dla34"), "se", position="stage")
    assert model.cnnattn_placements[0].modules == [f"level{i}.attn_stage" for i in (2, 3, 4, 5)]
    out, calls = _run_counting(model)
    assert calls == [1] * 4 and out.shape == (2, 1000)
    assert pickle.loads(pickle.dumps(model)).level2.attn_stage is not None
    message = r"^timm\.models\.dla\.DLA has no backbone adapter: only position='stage' works.*level5\); not 'block'\.$"
    with pytest.raises(ValueError, match=message):
        cnnattn.attach(timm.create_model("dla34"), "se", position="block")
    with pytest.raises(
        ValueError, match=r"layer1\.0 is a timm\.models\.resnest\.ResNestBottleneck, a class no adapter"
    ):
        cnnattn.attach(timm.create_model("resnest14d"), "se", position="block")


def test_stages_come_from_feature_info_under_output_stride() -> None:
    """Grouping EfficientNet-B0's blocks by stride at output_stride=16 would leave stage 4 empty."""
    for output_stride in (32, 16):
        model = timm.create_model("efficientnet_b0", output_stride=output_stride)
        stages = backbone_stages(model)
        assert [len(s) for s in stages] == [2, 2, 6, 5]
        assert [s[-1].name for s in stages] == ["blocks.1.1", "blocks.2.1", "blocks.4.2", "blocks.6.0"]


@pytest.mark.parametrize("replace", [False, True])
def test_expansion_keeps_or_replaces_the_builtin_se(replace: bool) -> None:
    model = timm.create_model("efficientnet_b0")
    se_keys = {k for k in model.state_dict() if ".se." in k and not k.startswith("blocks.0.")}  # blocks.0: stem
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cnnattn.attach(model, "eca", position="expansion", replace_builtin=replace)
    placement = model.cnnattn_placements[0]
    block = model.blocks[1][0]
    if replace:
        assert type(block.se).__name__ == "EcaModule" and getattr(block, "attn_exp", None) is None
        assert set(placement.removed_keys) == se_keys and "replaced the blocks' own SE" in str(caught[0].message)
    else:
        assert type(block.se).__name__ == "SqueezeExcite" and type(block.attn_exp).__name__ == "EcaModule"
        assert placement.removed_keys == [] and not caught
    assert len(placement.modules) == 15  # every block but the stem's (blocks.0) has an expansion point
    _, calls = _run_counting(model)
    assert calls == [1] * 15
    with pytest.raises(ValueError, match="replace_builtin=True needs position='expansion'"):
        cnnattn.attach(model, "eca", replace_builtin=True)


def test_positions_a_family_lacks_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'vgg' has no position 'block'; it has after_block, stage, conv"):
        cnnattn.attach(tvm.vgg11(), "se", position="block")
    with pytest.raises(ValueError, match="'timm_resnet' has no position 'expansion'"):
        cnnattn.attach(timm.create_model("resnet18"), "se", position="expansion")


def test_conv_kinds_keep_the_replaced_conv_bias() -> None:
    model = copy.deepcopy(_plain("timm_convnext"))
    bias = model.stages[0].blocks[0].conv_dw.bias.clone()
    keys = set(model.state_dict())
    cnnattn.attach(model, "aw", position="conv")
    assert set(model.state_dict()) >= keys and model.cnnattn_placements[0].removed_keys == []
    torch.testing.assert_close(model.stages[0].blocks[0].conv_dw.bias, bias)
    with torch.no_grad():  # AW starts as the plain conv (zero-initialised attention): the same outputs
        torch.testing.assert_close(model(INPUT), _plain("timm_convnext")(INPUT), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", ["timm_convnext", "timm_efficientnet", "timm_regnet", "timm_densenet"])
def test_features_only_and_detector_bodies_are_found_by_type(family: str) -> None:
    plain = _plain(family)
    features = FeatureListNet(
        copy.deepcopy(plain), out_indices=tuple(range(len(plain.feature_info))), flatten_sequential=True
    )
    expected = [len(s) for s in backbone_stages(plain)]
    assert [len(s) for s in backbone_stages(features)] == expected
    cnnattn.attach(features, "se", position="stage")
    _, calls = _run_counting(features)
    assert calls == [1] * 4


@pytest.mark.parametrize("family", ["tv_convnext", "tv_efficientnet", "tv_regnet", "tv_vgg", "tv_densenet", "timm_dla"])
def test_compiled_family_runs_and_trains_its_attention(family: str) -> None:
    """The real ``torch.compile`` (dynamo and AOTAutograd, ``aot_eager`` lowering) on one model of each new adapter
    (ResNets: tests/models/test_compile.py) with an SE gate at the family's default position: same output as eager,
    and the gates get gradients."""
    torch._dynamo.reset()
    model = cnnattn.attach(copy.deepcopy(_plain(family)), "se").eval()  # eval: no stochastic depth to differ
    eager = copy.deepcopy(model)
    counter = CompileCounterWithBackend("aot_eager")
    out = torch.compile(model, backend=counter)(INPUT)
    expected = eager(INPUT)
    assert counter.frame_count >= 1
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    out.square().mean().backward()
    gates = [model.get_submodule(n) for n in model.cnnattn_placements[0].modules]
    assert all(sum(p.grad.abs().sum() for p in g.parameters() if p.grad is not None) > 0 for g in gates)
