"""Argument checks of the public Python API: the type and range of plain numbers.

Rust takes sizes as unsigned integers; a negative or fractional Python number would reach
pyo3 as an ``OverflowError`` or be truncated. Each public entry point passes its numbers
through these first, so the error is a ``ValueError`` (or ``TypeError``) that names the
argument and its allowed range.
"""

import math
import operator

from .errors import InvalidArgumentError, InvalidTypeError


def int_arg(name: str, value, minimum: int | None = 0, maximum: int | None = None) -> int:
    """``value`` as an int in [minimum, maximum]; bools and non-integral numbers are refused."""
    if isinstance(value, (bool, float)):
        raise InvalidTypeError(f"{name} must be an integer, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise InvalidTypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}") from None
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        bounds = [f">= {minimum}"] if minimum is not None else []
        bounds += [f"<= {maximum}"] if maximum is not None else []
        raise InvalidArgumentError(f"{name} must be {' and '.join(bounds)}, got {v}")
    return v


def float_arg(name: str, value) -> float:
    """``value`` as a finite float; NaN and infinities are refused (ranges are the caller's)."""
    if isinstance(value, bool):
        raise InvalidTypeError(f"{name} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidTypeError(f"{name} must be a number, got {type(value).__name__} {value!r}") from None
    if not math.isfinite(v):
        raise InvalidArgumentError(f"{name} must be a finite number, got {v}")
    return v
