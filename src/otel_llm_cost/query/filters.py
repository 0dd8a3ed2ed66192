"""``where=``: narrow any report to the calls whose dimensions have given values.

The keys are the dimensions reports group by (``model``, ``feature``, ``user``, ``tag:team``, aliases
such as ``user_id``); each becomes ``<expression> = ?`` with the value bound, never pasted into SQL,
and ``None`` matches calls without that dimension (what reports show as ``(none)``). User ids are
stored as keyed hashes: pass the stored form (``otel_llm_cost.hash_user_id(raw)`` gives it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeAlias

from otel_llm_cost.query.sql import resolve_dimension

__all__ = ["Conditions", "Where", "parse_where", "where_conditions"]

Where: TypeAlias = Mapping[str, str | None]
"""Dimension -> value; every pair must hold (AND)."""

Conditions: TypeAlias = tuple[tuple[str, tuple[object, ...]], ...]
"""SQL conditions with their bound parameters, as ``billable_where`` takes them."""


def where_conditions(where: Where | None) -> Conditions:
    """The SQL conditions of ``where`` (empty for None).

    Raises:
        UnknownDimensionError: a key is not a dimension (the message lists the valid ones).
        ValueError: a value is neither a string nor None.
    """
    conditions: list[tuple[str, tuple[object, ...]]] = []
    for name, value in (where or {}).items():
        dimension = resolve_dimension(name)
        if value is None:
            conditions.append((f"{dimension.expression} IS NULL", dimension.params))
        elif isinstance(value, str):
            conditions.append((f"{dimension.expression} = ?", (*dimension.params, value)))
        else:
            raise ValueError(f"where[{name!r}] must be a string or None, not {type(value).__name__}")
    return tuple(conditions)


def parse_where(pairs: list[str] | None) -> dict[str, str | None]:
    """``["feature=search", "tag:team=growth"]`` (the CLI's ``--where``) as a ``where=`` mapping.

    ``dimension=`` with nothing after it, or ``dimension=(none)``, matches calls without that dimension.

    Raises:
        ValueError: a pair has no ``=``.
        UnknownDimensionError: an unknown dimension.
    """
    where: dict[str, str | None] = {}
    for pair in pairs or ():
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(
                f"--where {pair!r}: expected DIMENSION=VALUE, e.g. feature=search or tag:team=growth"
            )
        resolve_dimension(name.strip())
        where[name.strip()] = None if value in ("", "(none)") else value
    return where
