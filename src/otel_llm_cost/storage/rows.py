"""ReadableSpan batches -> column lists -> pyarrow Tables matching ``_schema`` (one bulk insert each).

The hot loop appends plain Python values to one list per column; Arrow converts each list in C. A
column whose values do not fit its type (a string where a count belongs, a cost too large for
DECIMAL(18,12)) is rebuilt value by value on a slow path that nulls the misfits, so one odd span never
loses the batch. Measured on this machine: ~2 us/row for the Arrow step, against ~1 ms/row for
``executemany`` or pandas.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from otel_llm_cost.conventions import names as sc
from otel_llm_cost.storage.columns import (
    CALL_INDEX,
    CALL_NAMES,
    CALLS_ARROW_SCHEMA,
    HASHED_IN_SPANS,
    RAW_USER_IDS,
    SPANS_ARROW_SCHEMA,
    Plan,
    is_content_attribute,
    plan_for,
)
from otel_llm_cost.storage.enricher import default_enricher
from otel_llm_cost.storage.invariants import enforce_call_invariants
from otel_llm_cost.storage.values import (
    json_object_column,
    tag_map_array,
    tag_value,
    to_arrays,
    to_json_bytes,
)

__all__ = [
    "CALLS_ARROW_SCHEMA",
    "SPANS_ARROW_SCHEMA",
    "Enricher",
    "RowBatch",
    "build_rows",
    "is_content_attribute",
]


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
    unique = _unique_spans(spans)
    attributes: list[Mapping[str, Any]] = [span.attributes or _NO_ATTRIBUTES for span in unique]
    calls, call_attributes = unique, attributes
    raw: list[ReadableSpan] = []
    raw_slots: list[int] = []
    status = sc.LLM_COST_STATUS
    enriched = [status in span_attributes for span_attributes in attributes]
    if not all(enriched):
        if enrich is None:
            calls = list(itertools.compress(unique, enriched))
            call_attributes = list(itertools.compress(attributes, enriched))
        else:  # a placeholder for each raw span until enrich says whether it is a call
            raw_slots = [slot for slot, done in enumerate(enriched) if not done]
            raw = [unique[slot] for slot in raw_slots]
            call_attributes = list(attributes)
    if raw and enrich is not None:
        calls, call_attributes = _enriched_calls(calls, call_attributes, raw_slots, enrich(raw))
    hash_id = _UserIdHash(hash_user_id)
    return RowBatch(
        _calls_in_blocks(calls, call_attributes, capture_content, hash_id),
        _spans_table(unique, attributes, capture_content, hash_id) if store_all_spans else None,
    )


def _unique_spans(spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
    """The spans with a context, each (trace id, span id) once: the first one seen is kept."""
    try:
        span_ids = [span.context.span_id for span in spans]
    except AttributeError:  # a span without a context
        pass
    else:
        if len(set(span_ids)) == len(span_ids):  # the usual batch: one pass in C says no duplicate
            return list(spans)
    unique: dict[tuple[int, int], ReadableSpan] = {}
    for span in spans:
        context = span.context
        if context is not None:
            unique.setdefault((context.trace_id, context.span_id), span)
    return list(unique.values())


def _enriched_calls(
    calls: list[ReadableSpan],
    call_attributes: list[Mapping[str, Any]],
    raw_slots: list[int],
    extras: Sequence[Mapping[str, Any] | None],
) -> tuple[list[ReadableSpan], list[Mapping[str, Any]]]:
    """The calls with each raw span's enrichment merged in, and raw spans that are no call left out."""
    keep = [True] * len(calls)
    for slot, extra in zip(raw_slots, extras, strict=True):
        if extra is None:
            keep[slot] = False
        else:
            call_attributes[slot] = {**call_attributes[slot], **extra}
    return list(itertools.compress(calls, keep)), list(itertools.compress(call_attributes, keep))


