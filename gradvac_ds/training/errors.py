"""Errors that end a training run on purpose, each with the exit status ``gradvac-train`` returns.

Every rank raises the same one at the same point (the conditions are agreed collectively or read
from the shared file system), so the job ends as a whole, not with ranks left waiting.
"""

from __future__ import annotations

from gradvac_ds.errors import GradVacError


class RunStopped(GradVacError, RuntimeError):
    """A run that stops before its last step; ``exit_code`` is the process's exit status."""

    exit_code = 1


class RunDirError(RunStopped):
    """The run directory holds another run's outputs and neither ``--resume`` nor ``--overwrite`` says
    what to do with them."""


class CheckpointError(RunStopped):
    """A checkpoint cannot be loaded (or must not be written); the message names the file."""


class NonFiniteModelError(CheckpointError):
    """The weights hold a NaN or an infinity at checkpoint time: nothing is written, ``latest`` stays."""


class SkippedStepsError(RunStopped):
    """``training.max_consecutive_skipped_steps`` optimizer steps in a row were skipped."""


class Interrupted(RunStopped):
    """SIGTERM/SIGINT (or the loss of the launcher): the run stopped at a step boundary after writing
    a final checkpoint. The exit status is the shell's convention for a signal: 128 + its number
    (143 for SIGTERM, 130 for SIGINT)."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum
