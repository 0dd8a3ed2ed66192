"""ReadableSpan batches -> column lists -> pyarrow Tables matching ``_schema`` (one bulk insert each).

The hot loop appends plain Python values to one list per column; Arrow converts each list in C. A
column whose values do not fit its type (a string where a count belongs, a cost too large for
DECIMAL(18,12)) is rebuilt value by value on a slow path that nulls the misfits, so one odd span never
loses the batch. Measured on this machine: ~2 us/row for the Arrow step, against ~1 ms/row for
``executemany`` or pandas.
"""

from __future__ import annotations

import itertools
import json
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from otel_llm_cost._money import MONEY_QUANTUM, money_arrow_type
from otel_llm_cost.conventions import names as sc
from otel_llm_cost.storage import schema as _schema
from otel_llm_cost.storage.enricher import default_enricher

__all__ = [
    "CALLS_ARROW_SCHEMA",
    "SPANS_ARROW_SCHEMA",
    "Enricher",
    "RowBatch",
    "build_rows",
    "is_content_attribute",
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

# Largest magnitude DECIMAL(18,12) holds: 6 integer digits.
_MONEY_LIMIT: Final = 1e6

# Column -> attribute names tried in order. Our own (written by the processor or by the exporter's
# enrichment) come first; names of the source conventions are fallbacks.
_ATTRIBUTE_COLUMNS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("operation", (sc.LLM_OPERATION, sc.GEN_AI_OPERATION_NAME)),
    (
        "provider",
        (sc.LLM_PROVIDER_NAME, sc.GEN_AI_PROVIDER_NAME, sc.GEN_AI_SYSTEM, sc.LLM_PROVIDER, sc.LLM_SYSTEM),
    ),
    ("request_model", (sc.GEN_AI_REQUEST_MODEL, sc.LLM_MODEL_NAME, sc.LLM_MODEL)),
    ("response_model", (sc.GEN_AI_RESPONSE_MODEL,)),
    ("upstream_model", (sc.LLM_COST_MODEL_ID,)),
    ("deployment", (sc.LLM_COST_DEPLOYMENT,)),
    ("convention", (sc.LLM_CONVENTION,)),
    ("input_tokens", (sc.LLM_TOKENS_INPUT,)),
    ("output_tokens", (sc.LLM_TOKENS_OUTPUT,)),
    ("total_tokens", (sc.LLM_TOKENS_TOTAL,)),
    ("cache_read_tokens", (sc.LLM_TOKENS_CACHE_READ,)),
    ("cache_write_tokens", (sc.LLM_TOKENS_CACHE_WRITE,)),
    ("cache_write_1h_tokens", (sc.LLM_TOKENS_CACHE_WRITE_1H,)),
    ("reasoning_tokens", (sc.LLM_TOKENS_REASONING,)),
    # Our price only: gen_ai.usage.cost on a span we could not price is another tool's figure (OpenLIT's
    # own table, or 0), kept in external_cost_usd by the enrichment, never summed as our spend.
    ("cost_usd", (sc.LLM_COST_USD,)),
    ("input_cost_usd", (sc.LLM_COST_INPUT_USD,)),
    ("cache_read_cost_usd", (sc.LLM_COST_CACHE_READ_USD,)),
    ("cache_write_cost_usd", (sc.LLM_COST_CACHE_WRITE_USD,)),
    ("output_cost_usd", (sc.LLM_COST_OUTPUT_USD,)),
    ("cost_status", (sc.LLM_COST_STATUS,)),
    ("cost_reason", (sc.LLM_COST_REASON,)),
    ("price_source", (sc.LLM_COST_SOURCE,)),
    ("external_cost_usd", (sc.LLM_COST_EXTERNAL_USD,)),
    ("billable", (sc.LLM_COST_BILLABLE,)),
    ("duplicate_of", (sc.LLM_COST_DUPLICATE_OF,)),
    ("cache_hit", (sc.LLM_CACHE_HIT,)),
    ("cache_tokens_saved", (sc.LLM_CACHE_TOKENS_SAVED,)),
    ("cache_saved_usd", (sc.LLM_CACHE_COST_SAVED_USD,)),
    *((key, (sc.COST_PREFIX + key,)) for key in sc.ATTRIBUTION_KEYS),
    ("response_id", (sc.GEN_AI_RESPONSE_ID,)),
    ("streaming", (sc.GEN_AI_REQUEST_STREAM, sc.LLM_IS_STREAMING)),
    ("from_cache", (sc.LLM_RESPONSE_FROM_CACHE,)),
)
_RAW_USER_IDS: Final = frozenset(sc.RAW_USER_ID_ATTRIBUTE_NAMES)
# Attributes that become columns are not repeated in the JSON column. Raw user ids are dropped
# too: only their keyed hash (user_id column) is stored. gen_ai.usage.cost is our cost_usd mirrored
# (priced) or the external figure already in external_cost_usd (unpriced): a column either way.
_NOT_IN_JSON: Final = _RAW_USER_IDS | {sc.GEN_AI_USAGE_COST_MIRROR}
# cost.* names other than cost.user_id that hold a user id: where Traceloop association keys spelled
# userId/user.id/enduser.id land as tags. Stored as their keyed hash only, like cost.user_id.
_USER_ID_TAGS: Final = frozenset(
    sc.COST_PREFIX + name.removeprefix(sc.TRACELOOP_ASSOCIATION_PREFIX)
    for name in sc.RAW_USER_ID_ATTRIBUTE_NAMES
    if name.startswith(sc.TRACELOOP_ASSOCIATION_PREFIX)
) - {sc.COST_USER_ID}
# In the spans table nothing enriched the span: a cost.user_id set directly on it may be raw.
_HASHED_IN_SPANS: Final = _USER_ID_TAGS | {sc.COST_USER_ID}

