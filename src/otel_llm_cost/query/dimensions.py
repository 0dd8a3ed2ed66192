"""The grouping dimensions reports accept: names, aliases, custom tags, and the SQL of each.

SQL text is assembled only from this fixed table; a custom tag key is always a bound parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from otel_llm_cost.exceptions import UnknownDimensionError

__all__ = ["DIMENSIONS", "MODEL_EXPR", "TAG_PREFIX", "TAG_VALUE", "Dimension", "resolve_dimension"]

TAG_PREFIX: Final = "tag:"
"""``cost_by("tag:team")`` groups by the custom attribution tag ``cost.team`` (the ``tags`` MAP column)."""
# The value of the tag named by the bound parameter. Same result as ``tags[?]`` (NULL when the key is
# missing), found by position in the key list: on 10M calls the 30-day tag report spent most of its
# time in the map lookup (EXPLAIN ANALYZE: that projection ~5x the table scan), and this form runs it
# in ~0.8x the time of ``tags[?]`` (benchmarks/bench_tag_lookup.py: 0.78x best of 4; a plain column,
# 0.33x, is the floor).
TAG_VALUE: Final = "map_values(tags)[list_position(map_keys(tags), ?)]"

# The billable record of each call (duplicates and agent/workflow totals are billable = false); NULL
# billable comes from older writers and is counted, not dropped. Budgets (_budget_sql) use the same one.
MODEL_EXPR: Final = "COALESCE(response_model, request_model)"

# Canonical name -> (SQL expression over llm_calls, meaning). The only place a dimension becomes SQL.
_DIMENSION_TABLE: Final[Mapping[str, tuple[str, str]]] = {
    "model": (MODEL_EXPR, "model as the span named it (response model, else request model)"),
    "provider": ("provider", "provider as the span named it"),
    "upstream_model": ("upstream_model", "price entry that matched (aliases and deployments resolved)"),
    "deployment": ("deployment", "deployment or resource id carried by the model id"),
    "service": ("service_name", "resource service.name"),
    "feature": ("feature", "cost.feature"),
    "agent": ("agent", "cost.agent"),
    "user": ("user_id", "cost.user_id (keyed hash)"),
    "org": ("org_id", "cost.org_id"),
    "session": ("session_id", "cost.session_id"),
    "conversation": ("conversation_id", "gen_ai.conversation.id (or the instrumentation's session id)"),
    "workflow": ("workflow_id", "cost.workflow_id"),
    "workflow_label": ("workflow_label", "cost.workflow_label"),
    "step": ("step", "cost.step"),
    # Role and task have no column: they travel as custom tags (cost.role / cost.task).
    "role": (TAG_VALUE, "custom tag cost.role"),
    "task": (TAG_VALUE, "custom tag cost.task"),
}
_ALIASES: Final[Mapping[str, str]] = {
    "user_id": "user",
    "org_id": "org",
    "session_id": "session",
    "conversation_id": "conversation",
    "workflow_id": "workflow",
    "resource": "deployment",
    "service_name": "service",
    "upstream": "upstream_model",
    "upstream-model": "upstream_model",
    "workflow-label": "workflow_label",
}

DIMENSIONS: Final = tuple(_DIMENSION_TABLE)
"""Canonical dimension names accepted by ``cost_by`` (plus aliases and ``tag:<key>``)."""


@dataclass(frozen=True, slots=True)
class Dimension:
    """A validated grouping dimension: its canonical name and SQL expression."""

    name: str
    expression: str
    params: tuple[object, ...] = ()


def resolve_dimension(name: str) -> Dimension:
    """Validate a dimension name and return its SQL expression.

    Args:
        name: a canonical name (see :data:`DIMENSIONS`), an alias such as ``user_id`` or ``resource``,
            or ``tag:<key>`` for a custom ``cost.<key>`` tag.

    Returns:
        The dimension; a tag key is a bound parameter, never part of the SQL text.

    Raises:
        UnknownDimensionError: the name is none of those; the message lists the valid names.
    """
    key = name.strip()
    if key.startswith(TAG_PREFIX):
        tag = key[len(TAG_PREFIX) :]
        if not tag:
            raise UnknownDimensionError("empty custom tag name: use tag:<key>, for example tag:team")
        return Dimension(key, TAG_VALUE, (tag,))
    canonical = _ALIASES.get(key.lower(), key.lower())
    entry = _DIMENSION_TABLE.get(canonical)
    if entry is None:
        valid = ", ".join(DIMENSIONS)
        raise UnknownDimensionError(
            f"unknown dimension {name!r}; valid: {valid}, or tag:<key> for a custom tag"
        )
    expression = entry[0]
    params: tuple[object, ...] = (canonical,) if expression == TAG_VALUE else ()
    return Dimension(canonical, expression, params)
