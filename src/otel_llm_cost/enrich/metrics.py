"""Spend, tokens and unpriced calls as OpenTelemetry metrics, recorded for each billable LLM call.

:class:`CostMetrics` creates its instruments once from a Meter and is handed every billable
enriched LLM call by the span processor (never a rollup or a duplicate, never a non-LLM span).
What it records (docs/metrics.md has the full table):

- ``gen_ai.client.token.usage``: the GenAI semantic conventions' histogram, one input and one
  output measurement per call (``gen_ai.token.type``).
- ``gen_ai.client.inference.usage.{input_tokens, output_tokens, cache_read.input_tokens,
  cache_write.input_tokens, reasoning.output_tokens}``: the counters of semantic-conventions-genai
  PR #374 (``OTEL_LLM_COST_METRICS_TOKEN_COUNTERS`` turns them off).
- ``llm.cost`` (USD), ``llm.calls`` (by ``llm.cost.status``), ``llm.calls.unpriced`` and
  ``llm.cache.cost_saved`` (USD).

Why the counters are pre-aggregated here and observed at collection time: one measurement through
the SDK's synchronous instruments costs ~2-10 us of CPU (attribute-set hashing, aggregation lock,
exemplar reservoir), nine of them per call would cost more than pricing the call. A call instead
adds its figures to the running totals of its attribute set (one dict lookup under a lock) and
the counters report the totals when a reader collects, as observable counters do. The histogram
has no observable form: its two measurements per call are queued and recorded by the collecting
thread (or by the application thread once 65,536 are waiting, ~10 MB, so memory stays bounded
when no reader collects for a long while).

Exemplars: a sampled call's span context goes with its histogram measurements and with its
series' counter observations, so the SDK's default ``trace_based`` exemplar filter attaches the
trace and span id of a real call (for a counter, the latest call of that series).
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, NoOpMeterProvider, Observation
from opentelemetry.metrics import get_meter_provider as _global_meter_provider
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.util.types import AttributeValue

from otel_llm_cost import _config
from otel_llm_cost._logging import log_once
from otel_llm_cost._private_api import global_meter_provider_check, is_proxy_meter_provider, span_context_ids
from otel_llm_cost.conventions import names as sc

__all__ = ["CostMetrics", "cost_metrics"]

_logger = logging.getLogger("otel_llm_cost.metrics")

_METER_NAME: Final = "otel_llm_cost"
# The GenAI semantic conventions' advised buckets for gen_ai.client.token.usage (powers of 4).
_TOKEN_BUCKETS: Final = tuple(float(4**i) for i in range(14))
# Beyond this many attribute sets, calls go to one overflow series (as the SDK does at its own
# cardinality limit, 2,000 by default): a runaway tag must not grow memory without bound.
_MAX_SERIES: Final = 2_000
# Calls whose histogram measurements wait for a collection before the application thread records
# them itself (~150 bytes each). Sized for 60 s (the periodic reader's default interval) at 1,000
# calls per second: recording them costs ~25 us a call through the SDK, off the span thread.
_MAX_PENDING: Final = 65_536
_OVERFLOW_KEY: Final = ("__overflow__",)
# Attribute names of a series, in key order (key[i] is the value of _KEY_NAMES[i]).
_KEY_NAMES: Final = (
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

_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)
# The same names as read from a call's enrichment (`extra`) and span attributes.
_MODEL, _PROVIDER, _OPERATION = sc.LLM_MODEL, sc.LLM_PROVIDER_NAME, sc.LLM_OPERATION
_FEATURE, _AGENT, _ORG = sc.COST_FEATURE, sc.COST_AGENT, sc.COST_ORG_ID
_DEPLOYMENT, _STATUS = sc.LLM_COST_DEPLOYMENT, sc.LLM_COST_STATUS
_USER, _SESSION = sc.COST_USER_ID, sc.COST_SESSION_ID
# A call's figures in `extra`: cost, cache saving, then input, output, cache read, cache write and
# reasoning tokens.
_FIGURE_NAMES: Final = (
    sc.LLM_COST_USD,
    sc.LLM_CACHE_COST_SAVED_USD,
    sc.LLM_TOKENS_INPUT,
    sc.LLM_TOKENS_OUTPUT,
    sc.LLM_TOKENS_CACHE_READ,
    sc.LLM_TOKENS_CACHE_WRITE,
    sc.LLM_TOKENS_REASONING,
)

# The counters: (instrument name, unit, the _Series total it reports, description).
_COST_COUNTERS: Final[tuple[tuple[str, str, str, str], ...]] = (
    (sc.LLM_COST_METRIC, "USD", "cost_usd", "Spend on billable LLM calls, in US dollars."),
    (sc.LLM_CALLS_METRIC, "{call}", "calls", "Billable LLM calls, by llm.cost.status."),
    (sc.LLM_CALLS_UNPRICED_METRIC, "{call}", "unpriced", "Billable LLM calls with no known price."),
    (
        sc.LLM_CACHE_COST_SAVED_METRIC,
        "USD",
        "cache_saved_usd",
        "What prompt-cache reads saved against the uncached input price, in US dollars.",
    ),
)
_TOKEN_COUNTERS: Final[tuple[tuple[str, str, str, str], ...]] = (
    (sc.GEN_AI_CLIENT_INFERENCE_USAGE_INPUT_TOKENS, "{token}", "input_tokens", "Input tokens."),
    (sc.GEN_AI_CLIENT_INFERENCE_USAGE_OUTPUT_TOKENS, "{token}", "output_tokens", "Output tokens."),
    (
        sc.GEN_AI_CLIENT_INFERENCE_USAGE_CACHE_READ_INPUT_TOKENS,
        "{token}",
        "cache_read",
        "Input tokens read from a provider-managed cache.",
    ),
    (
        sc.GEN_AI_CLIENT_INFERENCE_USAGE_CACHE_WRITE_INPUT_TOKENS,
        "{token}",
        "cache_write",
        "Input tokens written to a provider-managed cache.",
    ),
    (
        sc.GEN_AI_CLIENT_INFERENCE_USAGE_REASONING_OUTPUT_TOKENS,
        "{token}",
        "reasoning",
        "Output tokens spent on reasoning.",
    ),
)


class _Series:
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
        if key is _OVERFLOW_KEY:
            attributes: dict[str, AttributeValue] = {sc.OTEL_METRIC_OVERFLOW: True}
        else:
            attributes = {
                name: value for name, value in zip(_KEY_NAMES, key, strict=False) if value is not None
            }
        self.attributes = attributes
        self.input_attributes = {**attributes, sc.GEN_AI_TOKEN_TYPE: sc.GEN_AI_TOKEN_TYPE_INPUT}
        self.output_attributes = {**attributes, sc.GEN_AI_TOKEN_TYPE: sc.GEN_AI_TOKEN_TYPE_OUTPUT}
        self.modality_attributes = {**attributes, sc.GEN_AI_TOKEN_MODALITY: sc.GEN_AI_TOKEN_MODALITY_UNKNOWN}
        self.calls = self.unpriced = 0
        self.input_tokens = self.output_tokens = self.cache_read = self.cache_write = self.reasoning = 0
        self.cost_usd = self.cache_saved_usd = 0.0
        self.last_context: SpanContext | None = None


def _context(span_context: SpanContext | None) -> Context | None:
    """The context a measurement is recorded in: the call's span, when it was sampled."""
    if span_context is None or not span_context.trace_flags.sampled:
        return None
    return trace.set_span_in_context(NonRecordingSpan(span_context))


