"""The receiver's own pipeline: a batching stage that knows how many spans it holds.

The receiver must answer 503 before anything between it and the database can drop a span. The SDK's
``BatchSpanProcessor`` drops spans silently when its queue is full and has no public accessor for its
depth, so the receiver does not ask it: :class:`ReceiverPipeline` counts the spans it hands to its
batch processor and the spans that processor hands to the exporter; the difference is what waits in
the queue. A :class:`~otel_llm_cost.storage.exporter.DuckDBSpanExporter` behind it accepts batches at
once and commits them on its writer thread, so its public ``uncommitted_rows`` backlog counts against
the same capacity: a slow or locked database answers 503 too instead of growing the exporter's journal
without bound.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from otel_llm_cost import _config
from otel_llm_cost._logging import log_once
from otel_llm_cost.enrich.processor import LLMCostSpanProcessor
from otel_llm_cost.storage.exporter import DuckDBSpanExporter

if TYPE_CHECKING:
    from otel_llm_cost.budgets import Budget
    from otel_llm_cost.pricing import PriceBook

__all__ = [
    "RECEIVER_MAX_EXPORT_BATCH_SIZE",
    "RECEIVER_MAX_QUEUE_SIZE",
    "RECEIVER_SCHEDULE_DELAY_MILLIS",
    "ReceiverPipeline",
    "build_processor",
]

_logger = logging.getLogger("otel_llm_cost.collector")

# Large export batches because DuckDB inserts Arrow batches of thousands of rows several times faster
# than batches of hundreds (measured on 2 cores: ~32k rows/s at 512 rows per batch, ~50k at 10,000);
# a deep queue absorbs bursts from many senders, with backpressure before it could overflow.
RECEIVER_MAX_QUEUE_SIZE: Final = 131_072
RECEIVER_MAX_EXPORT_BATCH_SIZE: Final = 8_192
RECEIVER_SCHEDULE_DELAY_MILLIS: Final = 1_000


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

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._batch.force_flush(timeout_millis)


def build_processor(
    db_path: str | os.PathLike[str] | None = None,
    *,
    pricing: PriceBook | None = None,
    budgets: Sequence[Budget] = (),
) -> tuple[SpanProcessor, ReceiverPipeline]:
    """The receiver's pipeline: ``LLMCostSpanProcessor(ReceiverPipeline(DuckDBSpanExporter(db)))``.

    The same enrichment (usage normalisation, pricing, double-count guard, budgets) and the same
    writer as in-process use, with a batching stage sized for a receiver (large export batches, a
    deep queue).

    Args:
        db_path: The DuckDB file (default: ``OTEL_LLM_COST_DUCKDB_PATH``, else ``llm_costs.duckdb``).
        pricing: Price book (default: bundled prices plus ``OTEL_LLM_COST_PRICES``).
        budgets: Budgets to evaluate on received spans.

    Returns:
        The processor to give :class:`~otel_llm_cost.collector.receiver.OTLPReceiver`, and the
        pipeline inside it (its ``pipeline`` argument, for backpressure).

    Raises:
        StorageError: The DuckDB file cannot be opened for writing.
    """
    path = db_path if db_path is not None else _config.DUCKDB_PATH.get()
    pipeline = ReceiverPipeline(DuckDBSpanExporter(path))
    return LLMCostSpanProcessor(pipeline, pricing=pricing, budgets=budgets), pipeline
