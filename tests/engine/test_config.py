"""Recipes: defaults < YAML < overrides, type coercion, errors that name the setting; schedules."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from cnnattn.engine import TrainConfig, load_config, parse_overrides
from cnnattn.engine.config import RANGES
from cnnattn.engine.schedule import WarmupSchedule
from cnnattn.engine.training import _yaml

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_yaml_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("model: resnet50_das\nepochs: 90\nlr: 0.2\nema-decay: 0.999\n")
    config = load_config(path, epochs=None, **parse_overrides(["lr=0.05", "sched=step", "grad_clip=none"]))
    assert (config.model, config.epochs, config.lr, config.sched, config.ema_decay) == (
        "resnet50_das",
        90,
        0.05,
        "step",
        0.999,
    )
    assert config.grad_clip is None


def test_a_runs_own_config_yaml_loads_back_as_the_same_recipe(tmp_path: Path) -> None:
    """``cnnattn train --config <run>/config.yaml`` repeats a run: its unset settings are YAML nulls."""
    config = TrainConfig(model="resnet18_aw", data="builtin:cluttered", epochs=15, seed=1, train_subset=2500,
                         patience=3, model_kwargs={"stem": "cifar"}, output=str(tmp_path / "run"))  # fmt: skip
    path = tmp_path / "config.yaml"
    path.write_text(_yaml(config))
    assert "lr_base: null" in path.read_text()
    assert load_config(path) == config


def test_overrides_are_coerced_to_the_field_type() -> None:
    config = load_config(**parse_overrides(["epochs=3", "channels_last=true", "devices=2", "warmup_epochs=1"]))
    assert config.epochs == 3 and config.channels_last is True and config.devices == 2 and config.warmup_epochs == 1.0


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["colour=red"], "unknown setting 'colour'; settings are:"),
        (["epochs=many"], "setting epochs: cannot read 'many'"),
        (["opt=lamb"], r"opt must be one of \['sgd', 'adamw'\]; got 'lamb'"),
        (["precision=fp8"], "precision must be one of"),
        (["epochs=0"], r"epochs must be in \[1, inf\); got 0"),
        (["img_size=0"], r"img_size must be in \[1, inf\); got 0"),
        (["epochs=2.7"], "setting epochs: cannot read 2.7"),
        (["batch_size=true"], "setting batch_size: cannot read True"),
        (["lr=nan"], r"lr must be in \[0, inf\); got nan"),
        (["label_smoothing=1"], r"label_smoothing must be in \[0, 1\); got 1.0"),
        (["trainable_layers=6"], r"trainable_layers must be in \[0, 5\]; got 6"),
        (["seed=-1"], "seed must be in"),
        (["augment=heavy"], "augment must be one of"),
        (["ema_decay=1.5"], "ema_decay must be in"),
        (["lr"], "override 'lr' is not key=value"),
    ],
)
def test_bad_settings_name_the_problem(overrides: list[str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_config(**parse_overrides(overrides))


@pytest.mark.parametrize("name", sorted(RANGES))
def test_every_numeric_setting_is_range_checked_never_replaced(name: str) -> None:
    """A value just outside the range of each numeric setting is a ValueError naming it, from a flag's text too."""
    low, high, low_in, _ = RANGES[name]
    outside = (low - 1 if low_in else low) if low is not None else high + 1
    with pytest.raises(ValueError, match=f"^{name} must be in "):
        load_config(**{name: str(outside)})
    inside = low + 1 if low is not None and (high is None or high - low > 1) else (low + high) / 2
    kind = str(TrainConfig.__dataclass_fields__[name].type)
    value = int(inside) if kind.startswith("int") else float(inside)
    assert getattr(load_config(**{name: str(value)}), name) == value  # and a value inside is kept as given


def test_bad_config_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="config file"):
        load_config(tmp_path / "none.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="expected a mapping of settings"):
        load_config(tmp_path / "list.yaml")


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path: Path) -> None:
    config = load_config(path)
    assert config.epochs >= 1 and config.model


def test_lr_scales_with_the_global_batch() -> None:
    assert TrainConfig(batch_size=64).resolved_lr(world_size=4) == pytest.approx(0.1)
    assert TrainConfig(batch_size=64, lr=0.3).resolved_lr(world_size=4) == 0.3
    assert TrainConfig(opt="adamw").resolved_weight_decay() == 0.05


def test_schedules() -> None:
    cosine = WarmupSchedule("cosine", total_steps=110, warmup_steps=10)
    assert cosine(0) == pytest.approx(0.1) and cosine(9) == 1.0
    assert cosine(10) == 1.0 and cosine(60) == pytest.approx(0.5) and cosine(110) == pytest.approx(0.0, abs=1e-12)
    step = WarmupSchedule("step", total_steps=100, step_size=30, gamma=0.1)
    assert [step(s) for s in (0, 29, 30, 61)] == pytest.approx([1.0, 1.0, 0.1, 0.01])
    floor = WarmupSchedule("cosine", total_steps=10, min_ratio=0.01)
    assert floor(10) == pytest.approx(0.01) and not math.isnan(floor(5))
    assert WarmupSchedule("none", total_steps=10)(7) == 1.0


def test_recipes_with_das_and_aw_reduction_read_as_rd_ratio() -> None:
    """Recipes (and checkpoints) of cnnattn 0.1.0 gave DAS and AW ``reduction=r``; they load as ``rd_ratio=1/r``."""
    assert TrainConfig(model="resnet18_das", attn_kwargs={"reduction": 8}).attn_kwargs == {"rd_ratio": 0.125}
    assert TrainConfig(model="resnet18_aw", attn_kwargs={"reduction": 4, "rank": 2}).attn_kwargs == {
        "rank": 2,
        "rd_ratio": 0.25,
    }
    se = TrainConfig(model="resnet18_se", attn_kwargs={"reduction": 8})
    assert se.attn_kwargs == {"reduction": 8}  # refused when the model is built, naming rd_ratio