_CALL_NAMES: Final = tuple(CALLS_ARROW_SCHEMA.names)
_CALL_INDEX: Final = {name: index for index, name in enumerate(_CALL_NAMES)}
# Attribute name -> (column index, priority; lower wins).
_SOURCES: Final = {
    name: (_CALL_INDEX[column], priority)
    for column, names in _ATTRIBUTE_COLUMNS
    for priority, name in enumerate(names)
}
_UNRANKED: Final = 1_000_000
_CONTENT_EXACT: Final = frozenset(sc.CONTENT_ATTRIBUTE_NAMES)
_CONTENT_PREFIXES: Final = tuple(name + "." for name in sc.CONTENT_ATTRIBUTE_NAMES)
_COST_PREFIX_LEN: Final = len(sc.COST_PREFIX)


def is_content_attribute(name: str) -> bool:
    """True for prompt/completion/message text attributes of any supported convention."""
    return name in _CONTENT_EXACT or name.startswith(_CONTENT_PREFIXES)


@dataclass(frozen=True, slots=True)
class RowBatch:
    """One export batch as Arrow tables: LLM calls, and every span when that option is on."""

    calls: pa.Table
    spans: pa.Table | None

    @property
    def empty(self) -> bool:
        return self.calls.num_rows == 0 and (self.spans is None or self.spans.num_rows == 0)


Enricher = Callable[[Sequence[ReadableSpan]], Sequence[Mapping[str, Any] | None]]
"""Given the spans of a batch that nothing enriched (in batch order), returns for each the attributes
to add, or None when it is not an LLM call. Called once per batch: deciding which of two records of
one call is billable needs the whole batch (in end order)."""


def _json_default(value: object) -> object:
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


# The fallback for what orjson refuses (an int beyond 64 bits, a lone surrogate): ASCII escapes keep
# any string encodable.
_ENCODER: Final = json.JSONEncoder(allow_nan=False, separators=(",", ":"), default=_json_default)


