"""Budget scopes: their names and aliases, where each is found on a stored row and on an enriched span.

A scope is what a budget keeps a separate total for (``org``, ``user``, ``model``...), or a custom tag
key (``tag:team`` reads ``cost.team`` on spans, ``tags['team']`` in storage).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from otel_llm_cost.budgets import sql as _budget_sql
from otel_llm_cost.conventions import names as semconv
from otel_llm_cost.exceptions import BudgetConfigError
from otel_llm_cost.storage.schema import COLUMN_ATTRIBUTES

__all__ = ["SCOPE_COLUMNS", "canonical_scope", "normalized_where", "scope_from_attributes"]

_SCOPE_ALIASES: Final[Mapping[str, str]] = {
    "span": "call",
    "session_id": "session",
    "user_id": "user",
    "org_id": "org",
    "workflow_id": "workflow",
    "service_name": "service",
}

SCOPE_COLUMNS: Final[Mapping[str, tuple[str, ...]]] = {
    "call": ("span_id",),
    "session": ("session_id",),
    "user": ("user_id",),
    "org": ("org_id",),
    "feature": ("feature",),
    "agent": ("agent",),
    "workflow": ("workflow_id",),
    "workflow_label": ("workflow_label",),
    "step": ("step",),
    "model": ("response_model", "request_model"),
    "provider": ("provider",),
    "service": ("service_name",),
}
"""Where each scope is found in a batch of ``llm_calls`` rows (the first non-null column wins)."""

_COLUMN_ATTRIBUTES: Final[Mapping[str, tuple[str, ...]]] = dict(COLUMN_ATTRIBUTES)
# Where a per-call check finds each scope on an enriched span: the attributes that fill those columns,
# in the order the exporter tries them, so a `where` selects the same calls on a span as over stored
# rows (e.g. provider: the normalised llm.provider_name before gen_ai.system).
_SCOPE_ATTRIBUTES: Final[Mapping[str, tuple[str, ...]]] = {
    scope: tuple(name for column in columns for name in _COLUMN_ATTRIBUTES.get(column, ()))
    for scope, columns in SCOPE_COLUMNS.items()
}


def canonical_scope(scope: object, field_name: str = "scope") -> str:
    """The canonical name of ``scope`` (aliases resolved, custom keys as ``tag:<key>``).

    Raises:
        BudgetConfigError: neither a built-in scope nor a valid tag key (names ``field_name``).
    """
    if not isinstance(scope, str) or not scope.strip():
        raise BudgetConfigError(f"{field_name}: expected a scope name, got {scope!r}", field=field_name)
    name = scope.strip()
    name = _SCOPE_ALIASES.get(name, name)
    if name in _budget_sql.BUILTIN_SCOPES:
        return name
    key = name[4:] if name.startswith("tag:") else name
    key = key.removeprefix(semconv.COST_PREFIX)
    if not _budget_sql.TAG_KEY_PATTERN.match(key):
        raise BudgetConfigError(
            f"{field_name}: {scope!r} is neither a built-in scope "
            f"({', '.join(_budget_sql.BUILTIN_SCOPES)}) nor a valid custom tag key "
            "(letters, digits, _ . -)",
            field=field_name,
        )
    return f"tag:{key}"


def normalized_where(where: Mapping[str, str | Sequence[str]] | None) -> dict[str, tuple[str, ...]]:
    """A budget's ``where`` with canonical scope keys and tuple values.

    Raises:
        BudgetConfigError: not a mapping, a key that cannot be filtered on, or a bad value.
    """
    if where is not None and not isinstance(where, Mapping):
        raise BudgetConfigError(
            f"where: expected a mapping such as {{'org': 'org_1'}}, got {where!r}", field="where"
        )
    result: dict[str, tuple[str, ...]] = {}
    for key, values in (where or {}).items():
        where_scope = canonical_scope(key, "where")
        if where_scope in ("global", "call"):
            raise BudgetConfigError(f"where: cannot filter on {key!r}", field="where")
        if isinstance(values, str):
            values_tuple: tuple[str, ...] = (values,)
        elif isinstance(values, Sequence) and values and all(isinstance(v, str) for v in values):
            values_tuple = tuple(values)
        else:
            raise BudgetConfigError(
                f"where: {key!r} must be a string or a non-empty list of strings, got {values!r}",
                field="where",
            )
        result[where_scope] = values_tuple
    return result


def _attribute_str(attributes: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = attributes.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def scope_from_attributes(attributes: Mapping[str, Any], scope: str) -> str | None:
    """The value of a canonical ``scope`` on an enriched span's attributes, None when absent."""
    if scope.startswith("tag:"):
        return _attribute_str(attributes, (semconv.COST_PREFIX + scope[4:],))
    return _attribute_str(attributes, _SCOPE_ATTRIBUTES.get(scope, ()))
