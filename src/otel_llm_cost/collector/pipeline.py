"""The receiver's own pipeline: a batching stage that knows how many spans it holds.

The receiver must answer 503 before anything between it and the database can drop a span. The SDK's
``BatchSpanProcessor`` drops spans silently when its queue is full and has no public accessor for its
depth, so the receiver does not ask it: :class:`ReceiverPipeline` counts the spans it hands to its
batch processor and the spans that processor hands to the exporter; the difference is what waits in
the queue. A :class:`~otel_llm_cost.storage.exporter.DuckDBSpanExporter` behind it accepts batches at
once and commits them on its writer thread, so its public ``uncommitted_rows`` backlog counts against
the same capacity: a slow or locked database answers 503 too instead of growing the exporter's journal
without bound.

:func:`build_processor` puts no ``LLMCostSpanProcessor`` in front: the exporter's own enricher (the
same ``LLMCallEnricher`` decisions, a batch at a time in end order) enriches what it stores, so no
enriched copy of each span is built, and the receiver decodes spans straight into what storage reads.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from otel_llm_cost import _config
from otel_llm_cost._logging import log_once
from otel_llm_cost.collector.storing import StoringPipeline, run_after_shutdown
from otel_llm_cost.conventions import names as sc
from otel_llm_cost.enrich.budget_hook import BudgetHook, budget_hook_for
from otel_llm_cost.enrich.llm_call import LLMCallEnricher
from otel_llm_cost.enrich.metrics import CostMetrics, cost_metrics
from otel_llm_cost.storage.exporter import DuckDBSpanExporter

if TYPE_CHECKING:
    from otel_llm_cost.budgets import Budget
    from otel_llm_cost.pricing import PriceBook

__all__ = [
    "RECEIVER_MAX_EXPORT_BATCH_SIZE",
    "RECEIVER_MAX_QUEUE_SIZE",
    "RECEIVER_SCHEDULE_DELAY_MILLIS",
    "AdmissionPipeline",
    "ReceiverPipeline",
    "StoringPipeline",
    "build_processor",
]

_logger = logging.getLogger("otel_llm_cost.collector")

# Large export batches because DuckDB inserts Arrow batches of thousands of rows several times faster
# than batches of hundreds (measured on 2 cores: ~32k rows/s at 512 rows per batch, ~50k at 10,000);
# a deep queue absorbs bursts from many senders, with backpressure before it could overflow.
RECEIVER_MAX_QUEUE_SIZE: Final = 131_072
RECEIVER_MAX_EXPORT_BATCH_SIZE: Final = 8_192
RECEIVER_SCHEDULE_DELAY_MILLIS: Final = 1_000
# The receiver holds its file longer than an application's exporter (0.2 s idle, 2 s at most): every
# release checkpoints and closes the database, and under steady traffic that was the writer thread's
# second cost after the inserts (3-4 of ~75 us receiver CPU per span; 68-73 us against 74-83 us with
# the defaults, back to back, in `benchmarks/bench_collector.py --workers 4 --spans 10000`). A reader
# kept waiting still gets the file at once (it asks through its read-request file); what grows is the
# write-ahead log a restart after kill -9 replays: at most ten seconds of rows.
RECEIVER_HOLD_IDLE_S: Final = 1.0
RECEIVER_HOLD_MAX_S: Final = 10.0


class _CountingExporter(SpanExporter):
    """Counts the spans the batch processor hands to ``exporter`` (they have left its queue)."""

    def __init__(self, exporter: SpanExporter) -> None:
        self.exporter = exporter
        self.received = 0
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        # Counted before exporting: a batch being exported has left the queue, and a DuckDB exporter
        # counts it in its own backlog from the moment it accepts it.
        with self._lock:
            self.received += len(spans)
        return self.exporter.export(spans)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.exporter.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.exporter.shutdown()


class ReceiverPipeline(SpanProcessor):
    """Batches spans to ``exporter`` and tells the receiver how much room is left before it would drop.

    A ``BatchSpanProcessor`` over ``exporter``, with two counters around it: spans handed over in
    :meth:`on_end` and spans the batch processor exported. Their difference is the queue depth, read
    without touching the SDK's internals.

    Args:
        exporter: Where batches go; a ``DuckDBSpanExporter``'s uncommitted rows count against the room.
        max_queue_size: Spans that may wait in the queue (the backpressure capacity).
        max_export_batch_size: Largest batch handed to ``exporter``.
        schedule_delay_millis: Longest wait before a partial batch is exported.

    Raises:
        ValueError: A non-positive size or delay (from the SDK's batch processor).
    """

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        max_queue_size: int = RECEIVER_MAX_QUEUE_SIZE,
        max_export_batch_size: int = RECEIVER_MAX_EXPORT_BATCH_SIZE,
        schedule_delay_millis: float = RECEIVER_SCHEDULE_DELAY_MILLIS,
    ) -> None:
        self.span_exporter: Final = exporter
        """The exporter, under the attribute name the SDK's processors use (budgets find it there)."""
        self._exporter = _CountingExporter(exporter)
        self._backlog = exporter if isinstance(exporter, DuckDBSpanExporter) else None
        self._batch: SpanProcessor = BatchSpanProcessor(
            self._exporter,
            max_queue_size=max_queue_size,
            max_export_batch_size=max_export_batch_size,
            schedule_delay_millis=schedule_delay_millis,
        )
        self.capacity: Final = max_queue_size
        """Spans the pipeline holds before the batch processor would drop one."""
        self._handed = 0
        self._lock = threading.Lock()
        self._after_shutdown: list[Callable[[], object]] = []

    def after_shutdown(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` once the exporter has shut down (e.g. to deliver the last budget alerts)."""
        self._after_shutdown.append(callback)

    @property
    def queued(self) -> int:
        """Spans handed over that the batch processor has not exported yet."""
        with self._lock:
            return self._handed - self._exporter.received

    @property
    def backlog(self) -> int:
        """Rows the exporter accepted but has not committed (0 for exporters that commit in ``export``)."""
        return self._backlog.uncommitted_rows if self._backlog is not None else 0

    def room(self, *, with_backlog: bool = True) -> int:
        """Free places: the capacity less the queue, and less the exporter's backlog unless told not to."""
        return self.capacity - self.queued - (self.backlog if with_backlog else 0)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self._batch.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        """Queue ``span`` for export; never raises. The receiver waits for room before handing spans over."""
        # The batch processor ignores unsampled spans; counting them would shrink the room for good.
        context = span.context
        if context is None or not context.trace_flags.sampled:
            return
        with self._lock:
            # The SDK queue never holds more than the spans counted here and not yet exported, so it
            # cannot overflow (and drop a span uncounted) while this count stays under the capacity.
            full = self._handed - self._exporter.received >= self.capacity
            if not full:
                self._handed += 1
        if full:
            log_once(
                _logger,
                "collector.pipeline_full",
                logging.WARNING,
                "the receiver's queue is full (%d spans): span dropped",
                self.capacity,
            )
            return
        self._batch.on_end(span)

    def shutdown(self) -> None:
        self._batch.shutdown()
        run_after_shutdown(self._after_shutdown)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._batch.force_flush(timeout_millis)


AdmissionPipeline = ReceiverPipeline | StoringPipeline
"""What the receiver admits requests against: a capacity, the room left, and where spans go."""


class _ReceiverEnricher:
    """The exporter's enricher, plus what the processor does for each billable call: budgets, metrics.

    The receiver enriches in the exporter, a batch at a time, instead of span by span in an
    ``LLMCostSpanProcessor``: that saves a copy of every LLM span, and the decisions are the same
    ones (one ``LLMCallEnricher``, spans in end order).
    """

    __slots__ = ("_budgets", "_calls", "_metrics")

    def __init__(
        self, calls: LLMCallEnricher, budgets: BudgetHook | None, metrics: CostMetrics | None
    ) -> None:
        self._calls = calls
        self._budgets = budgets
        self._metrics = metrics

    def enrich(self, spans: Sequence[ReadableSpan]) -> Sequence[Mapping[str, Any] | None]:
        extras = self._calls.enrich(spans)
        if self._budgets is None and self._metrics is None:
            return extras
        for span, extra in zip(spans, extras, strict=True):
            if extra is not None and extra.get(sc.LLM_COST_BILLABLE, True):
                self._billable_call(span, extra)
        return extras

    def _billable_call(self, span: ReadableSpan, extra: Mapping[str, Any]) -> None:
        attributes = span.attributes or {}
        if self._budgets is not None:
            try:
                context = span.context
                self._budgets.check_call(
                    {**attributes, **extra},
                    trace_id=context.trace_id if context is not None else None,
                    span_id=context.span_id if context is not None else None,
                    start_time_ns=span.start_time,
                )
            except Exception as exc:
                log_once(_logger, "collector.budgets", logging.ERROR, "per-call budget check failed: %r", exc)
        if self._metrics is not None:
            self._metrics.record(span, attributes, extra)  # never raises

    def hash_user_id(self, raw: str) -> str:
        return self._calls.hash_user_id(raw)


def build_processor(
    db_path: str | os.PathLike[str] | None = None,
    *,
    pricing: PriceBook | None = None,
    budgets: Sequence[Budget] = (),
) -> tuple[SpanProcessor, StoringPipeline]:
    """The receiver's pipeline: ``StoringPipeline(DuckDBSpanExporter(db))``, enriching as it stores.

    The same enrichment as in-process use (usage normalisation, pricing, the double-count guard,
    per-call and window budgets, cost metrics) and the same writer, applied by the exporter a batch
    at a time: each accepted request's spans are one batch (:mod:`otel_llm_cost.collector.storing`).
    Given to :class:`~otel_llm_cost.collector.receiver.OTLPReceiver` as both its processor and its
    pipeline, it lets the receiver decode spans straight into what storage reads
    (:mod:`otel_llm_cost.collector.received`).

    Args:
        db_path: The DuckDB file (default: ``OTEL_LLM_COST_DUCKDB_PATH``, else ``llm_costs.duckdb``).
        pricing: Price book (default: bundled prices plus ``OTEL_LLM_COST_PRICES``).
        budgets: Budgets to evaluate on received spans.

    Returns:
        The processor to give the receiver, and the pipeline (the same object; its ``pipeline``
        argument, for backpressure).

    Raises:
        StorageError: The DuckDB file cannot be opened for writing.
        ValueError: A budget is invalid.
    """
    path = db_path if db_path is not None else _config.DUCKDB_PATH.get()
    if pricing is None:
        from otel_llm_cost.pricing import PriceBook  # noqa: PLC0415 - loads the price data

        pricing = PriceBook.default()
    hook = budget_hook_for(budgets, None) if budgets else None
    enricher = _ReceiverEnricher(LLMCallEnricher(pricing=pricing), hook, cost_metrics(None, None))
    exporter = DuckDBSpanExporter(
        path, enricher=enricher, hold_idle_s=RECEIVER_HOLD_IDLE_S, hold_max_s=RECEIVER_HOLD_MAX_S
    )
    if hook is not None:
        exporter.add_commit_listener(hook.on_commit)
    pipeline = StoringPipeline(exporter, capacity=RECEIVER_MAX_QUEUE_SIZE)
    if hook is not None:
        pipeline.after_shutdown(hook.shutdown)
    return pipeline, pipeline
