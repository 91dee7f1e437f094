"""Attention modules and their registry. Importing this package registers every built-in module."""

from . import aa, aw, bam, das, eam, timm_baselines, triplet  # noqa: F401  (registration side effects)
from .aa import AttentionAugmentedConv2d
from .aw import AWConv2d
from .bam import BAM
from .das import DASGate
from .eam import ExplicitAttentionConv2d
from .registry import (
    GATE_POSITIONS,
    POSITIONS,
    AttentionInfo,
    create_attention,
    get_attention_info,
    list_attention,
    register_attention,
)
from .triplet import TripletAttention, ZPool, ZPoolGate

__all__ = [
    "BAM",
    "GATE_POSITIONS",
    "POSITIONS",
    "AWConv2d",
    "AttentionAugmentedConv2d",
    "AttentionInfo",
    "DASGate",
    "ExplicitAttentionConv2d",
    "TripletAttention",
    "ZPool",
    "ZPoolGate",
    "create_attention",
    "get_attention_info",
    "list_attention",
    "register_attention",
]
