"""``capture``: the documented parts of every registered attention, outputs and state untouched, real checkpoints."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from timm.layers.cbam import CbamModule

import cnnattn
from cnnattn.attention import list_attention
from cnnattn.engine import TrainConfig, train
from cnnattn.engine.trained import load_trained_model

GATES_IN_UNIT = {"channel", "spatial", "map", "gate", "mask", "h", "w", "cw", "hc", "hw"}  # sigmoid outputs
EXPECTED_PARTS = {
    "se": {"channel"}, "eca": {"channel"}, "cbam": {"channel", "spatial"}, "gc": {"spatial", "context"},
    "gc_scale": {"spatial", "channel"}, "coord": {"h", "w"}, "nl": {"rows"}, "bam": {"channel", "spatial", "map"},
    "triplet": {"cw", "hc", "hw", "map"}, "das": {"gate", "offsets"}, "aa": {"rows"}, "eam": {"rows", "radius"},
    "aw": {"stats", "taps"},
}  # fmt: skip


def test_every_registered_attention_is_documented_here() -> None:
    assert {info.name for info in list_attention()} == set(EXPECTED_PARTS)


@pytest.mark.parametrize("name", sorted(EXPECTED_PARTS))
@pytest.mark.parametrize("training", [False, True])
def test_capture_parts_shapes_ranges_and_untouched_outputs(name: str, training: bool) -> None:
    model = cnnattn.create_model(f"resnet18_{name}", num_classes=10).train(training)
    twin = copy.deepcopy(model)
    x = torch.randn(2, 3, 64, 64)
    torch.manual_seed(1)
    expected = twin(x)
    torch.manual_seed(1)
    with cnnattn.capture(model) as maps:
        out = model(x)
    assert torch.equal(out, expected)  # bit-identical, also in training mode (BatchNorm statistics, RNG)
    for (key, a), b in zip(model.state_dict().items(), twin.state_dict().values(), strict=True):
        assert torch.equal(a, b), key
    assert set(maps) == {n for p in model.cnnattn_placements for n in p.modules}
    for module_name, parts in maps.items():
        assert set(parts) == EXPECTED_PARTS[name], module_name
        module = model.get_submodule(module_name)
        for part, value in parts.items():
            assert torch.isfinite(value).all() and not value.requires_grad
            if part in GATES_IN_UNIT:
                assert value.min() >= 0 and value.max() <= 1, (module_name, part)
            if part == "rows":
                assert torch.allclose(value.flatten(-2).sum(-1), torch.ones(()), atol=1e-5)
        if name == "das":
            size = parts["gate"].shape
            assert size[:2] == (2, module.channels) and parts["offsets"].shape == (2, module.num_offsets, *size[2:])
        if name == "aw":
            k = module.kernel_size
            assert parts["stats"].shape == (2, 4) and parts["taps"].shape == (2, *k)
        if name == "eam":
            assert torch.equal(parts["radius"], module.radius.detach())


def test_hooks_are_removed_and_nothing_is_recorded_outside_the_block() -> None:
    model = cnnattn.create_model("resnet18_cbam", num_classes=10).eval()
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    with cnnattn.capture(model) as maps:
        pass
    model(torch.randn(1, 3, 32, 32))
    assert maps == {} and sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == hooks


def test_a_gate_forced_onto_a_square_puts_its_mass_in_the_square() -> None:
    cbam = CbamModule(8).eval()  # no cnnattn placement record: found by its registered type
    conv, norm = cbam.spatial.conv.conv, cbam.spatial.conv.bn
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 3, 3] = 40.0  # the channel mean (about half the input after the channel gate)
        norm.bias.fill_(-8.0)
    x = torch.zeros(1, 8, 16, 16)
    x[..., 4:8, 10:14] = 1.0
    with cnnattn.capture(cbam) as maps:
        cbam(x)
    spatial = maps[""]["spatial"][0, 0]
    inside = spatial[4:8, 10:14].sum() / spatial.sum()
    assert inside > 0.95 and spatial.argmax() // 16 in range(4, 8)


def test_query_selects_the_attention_row_and_is_validated() -> None:
    model = cnnattn.create_model("resnet18_nl", num_classes=10).eval()
    x = torch.randn(1, 3, 128, 128)
    with cnnattn.capture(model, query=(0.0, 0.0)) as corner:
        model(x)
    with cnnattn.capture(model) as centre:
        model(x)
    assert not torch.equal(corner["layer3.1.attn_stage"]["rows"], centre["layer3.1.attn_stage"]["rows"])
    with pytest.raises(ValueError, match=r"query must be \(y, x\) fractions"), cnnattn.capture(model, (0.5, 2.0)):
        pass


def test_capture_works_on_a_checkpoint_loaded_as_eval_loads_it(tmp_path: Path) -> None:
    config = TrainConfig(data="builtin:digits", model="resnet18_das", img_size=64, epochs=1, batch_size=16, workers=0,
                         train_subset=32, progress=False, tensorboard=False, output=str(tmp_path))  # fmt: skip
    model, _, _ = load_trained_model(train(config).last_checkpoint)
    with cnnattn.capture(model) as maps:
        model(torch.randn(2, 3, 64, 64))
    assert maps and all(parts["gate"].shape[0] == 2 for parts in maps.values())


def test_capture_in_a_detector() -> None:
    detector = cnnattn.create_detector("retinanet", "resnet18_se", 3, min_size=64, max_size=64).eval()
    with cnnattn.capture(detector) as maps:
        detector([torch.rand(3, 64, 64)])
    assert set(maps) == {n for p in detector.cnnattn_placements for n in p.modules} and maps


def test_training_logs_attention_maps_to_tensorboard_every_n_epochs(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = TrainConfig(data="builtin:cluttered", model="resnet18_cbam", img_size=64, epochs=2, batch_size=16,
                         workers=0, train_subset=32, progress=False, log_maps=2, output=str(tmp_path))  # fmt: skip
    train(config)
    events = EventAccumulator(str(next((tmp_path / "tensorboard").rglob("events.out.tfevents.*")).parent))
    events.Reload()
    assert "attention_maps" in events.Tags()["images"]
    images = events.Images("attention_maps")
    assert len(images) == 1 and images[0].width > 300  # after epoch 2 only (every 2 epochs)
    with pytest.raises(ValueError, match=r"log_maps must be in \[1, inf\); got 0"):
        TrainConfig(log_maps=0)
