"""Exception types raised by the data package.

Every error message names where the problem is: a file and line, or a configuration field and
its allowed values, so that a user can fix the input without reading the code.
"""

from gradvac_ds.errors import ConfigError, GradVacError


class DataError(GradVacError, ValueError):
    """Invalid corpus content or layout (names the file and, where one exists, the line)."""


class DataConfigError(ConfigError):
    """Invalid data configuration (names the field and the allowed values)."""


class VocabularyError(GradVacError, RuntimeError):
    """SentencePiece training or loading failed, with the reason in plain words."""
