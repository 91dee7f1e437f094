"""``TrainConfig``: every setting of a training run, from defaults, a YAML file and ``key=value`` overrides."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["COMPARE_RECIPE", "DEFAULT_ATTENTIONS", "TrainConfig", "load_config", "parse_overrides"]

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step", "none")
PRECISIONS = {"32": "32-true", "bf16": "bf16-mixed", "fp16": "16-mixed", "amp": None}  # amp: bf16 CPU, fp16 GPU
LR_BASE = {"sgd": 0.1, "adamw": 1e-3}
WEIGHT_DECAY = {"sgd": 1e-4, "adamw": 0.05}
BAD_IMAGE = ("skip", "error")
TASKS = ("classify", "detect")
DETECTOR_ARCHS = ("fasterrcnn", "retinanet", "fcos")  # cnnattn.models.DETECTORS
AUGMENTS = ("auto", "crop", "rrc", "none")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
# The built-in comparison (`cnnattn compare` without --config): five variants × two seeds train in about 5 minutes
# on 2 CPU cores. Flags and key=value overrides still win.
DEFAULT_ATTENTIONS = ("none", "se", "cbam", "das", "eam")
COMPARE_RECIPE: dict[str, Any] = {
    "epochs": 2,
    "batch_size": 32,
    "opt": "adamw",
    "lr": 2e-3,
    "warmup_epochs": 0.3,
    "label_smoothing": 0.0,
    "train_subset": 2500,
}


# Allowed values of every numeric setting: (low, high, low inclusive, high inclusive); None = unbounded.
# Checked for every value, however given (default, YAML, flag, KEY=VALUE); nothing is silently replaced.
RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "img_size": (1, None, True, True),
    "epochs": (1, None, True, True),
    "batch_size": (1, None, True, True),
    "workers": (0, None, True, True),
    "lr": (0, None, True, True),  # 0: the weights stay (e.g. a control run)
    "lr_base": (0, None, False, True),
    "momentum": (0, 1, True, False),
    "weight_decay": (0, None, True, True),
    "warmup_epochs": (0, None, True, True),
    "step_epochs": (1, None, True, True),
    "step_gamma": (0, 1, False, True),
    "min_lr": (0, None, True, True),
    "label_smoothing": (0, 1, True, False),
    "ema_decay": (0, 1, False, False),
    "grad_clip": (0, None, False, True),
    "devices": (1, None, True, True),
    "num_nodes": (1, None, True, True),
    "seed": (0, 2**32 - 1, True, True),
    "hflip": (0, 1, True, True),
    "train_subset": (1, None, True, True),
    "val_fraction": (0, 1, False, False),
    "trainable_layers": (0, 5, True, True),
    "max_minutes": (0, None, False, True),
    "patience": (1, None, True, True),
    "log_every": (1, None, True, True),
    "log_maps": (1, None, True, True),
}


def _meta(help: str, choices: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A recipe field's ``help`` and ``choices``: they also make its command-line flag (``cnnattn train --help``)."""
    return {"help": help, "choices": choices}


