"""Reading attribute values whatever their type: counts, strings and flags, with what was wrong noted.

Spans carry what instrumentations wrote: a count may arrive as a float, a string or a boolean. A
value that can be read is coerced, one that cannot is dropped; either way a short description goes
into ``problems`` (it ends up in ``Usage.problems``, for logging).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["MAX_COUNT", "MAX_TEXT_LEN", "Names", "read_count", "read_flag", "read_text", "str_value"]

Names = tuple[str, ...]
"""Attribute names that may carry one value, best first."""

MAX_COUNT: Final = 2**63 - 1  # DuckDB BIGINT; anything larger is garbage, not a token count
MAX_TEXT_LEN: Final = 256
"""Longest text (a model, a provider, an operation) read from a span; a longer one is not used."""
_PROBLEM_VALUE_LEN: Final = 40


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _PROBLEM_VALUE_LEN else text[: _PROBLEM_VALUE_LEN - 3] + "..."


def _as_count(name: str, value: object, problems: list[str]) -> int | None:
    """A token count from an attribute value, or ``None`` (with a problem noted) if it is not one."""
    if type(value) is int:  # the common case first; also excludes bool
        if 0 <= value <= MAX_COUNT:
            return value
        problems.append(f"{name}: {'negative' if value < 0 else 'out of range'} count {_show(value)} dropped")
        return None
    if isinstance(value, bool):
        problems.append(f"{name}: boolean {value} is not a count, dropped")
        return None
    if isinstance(value, int):  # int subclasses (IntEnum...)
        return _as_count(name, int(value), problems)
    if isinstance(value, float):
        if math.isfinite(value) and value >= 0 and value.is_integer() and value <= MAX_COUNT:
            problems.append(f"{name}: float {_show(value)} coerced to int")
            return int(value)
        problems.append(f"{name}: float {_show(value)} is not a count, dropped")
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) <= 19 and int(text) <= MAX_COUNT:
            problems.append(f"{name}: string {_show(value)} coerced to int")
            return int(text)
        problems.append(f"{name}: string {_show(value)} is not a count, dropped")
        return None
    problems.append(f"{name}: {type(value).__name__} {_show(value)} is not a count, dropped")
    return None


def read_count(attributes: Mapping[str, Any], names: Names, problems: list[str]) -> int | None:
    """The first valid count among ``names``, or ``None``."""
    for name in names:
        value = attributes.get(name)
        if value is not None:
            if type(value) is int and 0 <= value <= MAX_COUNT:  # the common case, without a call
                return value
            count = _as_count(name, value, problems)
            if count is not None:
                return count
    return None


def read_text(attributes: Mapping[str, Any], names: Names, problems: list[str]) -> str | None:
    """The first non-empty string (stripped, at most 256 characters) among ``names``, or ``None``."""
    for name in names:
        value = attributes.get(name)
        if value is None:
            continue
        if type(value) is str:
            text = value.strip()
            if text and len(text) <= MAX_TEXT_LEN:
                return text
            problems.append(f"{name}: {'empty' if not text else 'over-long'} string dropped")
        else:
            problems.append(f"{name}: {type(value).__name__} {_show(value)} is not a string, dropped")
    return None


def read_flag(attributes: Mapping[str, Any], names: Names, problems: list[str]) -> bool | None:
    """The first boolean (or ``"true"``/``"false"`` string) among ``names``, or ``None``."""
    for name in names:
        value = attributes.get(name)
        if value is None:
            continue
        if type(value) is bool:
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        problems.append(f"{name}: {type(value).__name__} {_show(value)} is not a boolean, dropped")
    return None


def str_value(attributes: Mapping[str, Any], name: str) -> str | None:
    """The attribute ``name`` if it is a string, else ``None`` (nothing noted)."""
    value = attributes.get(name)
    return value if type(value) is str else None
