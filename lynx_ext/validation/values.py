"""Checks of single values: whole numbers, finite numbers in a range, choices, and text parsed into them.

Each raises `LynxValueError` naming the value (``field``) and saying what it must be; callers rename the field
(a CLI flag, ``batch job 3: seed``) with `LynxValueError.renamed`.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable, Optional

from ..errors import LynxValueError


def _range(low, high) -> str:
    if low is not None and high is not None:
        return f"between {low:g} and {high:g}"
    return f"at least {low:g}" if low is not None else f"at most {high:g}"


def check_int(value: Any, field: str, low: Optional[int] = None, high: Optional[int] = None,
              todo: str = "") -> int:
    """``value`` as an int (an integral float such as ``24.0`` is accepted), within ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise LynxValueError.of(field, f"must be a whole number, got {value!r}.{_todo(todo)}")
    if isinstance(value, numbers.Integral):
        number = int(value)
    elif math.isfinite(float(value)) and float(value).is_integer():
        number = int(value)
    else:
        raise LynxValueError.of(field, f"must be a whole number, got {value!r}.{_todo(todo)}")
    if (low is not None and number < low) or (high is not None and number > high):
        raise LynxValueError.of(field, f"must be {_range(low, high)}, got {number}.{_todo(todo)}")
    return number


def check_float(value: Any, field: str, low: Optional[float] = None, high: Optional[float] = None,
                todo: str = "") -> float:
    """``value`` as a finite float within ``[low, high]`` (NaN and infinities are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise LynxValueError.of(field, f"must be a number, got {value!r}.{_todo(todo)}")
    number = float(value)
    if not math.isfinite(number):
        raise LynxValueError.of(field, f"must be a finite number, got {number}.{_todo(todo)}")
    if (low is not None and number < low) or (high is not None and number > high):
        raise LynxValueError.of(field, f"must be {_range(low, high)}, got {number:g}.{_todo(todo)}")
    return number


def check_choice(value: Any, field: str, choices: Iterable[Any]) -> Any:
    choices = tuple(choices)
    if value not in choices:
        raise LynxValueError.of(field, f"must be one of {', '.join(map(str, choices))}, got {value!r}.")
    return value


def check_bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise LynxValueError.of(field, f"must be true or false, got {value!r}.")
    return value


def check_text(value: Any, field: str, allow_empty: bool = False) -> str:
    """A string; empty or blank only with ``allow_empty``."""
    if not isinstance(value, str):
        raise LynxValueError.of(field, f"must be text, got {type(value).__name__} {value!r}.")
    if not allow_empty and not value.strip():
        raise LynxValueError.of(field, "is empty; write what to generate (e.g. \"a woman smiling in a park\").")
    if "\x00" in value:
        raise LynxValueError.of(field, "holds a NUL character; remove it.")
    return value


# ------------------------------------------------------------------------------------------- text -> values
def parse_int(text: Any, field: str) -> int:
    """A whole number from text (a CLI value, a CSV cell); the error names ``field``."""
    if not isinstance(text, str):
        return check_int(text, field)
    try:
        return int(text.strip())
    except ValueError:
        raise LynxValueError.of(field, f"must be a whole number, got {text!r}.") from None


def parse_float(text: Any, field: str) -> float:
    """A finite number from text; the error names ``field``."""
    if not isinstance(text, str):
        return check_float(text, field)
    try:
        number = float(text.strip())
    except ValueError:
        raise LynxValueError.of(field, f"must be a number, got {text!r}.") from None
    return check_float(number, field)


def parse_bool(text: Any, field: str) -> bool:
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise LynxValueError.of(field, f"must be true or false, got {text!r}.")


def _todo(todo: str) -> str:
    return f" {todo}" if todo else ""
