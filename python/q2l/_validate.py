"""Argument checks of the public Python API: the type and range of plain numbers.

Rust takes sizes as unsigned integers; a negative or fractional Python number would reach
pyo3 as an ``OverflowError`` or be truncated. Each public entry point passes its numbers
through these first, so the error is a ``ValueError`` (or ``TypeError``) that names the
argument and its allowed range.
"""

import math
import operator
import os
from typing import Any

from .errors import InvalidArgumentError, InvalidTypeError, OutOfMemoryError


def _got(value: Any) -> str:
    """``value`` as the type errors show it, the wording of the Rust options' errors."""
    if value is None:
        return "None"
    kind = {bool: "bool", int: "int", float: "float", str: "str"}.get(type(value))
    return f"the {kind} {value!r}" if kind else f"{type(value).__name__} {value!r}"


def int_arg(name: str, value: Any, minimum: int | None = 0, maximum: int | None = None) -> int:
    """``value`` as an int in [minimum, maximum]; bools and non-integral numbers are refused
    (``InvalidTypeError``), as the Rust options refuse them."""
    if isinstance(value, (bool, float)):
        raise InvalidTypeError(f"{name} must be an integer, got {_got(value)}")
    try:
        v = operator.index(value)
    except TypeError:
        raise InvalidTypeError(f"{name} must be an integer, got {_got(value)}") from None
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        bounds = [f">= {minimum}"] if minimum is not None else []
        bounds += [f"<= {maximum}"] if maximum is not None else []
        raise InvalidArgumentError(f"{name} must be {' and '.join(bounds)}, got {v}")
    return v


def float_arg(name: str, value: Any) -> float:
    """``value`` as a finite float; NaN and infinities are refused (ranges are the caller's)."""
    if isinstance(value, bool):
        raise InvalidTypeError(f"{name} must be a number, got {_got(value)}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidTypeError(f"{name} must be a number, got {_got(value)}") from None
    if not math.isfinite(v):
        raise InvalidArgumentError(f"{name} must be a finite number, got {v}")
    return v


def positive_int(name: str, value: Any) -> int:
    """``value`` as an int >= 1 (a model size); the check of ``options::positive`` in Rust,
    for the sizes that are not declared options."""
    v = int_arg(name, value, minimum=None)
    if v < 1:
        raise InvalidArgumentError(f"{name} must be a positive int, got {v}")
    return v


def num_groups_arg(num_groups: Any, num_classes: int) -> int | None:
    """``num_groups`` as ``None`` or an int in [1, num_classes] (group queries of a head)."""
    if num_groups is None:
        return None
    v = int_arg("num_groups", num_groups, minimum=None)
    if not 1 <= v <= num_classes:
        raise InvalidArgumentError(f"num_groups must be None or an int in [1, num_classes={num_classes}], got {v}")
    return v


def class_names(value: Any, count: int | None, where: str) -> list[str]:
    """``value`` as a list of ``count`` (if given) distinct non-empty class names read from
    ``where`` (a file and key); the first bad or repeated name is named."""
    if not isinstance(value, list) or (count is not None and len(value) != count):
        wanted = f"{count} names" if count is not None else "names"
        raise InvalidArgumentError(f"{where} must list {wanted}")
    seen: set[str] = set()
    for i, name in enumerate(value):
        if not isinstance(name, str) or not name:
            raise InvalidArgumentError(f"{where}[{i}] must be a non-empty name, got {name!r}")
        if name in seen:
            raise InvalidArgumentError(f"{where}[{i}]: {name!r} appears twice")
        seen.add(name)
    return value


def machine_memory() -> int:
    """This machine's physical memory in bytes."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def transformer_parameters(d_model: int, dim_feedforward: int, layers: int, attentions: int = 2) -> int:
    """An upper bound on the parameters of ``layers`` transformer layers of width ``d_model``
    with ``attentions`` attention blocks each (4 d^2 + 4 d) and an FFN (2 d ff + d + ff)."""
    per_layer = attentions * (4 * d_model * d_model + 4 * d_model) + 2 * d_model * dim_feedforward
    return layers * (per_layer + dim_feedforward + 7 * d_model)


def check_buildable(what: str, parameters: int, sizes: dict[str, int]) -> None:
    """Refuses to build ``what`` when its ``parameters`` (float32) would not fit in this
    machine's memory, naming the sizes that ask for them: building it would otherwise run
    until the machine runs out of memory.

    Raises:
        OutOfMemoryError: the parameters need more bytes than the machine has.
    """
    need = 4 * parameters
    have = machine_memory()
    if need > have:
        given = ", ".join(f"{k}={v}" for k, v in sizes.items())
        raise OutOfMemoryError(
            f"{what} with {given} would hold {parameters} parameters ({need / 2**30:.1f} GiB of float32), "
            f"more than this machine's {have / 2**30:.1f} GiB of memory"
        )