class _UserIdHash:
    """``hash_user_id`` of a value of any type, the default enricher's resolved on first use only."""

    __slots__ = ("_hash",)

    def __init__(self, hash_user_id: Callable[[str], str] | None) -> None:
        self._hash = hash_user_id

    def __call__(self, value: object) -> str:
        if self._hash is None:
            self._hash = default_enricher().hash_user_id
        return self._hash(tag_value(value))


_STATUS_NAMES: Final = {code: code.name for code in StatusCode}
_STATUS_NAME_BY_ID: Final = {id(code): code.name for code in StatusCode}  # the members live as long
# An Arrow scalar, not a Python float: pyarrow converts a Python number argument of a compute
# function by first trying to import dateutil, again on every call when it is not installed
# (0.1 ms a call here, 0.2 us a span at batches of 512).
_NANOS_PER_MILLI: Final = pa.scalar(1e6, pa.float64())
_NO_ATTRIBUTES: Final[Mapping[str, Any]] = MappingProxyType({})


def _common_columns(spans: list[ReadableSpan]) -> dict[str, Sequence[Any]]:
    """The span-level columns both tables share, one comprehension (in C where possible) each."""
    contexts = [span.context for span in spans]
    statuses = [span.status for span in spans]
    return {
        "span_id": list(map("%016x".__mod__, [context.span_id for context in contexts])),
        "trace_id": list(map("%032x".__mod__, [context.trace_id for context in contexts])),
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
        "status_code": _status_names([status.status_code for status in statuses]),
        "status_message": [status.description for status in statuses],
    }


def _status_names(codes: list[StatusCode]) -> list[str]:
    # By identity, in C: hashing a StatusCode (an Enum) runs Python code, 0.08 us a span.
    names = list(map(_STATUS_NAME_BY_ID.get, map(id, codes)))
    if None in names:  # not one of StatusCode's members
        return [_STATUS_NAMES.get(code) or code.name for code in codes]
    return names  # type: ignore[return-value]


def _arrow_table(columns: list[Sequence[Any] | None], schema: pa.Schema, count: int) -> pa.Table:
    """One Arrow conversion per column type (None: all NULL); ``duration_ms`` is computed here, in C."""
    arrays = to_arrays(columns, schema.types, count)
    # (end - start) / 1e6 as a float, as Python would compute it; NULL when either is missing. The
    # cast rounds to the nearest float as Python's int / float does: a "safe" cast would refuse
    # durations over 2**53 ns (about 104 days, hand-built spans) and cost the whole batch.
    index = schema.get_field_index
    nanos = pc.subtract(
        arrays[index("end_time")].cast(pa.int64()), arrays[index("start_time")].cast(pa.int64())
    )
    arrays[index("duration_ms")] = pc.divide(nanos.cast(pa.float64(), safe=False), _NANOS_PER_MILLI)
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
        to_json_bytes(
            {
                name: hash_user_id(value) if name in HASHED_IN_SPANS else value
                for name, value in attributes.items()
                if name not in RAW_USER_IDS and (capture_content or not is_content_attribute(name))
            }
        )
        for attributes in span_attributes
    ]
    return _arrow_table(
        [columns.get(name) for name in SPANS_ARROW_SCHEMA.names], SPANS_ARROW_SCHEMA, len(spans)
    )


# Rows per block of _calls_in_blocks: DuckDB's vector size. Each pass walks every span and attribute
# dict of the block; those of 8,192 spans (~20 MB) fall out of the CPU caches between passes: blocks
# of 1,024 or 2,048 cost ~0.8 us a span less (bench_exporter's spans, 2-core build machine).
_BLOCK_ROWS: Final = 2048


def _calls_in_blocks(
    calls: list[ReadableSpan],
    call_attributes: list[Mapping[str, Any]],
    capture_content: bool,
    hash_user_id: Callable[[object], str],
) -> pa.Table:
    """:func:`_calls_table` a block of rows at a time: each row depends on its span alone."""
    if len(calls) <= _BLOCK_ROWS:
        return _calls_table(calls, call_attributes, capture_content, hash_user_id)
    blocks = [
        _calls_table(
            calls[start : start + _BLOCK_ROWS],
            call_attributes[start : start + _BLOCK_ROWS],
            capture_content,
            hash_user_id,
        )
        for start in range(0, len(calls), _BLOCK_ROWS)
    ]
    return pa.concat_tables(blocks).combine_chunks()


