"""Normalising the usual LLM span in a few steps: what depends only on its names, worked out once.

An instrumentation writes every call with the same attribute names in the same order, so most of
what :func:`~otel_llm_cost.conventions.usage.normalize_usage` finds out (the convention, which name
carries each count, model and provider, whether cache, reasoning, streaming or service-tier names are
there) is the same for each of its spans. A :class:`UsagePlan` holds those answers for one set of
names and scope; :meth:`UsagePlan.read` then only reads and checks the values.

The plan reads exactly what the general path reads when every value is well formed; as soon as one
is not (a count that is not a non-negative int, a text that is not a usable string, anything the
general path would note in ``Usage.problems``), it gives up and the caller takes the general path.
tests/test_usage_plan.py checks both give the same ``Usage`` on generated spans of every convention.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Final

from otel_llm_cost.conventions import names as sc
from otel_llm_cost.conventions.tables import (
    _AGGREGATE_OPERATIONS,
    _KIND_NAMES,
    _LLM_OPERATIONS,
    _TRACELOOP_OPERATIONS,
    RESPONSE_ID,
    ConventionTable,
    classify,
    pick_table,
)
from otel_llm_cost.conventions.usage import Usage, _lower_text, _read_counts, _streaming, _UsageDraft
from otel_llm_cost.conventions.values import MAX_COUNT, MAX_TEXT_LEN, Names

__all__ = ["UsagePlan", "UsageValues", "compile_usage_plan"]

UsageValues = tuple[
    str | None,
    bool,
    tuple[bool, int, int, int, int, int, int],
    str | None,
    str | None,
    str | None,
    str | None,
    bool | None,
    str | None,
]
"""See :meth:`UsagePlan.values`."""

_SEEDED: Final = frozenset((sc.LLM_TOKENS_INPUT, sc.LLM_TOKENS_OUTPUT))
_TIER_NAMES: Final = frozenset(sc.SERVICE_TIER_NAMES)


def _first(candidates: Names, names: Collection[str]) -> str | None:
    """The name the general path reads first among ``candidates``: the first one the span has."""
    return next((name for name in candidates if name in names), None)


class UsagePlan:
    """How to normalise the usage of spans with one set of attribute names and one scope."""

    __slots__ = (
        "_aggregate_kinds",
        "_convention",
        "_embedding_kind",
        "_input",
        "_operation",
        "_output",
        "_read_streaming",
        "_simple_counts",
        "_streaming",
        "_table",
        "_texts",
        "_tier",
        "_total",
    )

    def __init__(self, table: ConventionTable, names: Collection[str]) -> None:
        self._table = table
        self._convention = table.convention
        self._operation = _first(table.operation, names)
        # operation_of falls back on the OpenInference span kind only when no operation name is there.
        self._embedding_kind = self._operation is None and sc.OPENINFERENCE_SPAN_KIND in names
        self._aggregate_kinds = not _KIND_NAMES.isdisjoint(names)
        self._input = _first(table.input, names)
        self._output = _first(table.output, names)
        self._total = _first(table.total, names)
        self._simple_counts = table.optional_counts.isdisjoint(names)
        # Streaming is read only when the span has one of its table's names; else it is known.
        self._read_streaming = bool(table.streaming) and not table.streaming_names.isdisjoint(names)
        self._streaming = False if table.streaming and table.streaming_absent_means_false else None
        texts = (table.request_model, table.response_model, table.provider, RESPONSE_ID)
        # (index in request model, response model, provider, response id; the name read there).
        self._texts = tuple(
            (index, name)
            for index, name in enumerate(_first(candidates, names) for candidates in texts)
            if name is not None
        )
        self._tier = not _TIER_NAMES.isdisjoint(names)

    @property
    def convention(self) -> str:
        """The convention the counts are read from."""
        return self._convention

    @property
    def plain_counts(self) -> bool:
        """Whether the shape has no cache, reasoning or extra count names (those counts are 0)."""
        return self._simple_counts

    def read(self, attributes: Mapping[str, Any]) -> Usage | None:
        """The span's :class:`Usage`, or ``None``: some value is not well formed (take the general path).

        ``attributes`` must have exactly the names the plan was compiled for."""
        values = self.values(attributes)
        if values is None:
            return None
        (
            operation,
            aggregate,
            counts,
            request_model,
            response_model,
            provider,
            response_id,
            streaming,
            tier,
        ) = values
        # Unpacked, not *counts[1:]: a call with a starred argument costs ~0.13 us more.
        reported, input_tokens, output_tokens, cache_read, cache_write, cache_write_1h, reasoning = counts
        usage = _UsageDraft(
            input_tokens,
            output_tokens,
            cache_read,
            cache_write,
            cache_write_1h,
            reasoning,
            request_model,
            response_model,
            provider,
            operation,
            self._convention,
            reported,
            aggregate,
            response_id,
            streaming,
            (),
            tier,
        )
        usage.__class__ = Usage  # type: ignore[assignment]
        return usage  # type: ignore[return-value]  # a Usage now (no cast(): a call per span)

    def values(self, attributes: Mapping[str, Any]) -> UsageValues | None:
        """What :meth:`read` puts in the Usage, as a tuple: (operation, is_aggregate, (usage_reported,
        input, output, cache_read, cache_write, cache_write_1h, reasoning), request_model,
        response_model, provider (lower-cased), response_id, streaming, service_tier); ``None`` as
        for :meth:`read`."""
        table = self._table
        problems: list[str] = []
        name = self._operation
        if name is not None:
            value = attributes[name]
            if type(value) is not str:
                return None
            operation: str | None = value.strip()
            if not operation or len(operation) > MAX_TEXT_LEN:
                return None
            operation = operation.lower()
            operation = _TRACELOOP_OPERATIONS.get(operation, operation)
        elif self._embedding_kind:
            kind = attributes[sc.OPENINFERENCE_SPAN_KIND]
            operation = "embeddings" if type(kind) is str and kind.upper() == "EMBEDDING" else None
        else:
            operation = None
        if self._aggregate_kinds:
            declared, aggregate = classify(attributes, operation)
        else:
            declared, aggregate = operation in _LLM_OPERATIONS, operation in _AGGREGATE_OPERATIONS
        if self._simple_counts:
            counts = self._plain_counts(attributes)
        else:
            counts = _read_counts(attributes, table, declared, problems)
            if problems or (counts is not None and not counts[0]):
                return None  # the general path may try the span's other conventions
        if counts is None:
            return None
        return self._texts_and_flags(attributes, operation, aggregate, counts)

    def _plain_counts(
        self, attributes: Mapping[str, Any]
    ) -> tuple[bool, int, int, int, int, int, int] | None:
        """The counts of a span with no cache, reasoning or extra count names, as ``_read_counts``
        gives them when each count there is a valid int (else ``None``)."""
        # Unrolled (no loop, no list): a count that is there must be a valid int, else read_count
        # would note it or go on to a later name.
        input_tokens = output_tokens = total = None
        if self._input is not None:
            input_tokens = attributes[self._input]
            if type(input_tokens) is not int or not 0 <= input_tokens <= MAX_COUNT:
                return None
        if self._output is not None:
            output_tokens = attributes[self._output]
            if type(output_tokens) is not int or not 0 <= output_tokens <= MAX_COUNT:
                return None
        if self._total is not None:
            total = attributes[self._total]
            if type(total) is not int or not 0 <= total <= MAX_COUNT:
                return None
        if input_tokens is None:  # a total and the output: the input is the rest
            input_tokens = max(total - (output_tokens or 0), 0) if total is not None else 0
        if output_tokens is None:
            output_tokens = max(total - input_tokens, 0) if total is not None else 0
        return True, input_tokens, output_tokens, 0, 0, 0, 0

    def _texts_and_flags(
        self,
        attributes: Mapping[str, Any],
        operation: str | None,
        aggregate: bool,
        counts: tuple[bool, int, int, int, int, int, int],
    ) -> UsageValues | None:
        """:meth:`values` from the models on: the texts, streaming and service tier."""
        texts: list[str | None] = [None, None, None, None]
        for index, name in self._texts:
            value = attributes[name]
            if type(value) is not str:
                return None
            text = value.strip()
            if not text or len(text) > MAX_TEXT_LEN:
                return None
            texts[index] = text
        streaming = self._streaming
        tier = None
        if self._read_streaming or self._tier:
            problems: list[str] = []
            if self._read_streaming:
                streaming = _streaming(attributes, self._table, problems)
            if self._tier:
                tier = _lower_text(attributes, sc.SERVICE_TIER_NAMES, problems)
            if problems:
                return None
        request_model, response_model, provider, response_id = texts
        return (
            operation,
            aggregate,
            counts,
            request_model,
            response_model,
            provider.lower() if provider is not None else None,
            response_id,
            streaming,
            tier,
        )


def compile_usage_plan(names: Collection[str], scope_name: str | None) -> UsagePlan | None:
    """The plan for spans with these attribute names and scope, or ``None``: the general path only
    (no convention claims them, they carry our own ``llm.tokens.*`` names, or neither an input nor
    an output count name)."""
    present = dict.fromkeys(names)
    table = pick_table(present, scope_name)
    if table is None or not _SEEDED.isdisjoint(present):
        return None
    if _first(table.input, present) is None and _first(table.output, present) is None:
        return None  # a total alone, or no count: the general path (and its other conventions)
    return UsagePlan(table, present)
