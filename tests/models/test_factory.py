from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file
from timm.models import model_entrypoint

import cnnattn
from cnnattn.attention import list_attention
from cnnattn.models import BACKBONES, ModelSpec, parse_model_name

GATES = [i.name for i in list_attention("gate")]


def test_every_backbone_has_every_attention_and_a_plain_name() -> None:
    names = set(cnnattn.list_models())
    for backbone in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "mobilenetv2"):
        assert backbone in names
        assert {f"{backbone}_{g}" for g in GATES} <= names
    assert cnnattn.list_models("*_eca") == sorted(f"{b}_eca" for b in BACKBONES)
    assert "resnet50_aw_cbam" in names and "resnet101_aw_se" in names


def test_parse_model_name() -> None:
    assert parse_model_name("resnet50_gc_scale") == ModelSpec("resnet50", ("gc_scale",))
    assert parse_model_name("mobilenetv2") == ModelSpec("mobilenetv2", ())
    assert parse_model_name("resnet18_se_eca") == ModelSpec("resnet18", ("se", "eca"))
    with pytest.raises(ValueError, match="unknown model 'resnet50_foo'.*cnnattn list"):
        parse_model_name("resnet50_foo")


def test_default_placement_follows_registry() -> None:
    model = cnnattn.create_model("resnet50_bam", num_classes=5)
    assert [p.modules for p in model.cnnattn_placements] == [
        ["layer1.2.attn_stage", "layer2.3.attn_stage", "layer3.5.attn_stage"]
    ]
    gc = cnnattn.create_model("resnet18_gc")
    assert not hasattr(gc.layer1[0], "attn") and hasattr(gc.layer2[0], "attn")


def test_placement_overrides() -> None:
    model = cnnattn.create_model(
        "resnet18_se", attn_stages=(4,), attn_position="after_block", attn_kwargs={"rd_ratio": 1 / 4}
    )
    assert model.cnnattn_placements[0].modules == ["layer4.0.attn_post", "layer4.1.attn_post"]
    assert model.layer4[0].attn_post.fc1.out_channels == 128
    with pytest.raises(ValueError, match="exactly one attention"):
        cnnattn.create_model("resnet18", attn_stages=(4,))


def test_pretrained_fails_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="downloads nothing.*checkpoint_path"):
        cnnattn.create_model("resnet50_cbam", pretrained=True)
    with pytest.raises(ValueError, match="no weights can be downloaded.*pretrained_cfg_overlay"):
        timm.create_model("resnet50_cbam", pretrained=True)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_plain_backbone_checkpoint_loads_into_attention_model(tmp_path: Path, suffix: str) -> None:
    plain = timm.create_model("resnet18", num_classes=10)
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".safetensors":
        save_file(plain.state_dict(), str(path))
    else:
        torch.save({"state_dict": {f"module.{k}": v for k, v in plain.state_dict().items()}}, path)
    model = cnnattn.create_model("resnet18_cbam", num_classes=10, checkpoint_path=path)
    torch.testing.assert_close(model.layer3[1].conv2.weight, plain.layer3[1].conv2.weight)
    torch.testing.assert_close(model.fc.weight, plain.fc.weight)
    via_timm = timm.create_model(
        "resnet18_cbam", num_classes=10, pretrained=True, pretrained_cfg_overlay={"file": str(path)}
    )
    torch.testing.assert_close(via_timm.conv1.weight, plain.conv1.weight)


def test_other_num_classes_keeps_fresh_classifier_with_warning(tmp_path: Path) -> None:
    path = tmp_path / "imagenet.pth"
    torch.save(timm.create_model("resnet18").state_dict(), path)
    with pytest.warns(UserWarning, match="different num_classes"):
        model = cnnattn.create_model("resnet18_se", num_classes=7, checkpoint_path=path)
    assert model.fc.out_features == 7


def test_wrong_or_unsafe_checkpoints_are_refused(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.pth"
    torch.save(timm.create_model("resnet34").state_dict(), wrong)
    with pytest.raises(ValueError, match="does not match resnet.*: missing"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cnnattn.create_model("resnet18_se", checkpoint_path=wrong)
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"state_dict": Path("x")}, unsafe)
    with pytest.raises(ValueError, match=r"holds a pickled Python object \(pathlib.*\), which cnnattn never loads"):
        cnnattn.create_model("resnet18", checkpoint_path=unsafe)
    with pytest.raises(FileNotFoundError, match=r"missing.pth not found \(expected a state dict"):
        cnnattn.create_model("resnet18", checkpoint_path=tmp_path / "missing.pth")


@pytest.mark.parametrize("name", ["resnet50_cbam", "mobilenetv2_triplet", "mobilenetv2"])
def test_timm_round_trip(name: str) -> None:
    ours, theirs = cnnattn.create_model(name, num_classes=10), timm.create_model(name, num_classes=10)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    assert name in timm.list_models(name)
    cfg = timm.data.resolve_data_config({}, model=theirs)
    assert cfg["input_size"][0] == 3


def test_timm_keeps_its_own_plain_resnets() -> None:
    assert model_entrypoint("resnet50").__module__ == "timm.models.resnet"
    assert model_entrypoint("resnet50_se").__module__ == "cnnattn.models.timm_registry"
    plain_ours = cnnattn.create_model("resnet50")
    assert sum(p.numel() for p in plain_ours.parameters()) == 25_557_032


