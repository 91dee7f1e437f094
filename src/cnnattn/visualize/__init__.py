"""Seeing what attention does: captured maps, deformable sampling points, CAMs, localisation scores, figures."""

from .capture import Maps, attention_named_modules, capture

__all__ = ["Maps", "attention_named_modules", "capture"]
