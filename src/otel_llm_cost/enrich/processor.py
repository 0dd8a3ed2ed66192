"""LLMCostSpanProcessor: tags every span with attribution, prices every LLM span, marks duplicates.

Register it on the TracerProvider and give it the processors (or exporters) that must see the cost
attributes::

    provider = TracerProvider()
    provider.add_span_processor(LLMCostSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)

Why it wraps instead of sitting next to the other processors: opentelemetry-sdk 1.40-1.45 marks a
span ended before any processor's ``_on_ending``/``on_end`` runs (``set_attribute`` is then
dropped) and since 1.43 freezes its attribute map, so cost attributes cannot be added to the span
itself. ``on_end`` therefore hands an enriched *copy* of each LLM span to the wrapped processors;
every other span is handed on as the very same object, unless it carries a raw user id (then a
copy carrying its keyed hash goes on instead).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from otel_llm_cost import _private_api
from otel_llm_cost._logging import log_once
from otel_llm_cost.conventions import names as sc
from otel_llm_cost.enrich.attribution import (
    UserIdHasher,
    default_user_id_hasher,
    set_default_user_id_hasher,
    span_tag_attributes,
)
from otel_llm_cost.enrich.budget_hook import BudgetHook, budget_hook_for
from otel_llm_cost.enrich.enrichment import is_llm_scope
from otel_llm_cost.enrich.export_queue import ExportQueue
from otel_llm_cost.enrich.llm_call import LLMCallEnricher
from otel_llm_cost.enrich.metrics import cost_metrics
from otel_llm_cost.enrich.notable import NOTABLE_NAMES, has_notable_names
from otel_llm_cost.enrich.rollups import RollupTracker
from otel_llm_cost.enrich.span_copy import _enriched_copy_of, span_attributes
from otel_llm_cost.enrich.user_keys import hashed_user_ids

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

    from otel_llm_cost.enrich.enrichment import _Pricer

__all__ = ["LLMCostSpanProcessor"]

_logger = logging.getLogger("otel_llm_cost.processor")

_NO_SCOPE: Final = object()


def _overrides(processor: SpanProcessor, name: str) -> bool:
    return getattr(type(processor), name, None) is not getattr(SpanProcessor, name, None)


class LLMCostSpanProcessor(SpanProcessor):
    """Enrich LLM spans with tokens, cost, cache impact and attribution for the processors it wraps.

    - ``on_start``: copies the attribution tags of the context (:func:`~otel_llm_cost.attribution`
      blocks and ``cost.*`` W3C baggage) onto every span as ``cost.*`` attributes, unless the span
      already has that attribute.
    - ``on_end``: a span that is not an LLM call, or that was already enriched upstream (it has
      ``llm.cost.status``), is forwarded to every wrapped processor as the same object. Any other
      LLM span is normalised, priced at its start time and forwarded as an enriched copy carrying
      the attributes listed in the README, with ``llm.cost.billable`` set by the double-count
      guard (:mod:`otel_llm_cost.enrich.dedup`).
    - ``force_flush``/``shutdown``: delegated to every wrapped processor.

    Nothing here raises into the application: a failure while enriching forwards the span
    unenriched (or partially enriched), a failing wrapped processor does not stop the others, and
    each kind of failure is logged once and counted in ``otel_llm_cost._logging.ERROR_COUNTS``.

    Args:
        *wrapped: Span processors, or span exporters, that receive the enriched spans. A
            ``DuckDBSpanExporter`` (any exporter with ``record_dropped``) is fed by an
            :class:`~otel_llm_cost.enrich.export_queue.ExportQueue` sized for it (32,768 spans,
            batches of 8,192; a full queue makes the ending thread wait briefly rather than drop,
            and a drop is counted and logged at ERROR); any other exporter by a ``BatchSpanProcessor``.
        pricing: The price book (``None``: ``PriceBook.default()``, bundled prices plus the file in
            ``OTEL_LLM_COST_PRICES``, loaded on the first LLM span; a bad file named there is logged
            and left out, never raised).
        budgets: Budgets to check; per-call budgets are checked on each billable LLM span, window
            budgets after each batch a wrapped ``DuckDBSpanExporter`` commits.
        alert_sinks: Where budget alerts go (see :class:`otel_llm_cost.budgets.BudgetEngine`).
        user_id_hasher: Hashes user ids; when given it also becomes the process default used by
            ``attribution(user_id=...)`` blocks (``None``: the process default, from the environment).
        dedup_capacity: How many recent calls the double-count guard remembers (``None``:
            ``OTEL_LLM_COST_DEDUP_CAPACITY``, default 10,000).
        meter_provider: Where each billable LLM call's spend and tokens are recorded as metrics
            (:mod:`otel_llm_cost.enrich.metrics`; ``None``: the global MeterProvider, which records
            nothing until the application sets one).
        metrics: ``False`` records no metrics (``None``: ``OTEL_LLM_COST_METRICS``, default on).

    Raises:
        TypeError: A wrapped object is neither a SpanProcessor nor a SpanExporter.
        ValueError: ``dedup_capacity`` is not positive; a budget is invalid.

    Example:
        >>> from opentelemetry.sdk.trace import TracerProvider
        >>> from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        >>> from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        >>> provider = TracerProvider()
        >>> provider.add_span_processor(LLMCostSpanProcessor(SimpleSpanProcessor(InMemorySpanExporter())))
    """

    def __init__(
        self,
        *wrapped: SpanProcessor | SpanExporter,
        pricing: _Pricer | None = None,
        budgets: Sequence[Any] = (),
        alert_sinks: Any = None,
        user_id_hasher: UserIdHasher | None = None,
        dedup_capacity: int | None = None,
        meter_provider: MeterProvider | None = None,
        metrics: bool | None = None,
    ) -> None:
        processors: list[SpanProcessor] = []
        for item in wrapped:
            if isinstance(item, SpanProcessor):
                processors.append(item)
            elif isinstance(item, SpanExporter):
                processors.append(_default_processor_for(item))
            else:
                raise TypeError(
                    f"LLMCostSpanProcessor wraps SpanProcessors or SpanExporters, not {type(item).__name__}"
                )
        self._processors: tuple[SpanProcessor, ...] = tuple(processors)
        # Most processors (Batch/Simple) do nothing on start; skipping them keeps on_start cheap.
        self._start_processors = tuple(p for p in processors if _overrides(p, "on_start"))
        self._ending_processors = tuple(p for p in processors if _overrides(p, "_on_ending"))
        # pricing=None: the enricher loads PriceBook.default() on the first LLM span, so an application
        # that builds the processor at start-up does not load the price data (~0.3 s) before it needs it.
        if user_id_hasher is not None:
            # One key per process: attribution() blocks hash with the same key as this processor.
            set_default_user_id_hasher(user_id_hasher)
        self._hasher = user_id_hasher if user_id_hasher is not None else default_user_id_hasher()
        # The one decision (is it a call, what is added, is it billable), shared with the exporter.
        self._calls = LLMCallEnricher(
            pricing=pricing, user_id_hasher=self._hasher, dedup_capacity=dedup_capacity
        )
        self._metrics = cost_metrics(meter_provider, metrics)
        queues = [processor for processor in processors if isinstance(processor, ExportQueue)]
        if self._metrics is not None and queues:
            self._metrics.add_drop_source(lambda: sum(queue.dropped_calls for queue in queues))
        # Agent, workflow and session spans get the totals of the calls below them.
        self._rollups = RollupTracker()
        # While both are empty a usual span passes untouched: tested on every span (no property call).
        self._open_work = (self._rollups.waiting_traces, self._calls.open_ancestors)
        # The last span's scope, its name and whether it is an LLM instrumentation's (one tuple:
        # threads replace it whole).
        self._last_scope: tuple[object, str | None, bool] = (_NO_SCOPE, None, False)
        self._budget_engine: BudgetHook | None = None
        if budgets:
            self._budget_engine = self._make_budget_engine(budgets, alert_sinks)

    @property
    def wrapped(self) -> tuple[SpanProcessor, ...]:
        """The processors that receive the spans (exporters appear as the processor feeding them)."""
        return self._processors

    def _make_budget_engine(self, budgets: Sequence[Any], alert_sinks: Any) -> BudgetHook:
        # The budgets build their own engine (Budget.engine_for): budgets sit above this layer, so
        # the processor receives that behaviour with the budgets instead of importing it.
        engine = budget_hook_for(budgets, alert_sinks)
        for processor in self._processors:
            exporter = _committing_exporter(processor)
            if exporter is not None:
                exporter.add_commit_listener(engine.on_commit)
        return engine

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Copy the context's attribution tags onto ``span`` as ``cost.*`` (never raises)."""
        try:
            tags = span_tag_attributes(parent_context, self._hasher)
            # Usually none of the tags is on the span yet: the block's own (read-only) mapping is
            # added as it is, in one step.
            if tags and not _private_api.add_string_attributes(span, tags):
                # The span's own dict, for point lookups only: `in` on span.attributes runs the
                # SDK's Mapping code (a miss raises and catches KeyError), and set() of it copies
                # under a lock (~0.9 us).
                present = span_attributes(span)
                missing = {name: value for name, value in tags.items() if name not in present}
                if missing and not _private_api.add_string_attributes(span, missing):
                    span.set_attributes(missing)
        except Exception as exc:
            log_once(_logger, "processor.on_start", logging.ERROR, "attribution tagging failed: %r", exc)
        for processor in self._start_processors:
            try:
                processor.on_start(span, parent_context=parent_context)
            except Exception as exc:
                log_once(
                    _logger,
                    "processor.wrapped.on_start",
                    logging.ERROR,
                    "wrapped span processor %r raised in on_start: %r",
                    processor,
                    exc,
                )

    def _on_ending(self, span: Span) -> None:
        for processor in self._ending_processors:
            try:
                processor._on_ending(span)
            except Exception as exc:
                log_once(
                    _logger,
                    "processor.wrapped._on_ending",
                    logging.ERROR,
                    "wrapped span processor %r raised in _on_ending: %r",
                    processor,
                    exc,
                )

    def on_end(self, span: ReadableSpan) -> None:
        """Forward ``span`` (enriched copy for an LLM span) to every wrapped processor (never raises)."""
        forwarded = span
        try:
            # The span's own plain dict, read-only: every lookup through span.attributes runs
            # Python code in the SDK's BoundedAttributes, and this runs for every span.
            attributes = _private_api.span_attribute_dict(span) or span_attributes(span)
            scope = span.instrumentation_scope
            last_scope, scope_name, llm_scope = self._last_scope  # one tracer's spans come in runs
            if scope is not last_scope:
                scope_name = scope.name if scope is not None else None
                llm_scope = is_llm_scope(scope_name)
                self._last_scope = (scope, scope_name, llm_scope)
            # The usual span (HTTP, DB..., in an attribution block or not): no name that makes it a
            # call, carries a raw user id or an agent/session total, and nothing below it to pass
            # on: handed on as it is.
            waiting_totals, open_ancestors = self._open_work
            if (
                (not NOTABLE_NAMES.isdisjoint(attributes) and has_notable_names(attributes))
                or waiting_totals
                or open_ancestors
                or llm_scope
            ):
                forwarded = self._enriched(span, attributes, scope_name)
        except Exception as exc:
            forwarded = span
            log_once(_logger, "processor.on_end", logging.ERROR, "enriching a span failed: %r", exc)
        for processor in self._processors:
            try:
                processor.on_end(forwarded)
            except Exception as exc:
                log_once(
                    _logger,
                    "processor.wrapped.on_end",
                    logging.ERROR,
                    "wrapped span processor %r raised in on_end: %r",
                    processor,
                    exc,
                )

    def _enriched(
        self, span: ReadableSpan, attributes: Mapping[str, Any], scope_name: str | None
    ) -> ReadableSpan:
        """What goes on for a span that may be a call, carry a user id or an agent/session total."""
        extra = self._calls.span_ended(span, attributes, scope_name)
        # Raw user ids never leave the process: any span carrying one goes on as a copy with
        # their hashes (None, the usual case: the span itself goes on).
        user_ids = hashed_user_ids(attributes, self._hasher)
        rollup = self._rollups.span_ended(span, attributes, extra)
        if extra is None:
            if user_ids is None and rollup is None:
                return span
            return _enriched_copy_of(span, dict(attributes), {**(user_ids or {}), **(rollup or {})})
        if user_ids is not None:
            extra.update(user_ids)
        billable = bool(extra.get(sc.LLM_COST_BILLABLE, True))
        if rollup is not None:
            extra.update(rollup)
        forwarded = _enriched_copy_of(span, dict(attributes), extra)
        if billable and self._budget_engine is not None:
            self._check_call_budgets(forwarded)
        if billable and self._metrics is not None:
            self._metrics.record(span, attributes, extra)  # never raises
        return forwarded

    def _check_call_budgets(self, span: ReadableSpan) -> None:
        engine, attributes = self._budget_engine, span.attributes
        if engine is None or attributes is None:
            return  # an enriched copy always has attributes: the cost it carries decided billable
        try:
            context = span.context
            engine.check_call(
                attributes,
                trace_id=context.trace_id if context is not None else None,
                span_id=context.span_id if context is not None else None,
                start_time_ns=span.start_time,
            )
        except Exception as exc:
            log_once(_logger, "processor.budgets", logging.ERROR, "per-call budget check failed: %r", exc)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush every wrapped processor, then deliver pending budget alerts, within ``timeout_millis``.

        The alerts come last: flushing a wrapped ``DuckDBSpanExporter`` commits its batch, which is
        what evaluates the window budgets.

        Returns:
            ``False`` when a processor or an alert sink reported failure, raised, or the time ran out.
        """
        deadline = time.monotonic_ns() + timeout_millis * 1_000_000
        flushed = True
        for processor in self._processors:
            remaining_ms = (deadline - time.monotonic_ns()) // 1_000_000
            if remaining_ms <= 0:
                return False
            try:
                if processor.force_flush(int(remaining_ms)) is False:
                    flushed = False
                # A BatchSpanProcessor's flush hands its spans to the exporter, whose writer thread
                # commits them moments later: wait for that too, so a query after this sees them.
                exporter = _committing_exporter(processor)
                if exporter is not None and exporter is not processor:
                    remaining_ms = (deadline - time.monotonic_ns()) // 1_000_000
                    if remaining_ms <= 0 or exporter.force_flush(int(remaining_ms)) is False:
                        flushed = False
            except Exception as exc:
                flushed = False
                log_once(
                    _logger,
                    "processor.wrapped.force_flush",
                    logging.ERROR,
                    "wrapped span processor %r raised in force_flush: %r",
                    processor,
                    exc,
                )
        if self._budget_engine is not None:
            # Per-call alerts go to the sinks from a background queue (check_call must not block
            # the application): after force_flush they must have arrived, as the spans have.
            remaining_ns = deadline - time.monotonic_ns()
            if remaining_ns <= 0:
                return False
            try:
                if not self._budget_engine.flush(remaining_ns / 1e9):
                    flushed = False
            except Exception as exc:
                flushed = False
                log_once(
                    _logger,
                    "processor.budgets.flush",
                    logging.ERROR,
                    "flushing budget alerts failed: %r",
                    exc,
                )
        return flushed

    def shutdown(self) -> None:
        """Shut down every wrapped processor (and the budget engine); never raises."""
        for processor in self._processors:
            try:
                processor.shutdown()
            except Exception as exc:
                log_once(
                    _logger,
                    "processor.wrapped.shutdown",
                    logging.ERROR,
                    "wrapped span processor %r raised in shutdown: %r",
                    processor,
                    exc,
                )
        if self._budget_engine is not None:
            try:
                self._budget_engine.shutdown()
            except Exception as exc:
                log_once(
                    _logger, "processor.budgets.shutdown", logging.ERROR, "budget engine shutdown: %r", exc
                )

    def __repr__(self) -> str:
        return f"LLMCostSpanProcessor({', '.join(repr(p) for p in self._processors)})"


def _default_processor_for(exporter: SpanExporter) -> SpanProcessor:
    """The processor that feeds an exporter given directly (see ``LLMCostSpanProcessor``'s Args)."""
    if callable(getattr(exporter, "record_dropped", None)):
        return ExportQueue(exporter)
    return BatchSpanProcessor(exporter)


def _committing_exporter(processor: SpanProcessor) -> Any:
    """The DuckDBSpanExporter ``processor`` is or feeds (Batch/SimpleSpanProcessor), else None."""
    for candidate in (processor, getattr(processor, "span_exporter", None)):
        if hasattr(candidate, "add_commit_listener") and hasattr(candidate, "force_flush"):
            return candidate
    return None
