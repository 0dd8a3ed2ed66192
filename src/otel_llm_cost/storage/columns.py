"""Which span attribute feeds which ``llm_calls`` column, and the per-name-set plan that applies it.

Spans from one instrumentation carry the same attribute names span after span, so the per-name work is
done once per name set (:func:`plan_for`); each span then costs one C-level gather.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import pyarrow as pa

from otel_llm_cost._money import money_arrow_type
from otel_llm_cost.conventions import names as sc
from otel_llm_cost.conventions.content import is_content_attribute
from otel_llm_cost.storage import schema as _schema

__all__ = [
    "CALLS_ARROW_SCHEMA",
    "CALL_INDEX",
    "CALL_NAMES",
    "COST_PREFIX_LEN",
    "HASHED_IN_SPANS",
    "RAW_USER_IDS",
    "SPANS_ARROW_SCHEMA",
    "UNRANKED",
    "Plan",
    "is_content_attribute",
    "plan_for",
]

_ARROW_TYPES: Final[dict[str, pa.DataType]] = {
    "VARCHAR": pa.string(),
    "JSON": pa.string(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    # Nanoseconds as the SDK records them; DuckDB rounds to its microsecond TIMESTAMPTZ on insert.
    "TIMESTAMPTZ": pa.timestamp("ns", tz="UTC"),
    "MAP(VARCHAR, VARCHAR)": pa.map_(pa.string(), pa.string()),
    _schema.MONEY_TYPE: money_arrow_type(),
}


def _arrow_schema(columns: tuple[tuple[str, str, str], ...]) -> pa.Schema:
    return pa.schema([pa.field(name, _ARROW_TYPES[sql_type]) for name, sql_type, _ in columns])


CALLS_ARROW_SCHEMA: Final = _arrow_schema(_schema.CALL_COLUMNS)
SPANS_ARROW_SCHEMA: Final = _arrow_schema(_schema.SPAN_COLUMNS)

RAW_USER_IDS: Final = frozenset(sc.RAW_USER_ID_ATTRIBUTE_NAMES)
# Attributes that become columns are not repeated in the JSON column. Raw user ids are dropped
# too: only their keyed hash (user_id column) is stored. gen_ai.usage.cost is our cost_usd mirrored
# (priced) or the external figure already in external_cost_usd (unpriced): a column either way; so are
# the other mirrors of our cost written for other tools (gen_ai.usage.cost.amount, operation.cost).
_NOT_IN_JSON: Final = RAW_USER_IDS | {sc.GEN_AI_USAGE_COST_MIRROR, *sc.COST_MIRROR_ATTRIBUTE_NAMES}
# cost.* names other than cost.user_id that hold a user id: where Traceloop association keys spelled
# userId/user.id/enduser.id land as tags. Stored as their keyed hash only, like cost.user_id.
_USER_ID_TAGS: Final = frozenset(
    sc.COST_PREFIX + name.removeprefix(sc.TRACELOOP_ASSOCIATION_PREFIX)
    for name in sc.RAW_USER_ID_ATTRIBUTE_NAMES
    if name.startswith(sc.TRACELOOP_ASSOCIATION_PREFIX)
) - {sc.COST_USER_ID}
# In the spans table nothing enriched the span: a cost.user_id set directly on it may be raw.
HASHED_IN_SPANS: Final = _USER_ID_TAGS | {sc.COST_USER_ID}

CALL_NAMES: Final = tuple(CALLS_ARROW_SCHEMA.names)
CALL_INDEX: Final = {name: index for index, name in enumerate(CALL_NAMES)}
# Attribute name -> (column index, priority; lower wins).
_SOURCES: Final = {
    name: (CALL_INDEX[column], priority)
    for column, names in _schema.COLUMN_ATTRIBUTES
    for priority, name in enumerate(names)
}
UNRANKED: Final = 1_000_000
COST_PREFIX_LEN: Final = len(sc.COST_PREFIX)


class Plan:
    """Where each column's value comes from, for one set of attribute names.

    Spans from one instrumentation carry the same attribute names span after span, so the per-name
    work (which column a name feeds, which names go to the JSON column) is done once per name set;
    each span then costs one C-level gather (``pick``, an ``itemgetter``) instead of a Python step per
    attribute. Its values are, in order: those of ``columns`` (positions), ``rest`` (the JSON column's,
    named ``rest_keys``) and ``tags`` (named ``tag_keys``).
    """

    __slots__ = (
        "columns",
        "hashed_tags",
        "pick",
        "rest",
        "rest_keys",
        "tag_keys",
        "tag_names",
        "tags",
        "width",
    )

    def __init__(self, keys: tuple[str, ...], capture_content: bool) -> None:
        found: dict[int, list[tuple[int, str]]] = {}  # column -> [(priority, name)]
        rest: list[str] = []
        tags: list[str] = []
        for name in keys:
            source = _SOURCES.get(name)
            if source is not None:
                column, priority = source
                found.setdefault(column, []).append((priority, name))
            elif name.startswith(sc.COST_PREFIX):
                tags.append(name)
            elif name in _NOT_IN_JSON:
                continue
            elif capture_content or not is_content_attribute(name):
                rest.append(name)
        picked: list[str] = []
        columns: list[tuple[int, tuple[int, ...]]] = []
        for column, sources in found.items():
            # Highest priority first: a column takes the first of its names whose value is not None.
            names = [name for _, name in sorted(sources)]
            columns.append((column, tuple(range(len(picked), len(picked) + len(names)))))
            picked.extend(names)
        # One gather per span for the column names, then the JSON column's, then the tags: each pass
        # over a batch's attribute dicts costs cache misses of its own.
        self.pick = _getter([*picked, *rest, *tags])
        self.width = len(picked) + len(rest) + len(tags)
        self.columns = tuple(columns)
        self.rest = slice(len(picked), len(picked) + len(rest))
        self.rest_keys = tuple(rest)
        self.tags = slice(len(picked) + len(rest), self.width)
        self.tag_keys = tuple(tags)
        self.tag_names = tuple(name[COST_PREFIX_LEN:] for name in tags)
        self.hashed_tags = _USER_ID_TAGS.intersection(tags)


def _getter(names: Sequence[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    if len(names) >= 2:
        return operator.itemgetter(*names)
    if len(names) == 1:
        one = operator.itemgetter(names[0])
        return lambda attributes: (one(attributes),)
    return lambda attributes: ()


# Name sets seen so far; bounded so that spans with ever-new attribute names cannot grow it forever.
_PLANS: dict[tuple[bool, tuple[str, ...]], Plan] = {}
_PLANS_MAX: Final = 256


def plan_for(keys: tuple[str, ...], capture_content: bool) -> Plan:
    cache_key = (capture_content, keys)
    plan = _PLANS.get(cache_key)
    if plan is None:
        plan = Plan(keys, capture_content)
        if len(_PLANS) >= _PLANS_MAX:
            _PLANS.clear()
        _PLANS[cache_key] = plan
    return plan
