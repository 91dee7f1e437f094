"""Attention modules and their registry. Importing this package registers every built-in module."""

from . import bam, timm_baselines, triplet  # noqa: F401  (registration side effects)
from .bam import BAM
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
    "AttentionInfo",
    "TripletAttention",
    "ZPool",
    "ZPoolGate",
    "create_attention",
    "get_attention_info",
    "list_attention",
    "register_attention",
]
