"""The library's errors: one base class, one subclass per kind of failure.

Each subclass also derives from the built-in type callers would catch without knowing gradvac_ds
(``ValueError`` for bad input, ``RuntimeError`` for a broken run), so both ways of catching work.
"""

from __future__ import annotations


class GradVacError(Exception):
    """Base class of every error gradvac_ds raises on purpose."""


class ConfigError(GradVacError, ValueError):
    """A configuration field is missing, unknown, of the wrong type or out of range; the message
    names the dotted field and the allowed values."""


class StateMismatchError(GradVacError, ValueError):
    """A saved GradVac state belongs to other tasks or other parameter groups."""


class NonFiniteGramError(GradVacError, ValueError):
    """The Gram tensor holds NaN or Inf (a task's gradient overflowed); the step must be skipped."""


class TaskProtocolError(GradVacError, RuntimeError):
    """The training loop broke the task/step protocol (nesting, repeats, micro-batch counts)."""


class RankDivergenceError(GradVacError, RuntimeError):
    """Ranks ran different task sequences or computed different task orders or weights; continuing
    would corrupt the model."""


class UnsupportedEngineError(GradVacError, RuntimeError):
    """The DeepSpeed engine uses a configuration GradVac cannot hook into (yet)."""