def _setting(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A recipe field with an immutable default."""
    return field(default=default, metadata=_meta(help, choices))


@dataclass
class TrainConfig:
    """A training recipe. Units: epochs, pixels, per-process batch sizes; learning rates per global batch of 256.

    ``lr`` None means ``lr_base × global batch / 256`` (linear scaling, ``lr_base`` 0.1 for SGD, 1e-3 for
    AdamW); ``weight_decay`` None means 1e-4 (SGD) or 0.05 (AdamW). ``img_size`` None means the dataset's
    own default (32 for CIFAR and digits, 40 for cluttered digits, 224 otherwise). ``init_checkpoint``: a
    local state dict (e.g. ImageNet weights of the plain backbone) to start from; a classifier of another
    size and attention parameters missing from it keep their initialisation.

    ``task='detect'`` trains ``detector`` (Faster R-CNN, RetinaNet, FCOS) on the backbone ``model``; ``img_size``
    is then the detector's ``min_size`` (800 by default) and SGD's ``lr`` defaults to 0.02 × global batch / 16.
    """

    task: str = _setting("classify", "classify, or detect (the model is then the detector's backbone)", TASKS)
    detector: str = _setting("fasterrcnn", "with task=detect: the torchvision detector", DETECTOR_ARCHS)
    model: str = _setting("resnet18", "model name, e.g. resnet18_das (see `cnnattn list`)")
    data: str = _setting(
        "builtin:cluttered", "PATH (folder, .zip, CIFAR, Stanford Dogs, CUB) or builtin:digits|builtin:cluttered"
    )
    img_size: int | None = _setting(
        None, "input side in pixels (default: the dataset's); detection: the short side (min_size, default 800)"
    )
    epochs: int = _setting(10, "training epochs")
    batch_size: int = _setting(64, "per process; global batch = this × processes")
    workers: int = _setting(2, "data-loading processes per training process")
    opt: str = _setting("sgd", "optimiser", OPTIMIZERS)
    lr: float | None = _setting(None, "peak LR (default lr_base × global batch / 256)")
    lr_base: float | None = _setting(None, "LR per global batch of 256 (default 0.1 SGD, 1e-3 AdamW)")
    momentum: float = _setting(0.9, "SGD momentum")
    weight_decay: float | None = _setting(None, "default 1e-4 (SGD) or 0.05 (AdamW)")
    sched: str = _setting("cosine", "LR schedule after warm-up", SCHEDULES)
    warmup_epochs: float = _setting(0.0, "linear LR warm-up, in epochs")
    step_epochs: int = _setting(30, "step schedule: epochs between LR drops")
    step_gamma: float = _setting(0.1, "step schedule: LR factor at each drop")
    min_lr: float = _setting(0.0, "cosine schedule: final LR")
    label_smoothing: float = _setting(0.1, "cross-entropy label smoothing")
    precision: str = _setting("32", "32, bf16, fp16 (GPU) or amp (bf16 on CPU, fp16 on GPU)", tuple(PRECISIONS))
    ema_decay: float | None = _setting(None, "keep and evaluate an EMA of the weights, e.g. 0.9998")
    grad_clip: float | None = _setting(None, "clip the gradient norm to this value")
    channels_last: bool = _setting(False, "channels-last memory format")
    compile: bool = _setting(False, "torch.compile the training forward (inductor)")
    accelerator: str = _setting("auto", "auto, cpu or gpu")
    devices: int | str = _setting("auto", "devices per node: auto or a count (DDP when > 1)")
    num_nodes: int = _setting(1, "nodes (DDP across nodes, e.g. under torchrun)")
    strategy: str = _setting("auto", "Lightning strategy, e.g. ddp")
    sync_bn: bool = _setting(False, "synchronise every BatchNorm (backbone and attention) across processes")
    freeze_bn: bool | None = _setting(
        None,
        "freeze the backbone's BatchNorm (running statistics, no affine updates); default: frozen for detection "
        "(as torchvision's detectors, for pretrained backbones), trained for classification",
    )
    seed: int = _setting(0, "seed of initialisation, data order and augmentation")
    deterministic: bool = _setting(
        False,
        "bit-identical runs for a seed: Lightning's deterministic mode and torch.use_deterministic_algorithms "
        "(slower; an op without a deterministic kernel raises; CUDA's deformable convolution has none: a warning)",
    )
    output: str | None = _setting(None, "run folder (default runs/<model>-<data>-s<seed>)")
    augment: str = _setting("auto", "training augmentation: auto (by image size), crop, rrc or none", AUGMENTS)
    hflip: float | None = _setting(None, "horizontal-flip probability (default: per dataset)")
    on_bad_image: str = _setting("skip", "an unreadable image is skipped with a warning, or an error", BAD_IMAGE)
    train_subset: int | None = _setting(None, "train on N samples of the train split (fixed choice)")
    val_fraction: float = _setting(0.2, "detection data without split files: validation share (hash split)")
    trainable_layers: int = _setting(3, "detection: backbone stages that train, from the last (attention always)")
    max_minutes: float | None = _setting(None, "stop the run after this wall-clock time")
    patience: int | None = _setting(
        None, "stop when validation top-1 (detection: AP) has not improved for N epochs: training to convergence"
    )
    model_kwargs: dict[str, Any] = field(
        default_factory=dict,
        metadata=_meta("backbone arguments as a YAML mapping, e.g. '{stem: cifar}' (CIFAR stem of a ResNet: 3×3 conv, "
                       "stride 1, no max pool) or '{drop_path_rate: 0.1}'"),
    )  # fmt: skip
    attn_kwargs: dict[str, Any] = field(
        default_factory=dict,
        metadata=_meta("attention constructor arguments as a YAML mapping, e.g. '{rd_ratio: 0.125}'"),
    )
    init_checkpoint: str | None = _setting(None, "local state dict to start from (e.g. ImageNet weights)")
    progress: bool = _setting(True, "progress: a bar on a terminal, one line per epoch when stdout is a file or pipe")
    log_every: int = _setting(10, "log metrics every N steps")
    tensorboard: bool = _setting(True, "also write a TensorBoard log")
    log_maps: int | None = _setting(
        None, "every N epochs, draw the attention maps of 4 validation images into TensorBoard (classification)"
    )

    def __post_init__(self) -> None:
        self.attn_kwargs = _rd_ratio_for_reduction(self.model, self.attn_kwargs)
        self.validate()

    def validate(self) -> None:
        """ValueError naming the setting and what it accepts."""
        _choice("opt", self.opt, OPTIMIZERS)
        _choice("sched", self.sched, SCHEDULES)
        _choice("precision", self.precision, tuple(PRECISIONS))
        _choice("on_bad_image", self.on_bad_image, BAD_IMAGE)
        _choice("augment", self.augment, AUGMENTS)
        _choice("accelerator", self.accelerator, ACCELERATORS)
        for name in RANGES:
            _in_range(name, getattr(self, name))
        _choice("task", self.task, TASKS)
        _choice("detector", self.detector, DETECTOR_ARCHS)
        if self.sync_bn and self.freeze_bn:
            raise ValueError(
                "sync_bn and freeze_bn exclude each other: frozen BatchNorm uses its running statistics and has "
                "nothing to synchronise; choose one."
            )

    def resolved_lr(self, world_size: int, base: float | None = None, per_images: int = 256) -> float:
        """The peak learning rate for a global batch of ``batch_size × world_size``: ``lr`` if set, else ``lr_base``
        (or ``base``, or the optimiser's default) per ``per_images`` images. Detectors with SGD pass 0.02 per 16
        (:class:`~cnnattn.engine.detector_module.DetectorModule`)."""
        if self.lr is not None:
            return self.lr
        return (self.lr_base or base or LR_BASE[self.opt]) * self.batch_size * world_size / per_images

    def resolved_weight_decay(self) -> float:
        return WEIGHT_DECAY[self.opt] if self.weight_decay is None else self.weight_decay

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def _rd_ratio_for_reduction(model: str, attn_kwargs: dict[str, Any]) -> dict[str, Any]:
    """DAS's and AW's ``reduction=r`` of recipes and checkpoints of cnnattn 0.1.0 read as timm's ``rd_ratio=1/r``
    (every other module never took ``reduction``, and still refuses it, naming ``rd_ratio``)."""
    if "reduction" not in attn_kwargs or not model.endswith(("_das", "_aw")):
        return attn_kwargs
    kwargs = {k: v for k, v in attn_kwargs.items() if k != "reduction"}
    return {**kwargs, "rd_ratio": 1 / attn_kwargs["reduction"]}


def _in_range(name: str, value: object) -> None:
    """ValueError unless ``value`` (None: unset, or ``'auto'`` devices) is a finite number in ``RANGES[name]``."""
    if value is None or value == "auto":
        return
    low, high, low_in, high_in = RANGES[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number; got {value!r}.")
    below = low is not None and (value < low if low_in else value <= low)
    above = high is not None and (value > high if high_in else value >= high)
    if below or above or value != value:  # value != value: NaN
        lo = "(-inf" if low is None else f"{'[' if low_in else '('}{low}"
        hi = "inf)" if high is None else f"{high}{']' if high_in else ')'}"
        raise ValueError(f"{name} must be in {lo}, {hi}; got {value}.")


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}; got {value!r}.")


_FIELDS = {f.name: f for f in fields(TrainConfig)}


def _coerce(name: str, value: Any) -> Any:
    """A YAML/CLI value converted to the field's type (``'none'``/``null`` → None where allowed)."""
    if name not in _FIELDS:
        raise ValueError(f"unknown setting {name!r}; settings are: {', '.join(sorted(_FIELDS))}.")
    kind = str(_FIELDS[name].type)
    if "None" in kind and (value is None or (isinstance(value, str) and value.lower() in ("none", "null", ""))):
        return None  # YAML's null (a run's own config.yaml writes unset settings so), or the words on a command line
    if name == "devices" and value == "auto":
        return value
    try:
        if kind.startswith("bool"):
            return value if isinstance(value, bool) else {"true": True, "false": False}[str(value).lower()]
        if kind.startswith("int"):
            return _whole_number(value)
        if kind.startswith("float"):
            if isinstance(value, bool):
                raise ValueError
            return float(value)
    except (KeyError, ValueError, TypeError):
        raise ValueError(f"setting {name}: cannot read {value!r} as {kind}.") from None
    if kind.startswith("dict") and not isinstance(value, dict):
        raise ValueError(f"setting {name}: expected a mapping, got {value!r}.")
    return value


def _whole_number(value: Any) -> int:
    """``3``, ``'3'`` or ``3.0`` → 3; ValueError for ``2.7``, ``True`` or text (never rounded silently)."""
    if isinstance(value, bool):
        raise ValueError
    number = float(value) if isinstance(value, str) and not value.strip().lstrip("+-").isdigit() else value
    if isinstance(number, float) and not number.is_integer():
        raise ValueError
    return int(number)


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