def _finite(value: object) -> object:
    """``value`` with NaN/Infinity (alone or inside a sequence) as strings: they are not JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, tuple | list):
        return [_finite(item) for item in value]
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    return value


def _to_json_bytes(value: object) -> bytes:
    """The one JSON encoding of stored attributes: compact UTF-8, NaN/Infinity kept as strings.

    orjson: 0.2 us for a span's remaining attributes against 2.4 us for the standard library
    (measured with ``benchmarks/bench_exporter.py``, where it is a tenth of the export thread's work).
    """
    try:
        encoded = orjson.dumps(value, default=_json_default)
    except TypeError:  # orjson.JSONEncodeError is one
        return _ENCODER.encode(_finite(value)).encode()
    if b"null" in encoded:
        # orjson writes NaN and Infinity as null (so would a None, or text containing "null"): keep
        # the non-finite numbers readable, as strings.
        return orjson.dumps(_finite(value), default=_json_default)
    return encoded


def _to_json(value: object) -> str:
    return _to_json_bytes(value).decode()


def _to_array(values: Sequence[Any], arrow_type: pa.DataType) -> pa.Array:
    if pa.types.is_decimal(arrow_type):
        try:
            # Arrow's float64 -> decimal cast rounds to the nearest 12-place value, exactly what
            # Decimal(value).quantize(1e-12) gives (checked by a property test), in C.
            return pc.cast(pa.array(values, pa.float64()), arrow_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            return pa.array([_money(value) for value in values], arrow_type)
    try:
        return pa.array(values, arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return pa.array([_coerce(value, arrow_type) for value in values], arrow_type)


def _money(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(value if isinstance(value, str) else float(value))  # type: ignore[arg-type]
    except (InvalidOperation, TypeError, ValueError, OverflowError):
        return None
    if not amount.is_finite() or abs(amount) >= Decimal(int(_MONEY_LIMIT)):
        return None
    return amount.quantize(MONEY_QUANTUM)


def _coerce(value: object, arrow_type: pa.DataType) -> object:
    """Slow path: the value if it fits ``arrow_type`` (converting obvious cases), else None."""
    try:
        pa.array([value], arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        pass
    else:
        return value
    if pa.types.is_string(arrow_type):
        return str(value)
    if pa.types.is_integer(arrow_type) and isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            return None
        return number if -(2**63) <= number < 2**63 else None
    return None


class _Plan:
    """Where each column's value comes from, for one set of attribute names.

    Spans from one instrumentation carry the same attribute names span after span, so the per-name
    work (which column a name feeds, which names go to the JSON column) is done once per name set;
    each span then costs one C-level gather (``itemgetter``) instead of a Python step per attribute.
    """

    __slots__ = ("columns", "hashed_tags", "pick", "rest_keys", "tag_keys")

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
        self.pick = _getter(picked)
        self.columns = tuple(columns)
        self.rest_keys = tuple(rest)
        self.tag_keys = tuple(tags)
        self.hashed_tags = _USER_ID_TAGS.intersection(tags)


def _getter(names: Sequence[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    if len(names) >= 2:
        return operator.itemgetter(*names)
    if len(names) == 1:
        one = operator.itemgetter(names[0])
        return lambda attributes: (one(attributes),)
    return lambda attributes: ()


# Name sets seen so far; bounded so that spans with ever-new attribute names cannot grow it forever.
_PLANS: dict[tuple[bool, tuple[str, ...]], _Plan] = {}
_PLANS_MAX: Final = 256


def _plan_for(keys: tuple[str, ...], capture_content: bool) -> _Plan:
    cache_key = (capture_content, keys)
    plan = _PLANS.get(cache_key)
    if plan is None:
        plan = _Plan(keys, capture_content)
        if len(_PLANS) >= _PLANS_MAX:
            _PLANS.clear()
        _PLANS[cache_key] = plan
    return plan


def build_rows(
    spans: Sequence[ReadableSpan],
    *,
    enrich: Enricher | None,
    capture_content: bool,
    store_all_spans: bool,
    hash_user_id: Callable[[str], str] | None = None,
) -> RowBatch:
    """Convert one export batch into Arrow tables for ``llm_calls`` (and ``spans``).

    A span is an LLM call when the processor enriched it (it carries ``llm.cost.status``) or when
    ``enrich`` recognises it. The same span twice in one batch is kept once.

    Args:
        spans: The batch, as the SDK hands it to ``export``.
        enrich: Prices, normalises and deduplicates the spans nothing enriched, called once with all
            of them (None: only enriched spans are calls).
        capture_content: Keep prompt/completion text attributes in the JSON column.
        store_all_spans: Also build the ``spans`` table (every span of the batch).
        hash_user_id: Hashes user ids found raw where only their hash may be stored (``None``: the
            default enricher's, resolved only when such an id is found).

    Returns:
        The tables, in span order.
    """
    calls: list[ReadableSpan] = []
    call_attributes: list[Mapping[str, Any]] = []
    kept: list[ReadableSpan] = []
    kept_attributes: list[Mapping[str, Any]] = []
    raw: list[ReadableSpan] = []
    raw_slots: list[int] = []
    seen: set[tuple[int, int]] = set()
    for span in spans:
        context = span.context
        if context is None:
            continue
        key = (context.trace_id, context.span_id)
        if key in seen:
            continue
        seen.add(key)
        attributes: Mapping[str, Any] = span.attributes or {}
        if store_all_spans:
            kept.append(span)
            kept_attributes.append(attributes)
        if sc.LLM_COST_STATUS not in attributes:
            if enrich is None:
                continue
            raw.append(span)
            raw_slots.append(len(calls))  # a placeholder until enrich says whether it is a call
        calls.append(span)
        call_attributes.append(attributes)
    if raw and enrich is not None:
        keep = [True] * len(calls)
        for slot, extra in zip(raw_slots, enrich(raw), strict=True):
            if extra is None:
                keep[slot] = False
            else:
                call_attributes[slot] = {**call_attributes[slot], **extra}
        calls = list(itertools.compress(calls, keep))
        call_attributes = list(itertools.compress(call_attributes, keep))
    hash_id = _UserIdHash(hash_user_id)
    return RowBatch(
        _calls_table(calls, call_attributes, capture_content, hash_id),
        _spans_table(kept, kept_attributes, capture_content, hash_id) if store_all_spans else None,
    )


class _UserIdHash:
    """``hash_user_id`` of a value of any type, the default enricher's resolved on first use only."""

    __slots__ = ("_hash",)

    def __init__(self, hash_user_id: Callable[[str], str] | None) -> None:
        self._hash = hash_user_id

    def __call__(self, value: object) -> str:
        if self._hash is None:
            self._hash = default_enricher().hash_user_id
        return self._hash(_tag_value(value))


_STATUS_NAMES: Final = {code: code.name for code in StatusCode}


def _common_columns(spans: list[ReadableSpan]) -> dict[str, Sequence[Any]]:
    """The span-level columns both tables share, one comprehension (in C where possible) each."""
    contexts = [span.context for span in spans]
    statuses = [span.status for span in spans]
    names = _STATUS_NAMES
    return {
        "span_id": [f"{context.span_id:016x}" for context in contexts],
        "trace_id": [f"{context.trace_id:032x}" for context in contexts],
        "parent_span_id": [
            None if parent is None else f"{parent.span_id:016x}" for parent in (span.parent for span in spans)
        ],
        "service_name": _service_names(spans),
        "scope_name": [
            None if scope is None else scope.name for scope in (span.instrumentation_scope for span in spans)
        ],
        "span_name": [span.name for span in spans],
        "start_time": [span.start_time for span in spans],
        "end_time": [span.end_time for span in spans],
        "status_code": [names.get(status.status_code) or status.status_code.name for status in statuses],
        "status_message": [status.description for status in statuses],
    }


def _arrow_table(columns: list[Sequence[Any] | None], schema: pa.Schema, count: int) -> pa.Table:
    """One Arrow conversion per column (None: all NULL); ``duration_ms`` is computed here, in C."""
    arrays = [
        _to_array(values, field.type) if values is not None else pa.nulls(count, field.type)
        for values, field in zip(columns, schema, strict=True)
    ]
    # (end - start) / 1e6 as a float, as Python would compute it; NULL when either is missing.
    index = schema.get_field_index
    nanos = pc.subtract(
        arrays[index("end_time")].cast(pa.int64()), arrays[index("start_time")].cast(pa.int64())
    )
    arrays[index("duration_ms")] = pc.divide(nanos.cast(pa.float64()), 1e6)
    return pa.Table.from_arrays(arrays, schema=schema)


def _spans_table(
    spans: list[ReadableSpan],
    span_attributes: list[Mapping[str, Any]],
    capture_content: bool,
    hash_user_id: Callable[[object], str],
) -> pa.Table:
    columns: dict[str, Sequence[Any]] = _common_columns(spans)
    columns["kind"] = [span.kind.name for span in spans]
    columns["attributes"] = [
        _to_json_bytes(
            {
                name: hash_user_id(value) if name in _HASHED_IN_SPANS else value
                for name, value in attributes.items()
                if name not in _RAW_USER_IDS and (capture_content or not is_content_attribute(name))
            }
        )
        for attributes in span_attributes
    ]
    return _arrow_table(
        [columns.get(name) for name in SPANS_ARROW_SCHEMA.names], SPANS_ARROW_SCHEMA, len(spans)
    )


def _calls_table(
    calls: list[ReadableSpan],
    call_attributes: list[Mapping[str, Any]],
    capture_content: bool,
    hash_user_id: Callable[[object], str],
) -> pa.Table:
    """Column by column: one comprehension (or C-level transpose) per column, then one Arrow conversion."""
    count = len(calls)
    index = _CALL_INDEX
    columns: list[Sequence[Any] | None] = [None] * len(_CALL_NAMES)  # None: all NULL
    for name, common in _common_columns(calls).items():
        columns[index[name]] = common
    # Attribute-fed columns, for each run of spans sharing one set of attribute names (usually one run).
    runs: list[tuple[_Plan, list[Mapping[str, Any]]]] = []
    previous: tuple[str, ...] | None = None
    for attributes in call_attributes:
        keys = tuple(attributes)
        if keys == previous:  # the usual case: comparing names the spans share beats hashing them
            runs[-1][1].append(attributes)
            continue
        previous = keys
        plan = _plan_for(keys, capture_content)
        if runs and runs[-1][0] is plan:
            runs[-1][1].append(attributes)
        else:
            runs.append((plan, [attributes]))
    attribute_columns = _attribute_columns(runs[0][0], runs[0][1], hash_user_id) if len(runs) == 1 else None
    if attribute_columns is None and runs:
        parts = [_attribute_columns(plan, run, hash_user_id) for plan, run in runs]
        attribute_columns = {}
        for column in {column for part in parts for column in part}:
            values: list[Any] = []
            for part, (_, run) in zip(parts, runs, strict=True):
                piece = part.get(column)
                values.extend(piece if piece is not None else itertools.repeat(None, len(run)))
            attribute_columns[column] = values
    for column, values in (attribute_columns or {}).items():
        columns[column] = values
    # Absent means billable: only the processor's dedup and aggregate detection say otherwise.
    billable = columns[index["billable"]]
    columns[index["billable"]] = (
        [True] * count if billable is None else [True if value is None else value for value in billable]
    )
    return _arrow_table(columns, CALLS_ARROW_SCHEMA, count)


def _service_names(spans: list[ReadableSpan]) -> list[Any]:
    # A batch usually shares one or two Resource objects; read service.name once per object.
    resources = [span.resource for span in spans]
    if resources and all(resource is resources[0] for resource in resources):
        first = resources[0]
        return [first.attributes.get(sc.SERVICE_NAME) if first is not None else None] * len(resources)
    by_resource: dict[int, tuple[Any, Any]] = {}
    names = []
    for resource in resources:
        cached = by_resource.get(id(resource))
        if cached is None or cached[0] is not resource:
            name = resource.attributes.get(sc.SERVICE_NAME) if resource is not None else None
            cached = by_resource[id(resource)] = (resource, name)
        names.append(cached[1])
    return names


def _attribute_columns(
    plan: _Plan, run: list[Mapping[str, Any]], hash_user_id: Callable[[object], str]
) -> dict[int, list[Any]]:
    """The attribute-fed columns of spans that share ``plan``: column index -> values."""
    out: dict[int, list[Any]] = {}
    picked = list(zip(*map(plan.pick, run), strict=True)) if plan.columns else []
    for column, positions in plan.columns:
        values: Sequence[Any] = picked[positions[0]]
        for position in positions[1:]:
            values = [
                first if first is not None else second
                for first, second in zip(values, picked[position], strict=True)
            ]
        out[column] = values if isinstance(values, list) else list(values)
    keys = plan.rest_keys
    out[_CALL_INDEX["attributes"]] = [
        _to_json_bytes({name: attributes[name] for name in keys}) for attributes in run
    ]
    prefix = _COST_PREFIX_LEN
    if plan.hashed_tags:
        hashed = plan.hashed_tags
        out[_CALL_INDEX["tags"]] = [
            [
                (name[prefix:], (hash_user_id if name in hashed else _tag_value)(attributes[name]))
                for name in plan.tag_keys
            ]
            for attributes in run
        ]
    elif plan.tag_keys:
        out[_CALL_INDEX["tags"]] = [
            [(name[prefix:], _tag_value(attributes[name])) for name in plan.tag_keys] for attributes in run
        ]
    else:
        out[_CALL_INDEX["tags"]] = [[] for _ in run]
    return out


def _tag_value(value: object) -> str:
    return value if isinstance(value, str) else _to_json(value)
