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
queues its attribute values and figures (one list extend, no lock, no lookup); the collecting
thread finds each queued call's series (its attribute set), adds the call to the series' running
totals, which the counters report, as observable counters do, and records the histogram's two
measurements per call (it has no observable form). Once 65,536 calls are waiting (~25 MB), the
application thread that queues the next one does that work itself, so memory stays bounded when
no reader collects for a long while.

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

from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, NoOpMeterProvider, Observation
from opentelemetry.metrics import get_meter_provider as _global_meter_provider
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext
from opentelemetry.util.types import AttributeValue

from otel_llm_cost import _config
from otel_llm_cost._logging import log_once
from otel_llm_cost._private_api import (
    global_meter_provider_check,
    is_proxy_meter_provider,
    span_context_and_resource,
    span_context_ids,
)
from otel_llm_cost.conventions import names as sc
from otel_llm_cost.enrich.metric_series import OVERFLOW_KEY, SAMPLED, Series, add_up, context_of

__all__ = ["CostMetrics", "cost_metrics"]

_logger = logging.getLogger("otel_llm_cost.metrics")

_METER_NAME: Final = "otel_llm_cost"
# The GenAI semantic conventions' advised buckets for gen_ai.client.token.usage (powers of 4).
_TOKEN_BUCKETS: Final = tuple(float(4**i) for i in range(14))
# Beyond this many attribute sets, calls go to one overflow series (as the SDK does at its own
# cardinality limit, 2,000 by default): a runaway tag must not grow memory without bound.
_MAX_SERIES: Final = 2_000
# Calls that wait for a collection before the application thread adds them up and records their
# histogram measurements itself (~375 bytes each, with the strings and numbers they hold). Sized
# for 60 s (the periodic reader's default interval) at 1,000 calls per second: recording them
# costs ~25 us a call through the SDK, off the span thread.
_MAX_PENDING: Final = 65_536
# The same names as read from a call's enrichment (`extra`) and span attributes.
_MODEL, _PROVIDER, _OPERATION = sc.LLM_MODEL, sc.LLM_PROVIDER_NAME, sc.LLM_OPERATION
_FEATURE, _AGENT, _ORG = sc.COST_FEATURE, sc.COST_AGENT, sc.COST_ORG_ID
_DEPLOYMENT, _STATUS = sc.LLM_COST_DEPLOYMENT, sc.LLM_COST_STATUS
_USER, _SESSION = sc.COST_USER_ID, sc.COST_SESSION_ID
# A call's figures in `extra` (token counts are the enrichment's own ints, absent when not reported).
_COST, _SAVED = sc.LLM_COST_USD, sc.LLM_CACHE_COST_SAVED_USD
_INPUT, _OUTPUT, _REASONING = sc.LLM_TOKENS_INPUT, sc.LLM_TOKENS_OUTPUT, sc.LLM_TOKENS_REASONING
_CACHE_READ, _CACHE_WRITE = sc.LLM_TOKENS_CACHE_READ, sc.LLM_TOKENS_CACHE_WRITE
# A queued call is this many items (see CostMetrics.record), two more with the user and session ids:
# model, provider, operation, feature, agent, org, deployment, status, its seven figures, its
# span's resource, trace id, span id, and 1 when it was sampled.
_QUEUED_ITEMS: Final = 19

