"""Errors of a training run (a light module: the CLI imports it without Lightning)."""

__all__ = ["CheckpointWriteError", "NonFiniteLossError", "TrainingInterrupted"]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or Inf."""


class TrainingInterrupted(RuntimeError):
    """Training stopped on SIGTERM (e.g. a scheduler's preemption) after writing a resumable checkpoint.

    ``exit_code`` is 143 (128 + SIGTERM), what a shell reports for a process ended by SIGTERM.
    """

    exit_code = 143

    def __init__(self, state: str, advice: str) -> None:
        super().__init__(f"{state} {advice}")
        self.state, self.advice = state, advice


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (e.g. the disk is full); the previous file at that path is intact."""
