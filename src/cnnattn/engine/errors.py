"""Errors of a training run (a light module: the CLI imports it without Lightning)."""

__all__ = ["NonFiniteLossError"]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or Inf."""