@pytest.mark.parametrize(
    ("name", "channels", "reductions"),
    [
        ("resnet50_se", [64, 256, 512, 1024, 2048], [2, 4, 8, 16, 32]),
        ("mobilenetv2_cbam", [16, 24, 32, 96, 320], [2, 4, 8, 16, 32]),
    ],
)
def test_features_only_through_timm(name: str, channels: list[int], reductions: list[int]) -> None:
    model = timm.create_model(name, features_only=True)
    assert model.feature_info.channels() == channels
    assert model.feature_info.reduction() == reductions
    features = model(torch.randn(2, 3, 64, 64))
    assert [f.shape[1] for f in features] == channels
    assert [64 // f.shape[-1] for f in features] == reductions
    subset = timm.create_model(name, features_only=True, out_indices=(2, 4))
    assert [f.shape[1] for f in subset(torch.randn(1, 3, 64, 64))] == [channels[2], channels[4]]


def test_features_only_includes_attention() -> None:
    torch.manual_seed(0)
    full = cnnattn.create_model("mobilenetv2_se").eval()
    features = cnnattn.create_model("mobilenetv2_se", features_only=True).eval()
    features.load_state_dict(
        {
            k.replace("features.", "features_", 1): v
            for k, v in full.state_dict().items()
            if not k.startswith("classifier") and not k.startswith("features.18")
        }
    )
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(features(x)[-1], full.features[:18](x))


# The CIFAR ResNet-18 (3×3 stride-1 stem, no max pool, 10 classes) by hand at 32×32, in MACs:
# stem 3·64·9·32² + stage 1 4·64·64·9·32² + stages 2–4 each (first 3×3 conv + 3 more + 1×1 shortcut) 134,217,728
# + fc 512·10; its 11,173,962 parameters are the widely quoted figure of that network.
CIFAR_RESNET18_MACS = 1_769_472 + 150_994_944 + 3 * 134_217_728 + 5_120
CIFAR_RESNET18_PARAMS = 11_173_962


def test_cifar_stem_profile_matches_the_hand_count_of_cifar_resnet18() -> None:
    model = cnnattn.create_model("resnet18", num_classes=10, stem="cifar")
    cost = cnnattn.profile(model, (3, 32, 32))
    assert (cost.params, cost.macs) == (CIFAR_RESNET18_PARAMS, CIFAR_RESNET18_MACS)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, torch.nn.Identity)
    assert model.pretrained_cfg["input_size"] == (3, 32, 32) and model.pretrained_cfg["pool_size"] == (4, 4)
    assert "url" not in model.pretrained_cfg  # ImageNet weights do not fit a 3×3 stem


@pytest.mark.parametrize("name", ["resnet18_das", "resnet50_eam", "resnet34_aw"])
def test_cifar_stem_keeps_32px_maps_in_stage_1_and_the_same_placement(name: str) -> None:
    cifar = cnnattn.create_model(name, num_classes=10, stem="cifar")
    imagenet = cnnattn.create_model(name, num_classes=10)
    assert [p.modules for p in cifar.cnnattn_placements] == [p.modules for p in imagenet.cnnattn_placements]
    assert cifar(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    features = cnnattn.create_model(name, num_classes=10, stem="cifar", features_only=True)
    maps = features(torch.randn(1, 3, 32, 32))
    assert [m.shape[-1] for m in maps] == [32, 32, 16, 8, 4]
    assert features.feature_info.reduction() == [1, 1, 2, 4, 8]
    stem_params = sum(p.numel() for n, p in cifar.named_parameters() if n.startswith("conv1."))
    assert stem_params == 3 * 64 * 9  # the only parameters that differ from the ImageNet stem (3·64·49)
    params = [sum(p.numel() for p in m.parameters()) for m in (cifar, imagenet)]
    assert params[0] == params[1] - 3 * 64 * 40


def test_cifar_stem_through_timm_and_bad_stems() -> None:
    assert timm.create_model("resnet18_cbam", stem="cifar", num_classes=10).conv1.kernel_size == (3, 3)
    with pytest.raises(ValueError, match="unknown stem 'tiny'.*'imagenet', 'cifar'"):
        cnnattn.create_model("resnet18", stem="tiny")
    with pytest.raises(ValueError, match="stem='cifar' is for ResNets"):
        cnnattn.create_model("mobilenetv2_se", stem="cifar")
    with pytest.raises(ValueError, match="deep stem"):
        cnnattn.create_model("resnet18", stem="cifar", stem_type="deep")


def test_mobilenetv2_takes_timms_keywords_and_has_a_complete_cfg() -> None:
    """timm's scripts always pass in_chans, drop_rate, drop_path_rate and global_pool; timm's tests read pool_size."""
    import timm

    model = timm.create_model("mobilenetv2_aw", num_classes=4, in_chans=1, drop_rate=0.1, drop_path_rate=0.0,
                              global_pool="avg")  # fmt: skip
    assert model(torch.randn(2, 1, 64, 64)).shape == (2, 4) and model.classifier[0].p == 0.1
    cfg = model.pretrained_cfg
    wanted = {"input_size", "pool_size", "crop_pct", "interpolation", "mean", "std", "first_conv", "classifier"}
    assert wanted <= set(cfg) and cfg["input_size"] == (1, 224, 224) and cfg["pool_size"] == (7, 7)
    with pytest.raises(ValueError, match="no drop path"):
        timm.create_model("mobilenetv2_se", drop_path_rate=0.1)
