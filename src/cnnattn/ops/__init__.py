"""Low-level operators."""

from .deform_conv import DeformConv2d, deform_conv2d

__all__ = ["DeformConv2d", "deform_conv2d"]
