"""The running totals of one metrics attribute set (a series), and how queued calls add to them.

:class:`~otel_llm_cost.enrich.metrics.CostMetrics` queues each billable call with its series on
the application's thread; the collecting thread hands the queued calls to :func:`add_up`.
"""

from __future__ import annotations

from typing import Any, Final

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.util.types import AttributeValue

from otel_llm_cost.conventions import names as sc

__all__ = ["KEY_NAMES", "OVERFLOW_KEY", "SAMPLED", "Series", "add_up", "context_of"]

OVERFLOW_KEY: Final = ("__overflow__",)
# Attribute names of a series, in key order (key[i] is the value of KEY_NAMES[i]).
KEY_NAMES: Final = (
    sc.LLM_MODEL,
    sc.GEN_AI_PROVIDER_NAME,
    sc.GEN_AI_OPERATION_NAME,
    sc.COST_FEATURE,
    sc.COST_AGENT,
    sc.COST_ORG_ID,
    sc.SERVICE_NAME,
    sc.LLM_COST_DEPLOYMENT,
    sc.LLM_COST_STATUS,
    sc.COST_USER_ID,
    sc.COST_SESSION_ID,
)

SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)


class Series:
    """Running totals of one attribute set, and the attribute dicts its observations carry."""

    __slots__ = (
        "attributes",
        "cache_read",
        "cache_saved_usd",
        "cache_write",
        "calls",
        "cost_usd",
        "input_attributes",
        "input_tokens",
        "last_context",
        "modality_attributes",
        "output_attributes",
        "output_tokens",
        "reasoning",
        "unpriced",
    )

    def __init__(self, key: tuple[Any, ...]) -> None:
        if key is OVERFLOW_KEY:
            attributes: dict[str, AttributeValue] = {sc.OTEL_METRIC_OVERFLOW: True}
        else:
            attributes = {
                name: value for name, value in zip(KEY_NAMES, key, strict=False) if value is not None
            }
        self.attributes = attributes
        self.input_attributes = {**attributes, sc.GEN_AI_TOKEN_TYPE: sc.GEN_AI_TOKEN_TYPE_INPUT}
        self.output_attributes = {**attributes, sc.GEN_AI_TOKEN_TYPE: sc.GEN_AI_TOKEN_TYPE_OUTPUT}
        self.modality_attributes = {**attributes, sc.GEN_AI_TOKEN_MODALITY: sc.GEN_AI_TOKEN_MODALITY_UNKNOWN}
        self.calls = self.unpriced = 0
        self.input_tokens = self.output_tokens = self.cache_read = self.cache_write = self.reasoning = 0
        self.cost_usd = self.cache_saved_usd = 0.0
        self.last_context: SpanContext | None = None


def context_of(span_context: SpanContext | None) -> Context | None:
    """The context a measurement is recorded in: the call's span, when it was sampled."""
    if span_context is None or not span_context.trace_flags.sampled:
        return None
    return trace.set_span_in_context(NonRecordingSpan(span_context))


def add_up(calls: list[tuple[Any, ...]]) -> None:
    """Add queued calls to their series' totals, in the order they were queued.

    ``calls``: (series, cost, cache saving, input, output, cache read, cache write and reasoning
    tokens, trace id, span id, 1 when sampled) each. A float sum depends on its order: added in
    queue order, the totals are those the calls would have made added one by one as they ended.
    """
    latest_sampled: dict[Series, int] = {}
    for index, call in enumerate(calls):
        series, cost, saved, input_tokens, output_tokens, cache_read, cache_write, reasoning = call[:8]
        series.calls += 1
        if cost is None:
            series.unpriced += 1
        else:
            series.cost_usd += cost
        if saved:
            series.cache_saved_usd += saved
        series.input_tokens += input_tokens or 0
        series.output_tokens += output_tokens or 0
        if cache_read:  # usually zero: no attribute write then
            series.cache_read += cache_read
        if cache_write:
            series.cache_write += cache_write
        if reasoning:
            series.reasoning += reasoning
        if call[10]:  # sampled
            latest_sampled[series] = index
    # A counter's exemplar is the latest sampled call of its series.
    for series, index in latest_sampled.items():
        series.last_context = SpanContext(calls[index][8], calls[index][9], False, SAMPLED)
