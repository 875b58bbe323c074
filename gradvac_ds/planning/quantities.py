"""Parse parameter counts (``375M``, ``1.3B``) and format byte and FLOP figures for humans."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from gradvac_ds.planning.errors import PlanError

COUNT_SUFFIXES: dict[str, int] = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}
"""Decimal multipliers accepted after a count, case-insensitive (``B`` and ``G`` both mean 1e9)."""

_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_FLOP_UNITS = ("FLOP", "KFLOP", "MFLOP", "GFLOP", "TFLOP", "PFLOP", "EFLOP")


def parse_count(text: str | int, field: str) -> int:
    """A positive integer count from ``1000000``, ``1e6``, ``375M``, ``1.3B`` or ``2T``.

    The value is computed in decimal arithmetic, so ``1.3B`` is exactly 1 300 000 000; a value with a
    fractional part after scaling (``1.5`` with no suffix) is refused rather than rounded.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        value = Decimal(text)
    else:
        raw = str(text).strip().upper()
        suffix = raw[-1] if raw and raw[-1] in COUNT_SUFFIXES and raw[-1].isalpha() else ""
        try:
            value = Decimal(raw[: len(raw) - len(suffix)]) * COUNT_SUFFIXES[suffix]
        except InvalidOperation:
            value = Decimal("NaN")
    allowed = "a positive whole number, optionally with a suffix K, M, B (or G) or T, e.g. 375M or 1.3B"
    if not value.is_finite() or value <= 0 or value != value.to_integral_value():
        raise PlanError(f"{field} = {text!r} is not a parameter count; give {allowed}")
    return int(value)


def _scaled(value: float, base: int, units: tuple[str, ...]) -> str:
    index = 0
    while abs(value) >= base and index < len(units) - 1:
        value /= base
        index += 1
    return f"{value:.2f} {units[index]}" if index else f"{int(value)} {units[0]}"


def format_bytes(value: int) -> str:
    """``value`` bytes in binary units with two decimals, e.g. ``1.50 GiB``; below 1 KiB, exact."""
    return _scaled(float(value), 1024, _BYTE_UNITS)


def format_flops(value: int) -> str:
    """``value`` floating-point operations in decimal units, e.g. ``3.20 GFLOP``."""
    return _scaled(float(value), 1000, _FLOP_UNITS)
