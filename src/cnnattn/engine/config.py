"""``TrainConfig``: every setting of a training run, from defaults, a YAML file and ``key=value`` overrides."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["TrainConfig", "load_config", "parse_overrides"]

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step", "none")
PRECISIONS = {"32": "32-true", "bf16": "bf16-mixed", "fp16": "16-mixed", "amp": None}  # amp: bf16 CPU, fp16 GPU
LR_BASE = {"sgd": 0.1, "adamw": 1e-3}
WEIGHT_DECAY = {"sgd": 1e-4, "adamw": 0.05}


@dataclass
class TrainConfig:
    """A training recipe. Units: epochs, pixels, per-process batch sizes; learning rates per global batch of 256.

    ``lr`` None means ``lr_base × global batch / 256`` (linear scaling, ``lr_base`` 0.1 for SGD, 1e-3 for
    AdamW); ``weight_decay`` None means 1e-4 (SGD) or 0.05 (AdamW). ``img_size`` None means the dataset's
    own default (32 for CIFAR and digits, 40 for cluttered digits, 224 otherwise). ``init_checkpoint``: a
    local state dict (e.g. ImageNet weights of the plain backbone) to start from; a classifier of another
    size and attention parameters missing from it keep their initialisation.
    """

    model: str = "resnet18"
    data: str = "builtin:cluttered"
    img_size: int | None = None
    epochs: int = 10
    batch_size: int = 64
    workers: int = 2
    opt: str = "sgd"
    lr: float | None = None
    lr_base: float | None = None
    momentum: float = 0.9
    weight_decay: float | None = None
    sched: str = "cosine"
    warmup_epochs: float = 0.0
    step_epochs: int = 30
    step_gamma: float = 0.1
    min_lr: float = 0.0
    label_smoothing: float = 0.1
    precision: str = "32"
    ema_decay: float | None = None
    grad_clip: float | None = None
    channels_last: bool = False
    compile: bool = False
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    sync_bn: bool = False
    freeze_bn: bool = False
    seed: int = 0
    output: str | None = None
    augment: str = "auto"
    hflip: float | None = None
    on_bad_image: str = "skip"
    train_subset: int | None = None
    max_minutes: float | None = None
    attn_kwargs: dict[str, Any] = field(default_factory=dict)
    init_checkpoint: str | None = None
    progress: bool = True
    log_every: int = 10
    tensorboard: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """ValueError naming the setting and what it accepts."""
        _choice("opt", self.opt, OPTIMIZERS)
        _choice("sched", self.sched, SCHEDULES)
        _choice("precision", self.precision, tuple(PRECISIONS))
        _choice("on_bad_image", self.on_bad_image, ("skip", "error"))
        for name in ("epochs", "batch_size", "num_nodes"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}.")
        if self.workers < 0:
            raise ValueError(f"workers must be 0 or more; got {self.workers}.")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in (0, 1), e.g. 0.9998; got {self.ema_decay}.")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1); got {self.label_smoothing}.")

    def resolved_lr(self, world_size: int) -> float:
        """The peak learning rate for a global batch of ``batch_size × world_size``."""
        if self.lr is not None:
            return self.lr
        return (self.lr_base or LR_BASE[self.opt]) * self.batch_size * world_size / 256

    def resolved_weight_decay(self) -> float:
        return WEIGHT_DECAY[self.opt] if self.weight_decay is None else self.weight_decay

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}; got {value!r}.")


_FIELDS = {f.name: f for f in fields(TrainConfig)}


def _coerce(name: str, value: Any) -> Any:
    """A YAML/CLI value converted to the field's type (``'none'``/``null`` → None where allowed)."""
    if name not in _FIELDS:
        raise ValueError(f"unknown setting {name!r}; settings are: {', '.join(sorted(_FIELDS))}.")
    kind = str(_FIELDS[name].type)
    if isinstance(value, str) and value.lower() in ("none", "null", "") and "None" in kind:
        return None
    if name == "devices":
        return value if value == "auto" else int(value)
    try:
        if kind.startswith("bool"):
            return value if isinstance(value, bool) else {"true": True, "false": False}[str(value).lower()]
        if kind.startswith("int"):
            return int(value)
        if kind.startswith("float"):
            return float(value)
    except (KeyError, ValueError):
        raise ValueError(f"setting {name}: cannot read {value!r} as {kind}.") from None
    if kind.startswith("dict") and not isinstance(value, dict):
        raise ValueError(f"setting {name}: expected a mapping, got {value!r}.")
    return value


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``['lr=0.05', 'sched=step']`` → ``{'lr': 0.05, 'sched': 'step'}`` (values parsed as YAML scalars)."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} is not key=value, e.g. lr=0.05.")
        out[key.strip().replace("-", "_")] = yaml.safe_load(value) if value else value
    return out


def load_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Defaults, then the YAML file's keys, then ``overrides`` (None values are ignored)."""
    values: dict[str, Any] = {}
    if path is not None:
        values.update(_read_yaml(Path(path)))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**{k: _coerce(k, v) for k, v in values.items()})


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found.")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err}).") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of settings, got {type(values).__name__}.")
    return {k.replace("-", "_"): v for k, v in values.items()}
