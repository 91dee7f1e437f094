"""Backbones, attention placement, the model factory and its timm registration."""

from . import timm_registry  # noqa: F401  (registers cnnattn names in timm)
from .adapters import SUPPORTED_MODELS, BackboneAdapter, BlockSite, backbone_stages, list_adapters, register_adapter
from .checkpoint import load_checkpoint, read_state_dict
from .detection import DETECTORS, create_detector
from .factory import BACKBONES, ModelSpec, create_model, list_models, parse_model_name
from .placement import Placement, attach

__all__ = [
    "BACKBONES",
    "DETECTORS",
    "SUPPORTED_MODELS",
    "BackboneAdapter",
    "BlockSite",
    "ModelSpec",
    "Placement",
    "attach",
    "backbone_stages",
    "create_detector",
    "create_model",
    "list_adapters",
    "list_models",
    "load_checkpoint",
    "parse_model_name",
    "read_state_dict",
    "register_adapter",
]