# The counters: (instrument name, unit, the Series total it reports, description).
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
        self._series: dict[tuple[Any, ...], Series] = {}
        # Calls waiting for the collecting thread, as one flat list of their items: a tuple or span
        # context kept per call made the garbage collector run ~4 times as often, on the
        # application's thread (str, int, float and None items are not tracked by it).
        self._pending: list[Any] = []
        self._stride = _QUEUED_ITEMS + 2 if self._user_ids else _QUEUED_ITEMS
        self._max_queued = _MAX_PENDING * self._stride
        self._drain_lock = threading.Lock()
        # A fork while another thread holds a lock would leave the child's copy held forever.
        reinit = weakref.WeakMethod(self._reinit_locks)
        os.register_at_fork(after_in_child=lambda: (method := reinit()) is not None and method())
        # The collecting thread's latest resource and its service.name.
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
        # This runs on the application's thread for each call: it only reads the call's attribute
        # values and figures (module constants as names: no module attribute lookup per name) and
        # queues them, with no lock; the collecting thread finds their series and adds them up.
        try:
            if self._provider_set is not None:
                if not self._provider_set():
                    return
                self._provider_set = None
            get, tag = extra.get, attributes.get
            context, resource = span_context_and_resource(span)
            trace_id, span_id, flags = span_context_ids(context)
            # `flags & 1` is a plain int: a TraceFlags is tracked by the garbage collector.
            call: tuple[Any, ...] = (
                get(_MODEL),
                get(_PROVIDER),
                get(_OPERATION),
                get(_FEATURE) or tag(_FEATURE),
                get(_AGENT) or tag(_AGENT),
                get(_ORG) or tag(_ORG),
                get(_DEPLOYMENT),
                get(_STATUS),
                get(_COST),
                get(_SAVED),
                get(_INPUT),
                get(_OUTPUT),
                get(_CACHE_READ),
                get(_CACHE_WRITE),
                get(_REASONING),
                resource,
                trace_id,
                span_id,
                flags & 1,
            )
            if self._user_ids:
                # The values the processor stores: cost.user_id is its keyed hash, never the raw id.
                call += (get(_USER) or tag(_USER), get(_SESSION) or tag(_SESSION))
            pending = self._pending
            # One list extend by a tuple is one C call, atomic under the GIL: the items of calls
            # queued by two threads never interleave.
            pending += call
            if len(pending) >= self._max_queued:
                self._drain()
        except Exception as exc:
            log_once(_logger, "metrics.record", logging.ERROR, "recording LLM cost metrics failed: %r", exc)

    def _new_series(self, key: tuple[Any, ...]) -> Series:
        # Only the draining thread adds series; the lock keeps the counters' callbacks from
        # reading the dict while it grows.
        with self._lock:
            if len(self._series) >= _MAX_SERIES:
                series = self._series.get(OVERFLOW_KEY)
                if series is None:
                    series = self._series[OVERFLOW_KEY] = Series(OVERFLOW_KEY)
                return series
            series = self._series[key] = Series(key)
            return series

    def _drain(self) -> None:
        """Add the queued calls to their series' totals, then record their histogram measurements.

        One thread at a time (others go on). Only whole calls are taken, by copying and then
        deleting that many items: calls queued meanwhile stay at the end of the list, never lost.
        """
        if not self._drain_lock.acquire(blocking=False):
            return
        try:
            pending, stride = self._pending, self._stride
            count = len(pending) - len(pending) % stride
            items = pending[:count]
            del pending[:count]
            calls = self._with_series(zip(*[iter(items)] * stride, strict=True))
            add_up(calls)
            self._record_histogram(calls)
        finally:
            self._drain_lock.release()

    def _with_series(self, queued: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Each queued call as (its series, its seven figures, trace id, span id, 1 when sampled)."""
        calls = []
        series_of = self._series.get
        for call in queued:
            try:
                resource = call[15]
                if resource is not self._last_resource:
                    # One resource per TracerProvider: its service.name is looked up once, not per call.
                    self._last_service = (
                        None if resource is None else resource.attributes.get(sc.SERVICE_NAME)
                    )
                    self._last_resource = resource
                # In KEY_NAMES order (the queued layout is _QUEUED_ITEMS'); the user and session ids,
                # when queued, are last.
                key = (*call[:6], self._last_service, call[6], call[7], *call[19:])
                calls.append((series_of(key) or self._new_series(key), *call[8:15], *call[16:19]))
            except Exception as exc:  # an unhashable tag value: that call only is left out
                log_once(
                    _logger, "metrics.record", logging.ERROR, "recording LLM cost metrics failed: %r", exc
                )
        return calls

    def _record_histogram(self, calls: list[tuple[Any, ...]]) -> None:
        record = self._histogram.record
        try:
            for series, _, _, input_tokens, output_tokens, _, _, _, trace_id, span_id, sampled in calls:
                context = None
                if sampled:
                    context = context_of(SpanContext(trace_id, span_id, False, SAMPLED))
                record(input_tokens or 0, series.input_attributes, context=context)
                record(output_tokens or 0, series.output_attributes, context=context)
        except Exception as exc:
            log_once(_logger, "metrics.histogram", logging.ERROR, "recording token usage failed: %r", exc)

    def _callback(self, field: str, name: str) -> Any:
        modality = name.startswith("gen_ai.")

        def observe(options: CallbackOptions) -> Iterable[Observation]:
            try:
                self._drain()
                with self._lock:
                    rows = [(getattr(s, field), s, s.last_context) for s in self._series.values()]
                return [
                    Observation(value, s.modality_attributes if modality else s.attributes, context_of(last))
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
