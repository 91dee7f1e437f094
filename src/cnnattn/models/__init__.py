"""Backbones, attention placement, the model factory and its timm registration."""

from . import timm_registry  # noqa: F401  (registers cnnattn names in timm)
from .checkpoint import load_checkpoint, read_state_dict
from .factory import BACKBONES, ModelSpec, create_model, list_models, parse_model_name
from .placement import Placement, attach
from .sites import SUPPORTED_MODELS, BlockSite, backbone_stages

__all__ = [
    "BACKBONES",
    "SUPPORTED_MODELS",
    "BlockSite",
    "ModelSpec",
    "Placement",
    "attach",
    "backbone_stages",
    "create_model",
    "list_models",
    "load_checkpoint",
    "parse_model_name",
    "read_state_dict",
]