def _calls_table(
    calls: list[ReadableSpan],
    call_attributes: list[Mapping[str, Any]],
    capture_content: bool,
    hash_user_id: Callable[[object], str],
) -> pa.Table:
    """Column by column: one comprehension (or C-level transpose) per column, then one Arrow conversion."""
    count = len(calls)
    index = CALL_INDEX
    columns: list[Sequence[Any] | None] = [None] * len(CALL_NAMES)  # None: all NULL
    for name, common in _common_columns(calls).items():
        columns[index[name]] = common
    # Attribute-fed columns, for each run of spans sharing one set of attribute names (usually one run).
    runs: list[tuple[Plan, list[Mapping[str, Any]]]] = []
    previous: tuple[str, ...] | None = None
    for attributes in call_attributes:
        keys = tuple(attributes)
        if keys == previous:  # the usual case: comparing names the spans share beats hashing them
            runs[-1][1].append(attributes)
            continue
        previous = keys
        plan = plan_for(keys, capture_content)
        if runs and runs[-1][0] is plan:
            runs[-1][1].append(attributes)
        else:
            runs.append((plan, [attributes]))
    attribute_columns = _attribute_columns(runs[0][0], runs[0][1], hash_user_id) if len(runs) == 1 else None
    if attribute_columns is None and runs:
        parts = [_attribute_columns(plan, run, hash_user_id) for plan, run in runs]
        attribute_columns = {
            column: pa.concat_arrays([part[column] for part in parts]) for column in _ARRAY_COLUMNS
        }
        for column in {column for part in parts for column in part} - _ARRAY_COLUMNS:
            values: list[Any] = []
            for part, (_, run) in zip(parts, runs, strict=True):
                piece = part.get(column)
                values.extend(piece if piece is not None else itertools.repeat(None, len(run)))
            attribute_columns[column] = values
    for column, column_values in (attribute_columns or {}).items():
        columns[column] = column_values
    # Absent means billable: only the processor's dedup and aggregate detection say otherwise.
    billable = columns[index["billable"]]
    columns[index["billable"]] = (
        [True] * count if billable is None else [value is not False for value in billable]
    )
    enforce_call_invariants(columns, count, hash_user_id)
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


# The attribute-fed columns _attribute_columns returns as Arrow arrays rather than value lists.
_ARRAY_COLUMNS: Final = frozenset({CALL_INDEX["tags"], CALL_INDEX["attributes"]})


def _attribute_columns(
    plan: Plan, run: list[Mapping[str, Any]], hash_user_id: Callable[[object], str]
) -> dict[int, Sequence[Any]]:
    """The attribute-fed columns of spans that share ``plan``: column index -> values (an array for
    ``tags`` and ``attributes``)."""
    out: dict[int, Sequence[Any]] = {}
    picked = list(zip(*map(plan.pick, run), strict=True)) if plan.width else []
    for column, positions in plan.columns:
        values: Sequence[Any] = picked[positions[0]]
        for position in positions[1:]:
            if None not in values:  # the usual case: the first name is on every span
                break
            values = [
                first if first is not None else second
                for first, second in zip(values, picked[position], strict=True)
            ]
        out[column] = values
    out[CALL_INDEX["attributes"]] = json_object_column(plan.rest_keys, picked[plan.rest], len(run))
    tag_columns = picked[plan.tags]
    values = list(itertools.chain.from_iterable(zip(*tag_columns, strict=True))) if tag_columns else []
    if plan.hashed_tags:
        hashed = [name in plan.hashed_tags for name in plan.tag_keys] * len(run)
        values = [
            hash_user_id(value) if user_id else tag_value(value)
            for value, user_id in zip(values, hashed, strict=True)
        ]
    elif not set(map(type, values)) <= {str}:
        values = [tag_value(value) for value in values]
    out[CALL_INDEX["tags"]] = tag_map_array(plan.tag_names, values, len(run))
    return out