class CostMetrics:
    """Records each billable LLM call's spend and tokens on instruments created once from ``meter``.

    Args:
        meter: Where the instruments are created (normally ``provider.get_meter("otel_llm_cost")``).
        token_counters: Also create the ``gen_ai.client.inference.usage.*`` counters (``None``:
            ``OTEL_LLM_COST_METRICS_TOKEN_COUNTERS``, default on).
        user_ids: Add the hashed ``cost.user_id`` and ``cost.session_id`` to every attribute set
            (``None``: ``OTEL_LLM_COST_METRICS_USER_IDS``, default off).

    Example:
        >>> from opentelemetry.sdk.metrics import MeterProvider
        >>> metrics = CostMetrics(MeterProvider().get_meter("otel_llm_cost"))
    """

    def __init__(
        self,
        meter: Meter,
        *,
        token_counters: bool | None = None,
        user_ids: bool | None = None,
        _idle_while: MeterProvider | None = None,
    ) -> None:
        # The API's global proxy drops every measurement until the application sets a provider:
        # until then nothing is aggregated or queued (no CPU, no memory for figures nobody reads).
        self._provider_set = global_meter_provider_check(_idle_while) if _idle_while is not None else None
        self._user_ids = _config.METRICS_USER_IDS.get() if user_ids is None else user_ids
        self._lock = threading.Lock()
        self._series: dict[tuple[Any, ...], _Series] = {}
        # Calls whose histogram measurements wait for the collecting thread: each call's series,
        # and five ints (input and output tokens, trace id, span id, 1 when sampled). A tuple or span
        # context kept per call made the garbage collector run ~4 times as often, on the
        # application's thread; ints are not tracked by it.
        self._pending: list[_Series] = []
        self._pending_figures: list[int] = []
        self._drain_lock = threading.Lock()
        # A fork while another thread holds a lock would leave the child's copy held forever.
        reinit = weakref.WeakMethod(self._reinit_locks)
        os.register_at_fork(after_in_child=lambda: (method := reinit()) is not None and method())
        self._last_resource: object = None
        self._last_service: object = None
        self._histogram = meter.create_histogram(
            sc.GEN_AI_CLIENT_TOKEN_USAGE,
            unit="{token}",
            description="Tokens used per LLM call, by gen_ai.token.type (input, output).",
            explicit_bucket_boundaries_advisory=list(_TOKEN_BUCKETS),
        )
        counters = _COST_COUNTERS
        if _config.METRICS_TOKEN_COUNTERS.get() if token_counters is None else token_counters:
            counters += _TOKEN_COUNTERS
        for name, unit, field, description in counters:
            meter.create_observable_counter(
                name, callbacks=[self._callback(field, name)], unit=unit, description=description
            )
        self._drop_sources: list[Callable[[], int]] = []
        meter.create_observable_counter(
            sc.LLM_CALLS_DROPPED_METRIC,
            callbacks=[self._observe_drops],
            unit="{call}",
            description="LLM calls an export queue dropped because it stayed full (a stalled exporter).",
        )

    def add_drop_source(self, source: Callable[[], int]) -> None:
        """Report ``source()`` (calls dropped so far, never decreasing) as ``llm.calls.dropped``."""
        self._drop_sources.append(source)

    def _observe_drops(self, options: CallbackOptions) -> Iterable[Observation]:
        try:
            return [Observation(sum(source() for source in self._drop_sources))] if self._drop_sources else []
        except Exception as exc:
            log_once(_logger, "metrics.dropped", logging.ERROR, "observing dropped calls failed: %r", exc)
            return []

    def _reinit_locks(self) -> None:
        self._lock = threading.Lock()
        self._drain_lock = threading.Lock()

    def record(
        self, span: ReadableSpan, attributes: Mapping[str, AttributeValue], extra: Mapping[str, Any]
    ) -> None:
        """Add one billable LLM call (``extra``: its enrichment, overriding ``attributes``); never raises."""
        try:
            if self._provider_set is not None:
                if not self._provider_set():
                    return
                self._provider_set = None
            self._record(span, attributes, extra)
        except Exception as exc:
            log_once(_logger, "metrics.record", logging.ERROR, "recording LLM cost metrics failed: %r", exc)

    def _record(
        self, span: ReadableSpan, attributes: Mapping[str, AttributeValue], extra: Mapping[str, Any]
    ) -> None:
        # This runs on the application's thread for each call: the names are module constants (no
        # module attribute lookup per name) and the figures are read in one C-level pass.
        get, tag = extra.get, attributes.get
        resource = span.resource
        if resource is not self._last_resource:
            # One resource per TracerProvider: its service.name is looked up once, not per call.
            self._last_service = resource.attributes.get(sc.SERVICE_NAME) if resource is not None else None
            self._last_resource = resource
        key: tuple[Any, ...] = (
            get(_MODEL),
            get(_PROVIDER),
            get(_OPERATION),
            get(_FEATURE) or tag(_FEATURE),
            get(_AGENT) or tag(_AGENT),
            get(_ORG) or tag(_ORG),
            self._last_service,
            get(_DEPLOYMENT),
            get(_STATUS),
        )
        if self._user_ids:
            # The values the processor stores: cost.user_id is its keyed hash, never the raw id.
            key += (get(_USER) or tag(_USER), get(_SESSION) or tag(_SESSION))
        # Token counts in `extra` are the enrichment's own ints (absent when usage was not reported).
        cost, saved, input_tokens, output_tokens, cache_read, cache_write, reasoning = map(get, _FIGURE_NAMES)
        input_tokens = input_tokens or 0
        output_tokens = output_tokens or 0
        trace_id, span_id, sampled = span_context_ids(span.context)
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._new_series(key)
            series.calls += 1
            if cost is None:
                series.unpriced += 1
            else:
                series.cost_usd += cost
            if saved:
                series.cache_saved_usd += saved
            series.input_tokens += input_tokens
            series.output_tokens += output_tokens
            if cache_read:  # usually zero: no attribute write then
                series.cache_read += cache_read
            if cache_write:
                series.cache_write += cache_write
            if reasoning:
                series.reasoning += reasoning
            # The collecting thread sets the series' latest sampled call (its exemplar). `sampled & 1`
            # is a plain int: a TraceFlags object would be tracked by the garbage collector.
            pending = self._pending
            pending.append(series)
            self._pending_figures += (input_tokens, output_tokens, trace_id, span_id, sampled & 1)
        if len(pending) >= _MAX_PENDING:
            self._drain()

    def _new_series(self, key: tuple[Any, ...]) -> _Series:
        if len(self._series) >= _MAX_SERIES:
            series = self._series.get(_OVERFLOW_KEY)
            if series is None:
                series = self._series[_OVERFLOW_KEY] = _Series(_OVERFLOW_KEY)
            return series
        series = self._series[key] = _Series(key)
        return series

    def _drain(self) -> None:
        """Record the queued histogram measurements (one thread at a time; others go on)."""
        if not self._drain_lock.acquire(blocking=False):
            return
        try:
            with self._lock:
                pending, figures = self._pending, self._pending_figures
                self._pending, self._pending_figures = [], []
            record = self._histogram.record
            for index, series in enumerate(pending):
                input_tokens, output_tokens, trace_id, span_id, sampled = figures[5 * index : 5 * index + 5]
                context = None
                if sampled:  # the latest sampled call is its series' exemplar
                    series.last_context = SpanContext(trace_id, span_id, False, _SAMPLED)
                    context = _context(series.last_context)
                record(input_tokens, series.input_attributes, context=context)
                record(output_tokens, series.output_attributes, context=context)
        except Exception as exc:
            log_once(_logger, "metrics.histogram", logging.ERROR, "recording token usage failed: %r", exc)
        finally:
            self._drain_lock.release()

    def _callback(self, field: str, name: str) -> Any:
        modality = name.startswith("gen_ai.")

        def observe(options: CallbackOptions) -> Iterable[Observation]:
            try:
                self._drain()
                with self._lock:
                    rows = [(getattr(s, field), s, s.last_context) for s in self._series.values()]
                return [
                    Observation(value, s.modality_attributes if modality else s.attributes, _context(last))
                    for value, s, last in rows
                ]
            except Exception as exc:
                log_once(_logger, "metrics.observe", logging.ERROR, "observing %s failed: %r", name, exc)
                return []

        return observe


def cost_metrics(meter_provider: MeterProvider | None, enabled: bool | None) -> CostMetrics | None:
    """The recorder a span processor uses, or ``None`` when metrics are off (never raises).

    Args:
        meter_provider: Where to record (``None``: the global MeterProvider; until the application
            sets one, the API's proxy records nothing).
        enabled: ``False`` turns metrics off (``None``: ``OTEL_LLM_COST_METRICS``, default on).
    """
    if enabled is None:
        enabled = _config.METRICS.get()
    if not enabled:
        return None
    try:
        provider = meter_provider if meter_provider is not None else _global_meter_provider()
        if isinstance(provider, NoOpMeterProvider):
            return None
        idle_while = provider if is_proxy_meter_provider(provider) else None
        return CostMetrics(provider.get_meter(_METER_NAME), _idle_while=idle_while)
    except Exception as exc:
        log_once(_logger, "metrics.create", logging.ERROR, "creating LLM cost metrics failed: %r", exc)
        return None
