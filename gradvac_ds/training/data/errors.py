"""Exception types raised by the data package.

Every error message names where the problem is: a file and line, or a configuration field and
its allowed values, so that a user can fix the input without reading the code.
"""

from gradvac_ds.errors import ConfigError, GradVacError


class DataError(GradVacError, ValueError):
    """Invalid corpus content or layout (names the file and, where one exists, the line)."""


class DataConfigError(ConfigError):
    """Invalid data configuration (names the field and the allowed values)."""


def check_integer_ranges(section: str, ranges: dict[str, tuple[object, int, int]]) -> None:
    """Raise :class:`DataConfigError` naming ``section.field`` unless each ``field: (value, low,
    high)`` of ``ranges`` holds an integer (not a bool) in ``[low, high]``."""
    for name, (value, low, high) in ranges.items():
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise DataConfigError(f"{section}.{name}: must be an integer in [{low}, {high}], got {value!r}")


class VocabularyError(GradVacError, RuntimeError):
    """SentencePiece training or loading failed, with the reason in plain words."""
