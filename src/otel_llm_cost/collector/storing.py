"""The receiver's storing stage: each accepted request's spans go to the DuckDB exporter as one batch.

In-process, the SDK's ``BatchSpanProcessor`` sits between the application's threads and the exporter
because ``on_end`` runs on those threads. A receiver has no such thread to spare: the spans of a request
arrive together, already batched by the sender, so :class:`StoringPipeline` hands them to
``DuckDBSpanExporter.export`` in one call (a request of more than :data:`STORE_BATCH_SPANS` spans in
several, in end order) from the request's own worker thread. That export enriches
the batch (in end order), builds its Arrow rows and journals them (crash-safe) before the 200 answer,
and the exporter's writer thread commits the journal, several batches per transaction. Compared with
queueing every span for a batch thread, it saves the per-span hand-over, keeps decoded spans alive for
one request instead of up to a second, and leaves one thread competing with the event loop for the
GIL instead of two (measured with ``benchmarks/bench_collector.py``).

The backpressure is the same: the capacity counts the spans being stored and the rows the exporter
has accepted but not committed (``uncommitted_rows``); the receiver answers 503 before that would
exceed the capacity, so a slow or locked database is felt by the senders, never as a dropped span.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Final

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_llm_cost._logging import log_once
from otel_llm_cost.storage.exporter import DuckDBSpanExporter

__all__ = ["STORE_BATCH_SPANS", "StoringPipeline", "run_after_shutdown"]

_logger = logging.getLogger("otel_llm_cost.collector")

STORE_BATCH_SPANS: Final = 8_192
"""Largest export batch a request is stored in: a larger request (up to the body limit, 100,000 spans
and more) is stored in parts, in end order, so that one part's enrichment and rows are alive at a
time (a 39 MB request of 100,000 LLM spans took the receiver's peak memory up by 1.1 GB as one batch,
by 0.4 GB in parts). The writer thread still commits up to 16,384 rows per transaction."""


class StoringPipeline(SpanProcessor):
    """Stores each handed-over batch with ``exporter`` at once; tells the receiver how much room is left.

    Args:
        exporter: Enriches, converts and journals each batch; its uncommitted rows count against
            the room.
        capacity: Spans being stored plus rows not yet committed, beyond which the receiver answers
            503 (the receiver waits for room before handing a request over).

    Raises:
        ValueError: ``capacity`` is not positive.
    """

    def __init__(self, exporter: DuckDBSpanExporter, *, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.span_exporter: Final = exporter
        """The exporter, under the attribute name the SDK's processors use (budgets find it there)."""
        self.capacity: Final = capacity
        """Spans being stored plus rows accepted and not committed, beyond which the receiver waits."""
        self._storing = 0
        self._count_lock = threading.Lock()
        # One batch at a time: the double-count guard decides over batches in the order they arrive.
        self._lock = threading.Lock()
        self._shut_down = False
        self._after_shutdown: list[Callable[[], object]] = []

    def after_shutdown(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` once the exporter has shut down (e.g. to deliver the last budget alerts)."""
        self._after_shutdown.append(callback)

    @property
    def queued(self) -> int:
        """Spans handed over whose batch is still being enriched and journaled."""
        return self._storing

    @property
    def backlog(self) -> int:
        """Rows the exporter accepted but has not committed."""
        return self.span_exporter.uncommitted_rows

    def room(self, *, with_backlog: bool = True) -> int:
        """Free places: the capacity less the spans being stored, and less the exporter's backlog."""
        return self.capacity - self.queued - (self.backlog if with_backlog else 0)

    def store(self, spans: Sequence[ReadableSpan]) -> bool:
        """Enrich, convert and journal ``spans`` as one batch (or several of STORE_BATCH_SPANS); never raises.

        Returns:
            True when the exporter took the batch (journaled, so it survives a crash); False when it
            did not (after :meth:`shutdown`, or when the batch could be neither journaled nor
            written): the receiver then answers 503 and the sender sends the spans again, which
            stores each span once even where part of the batch was stored.
        """
        if not spans:
            return True
        with self._count_lock:
            self._storing += len(spans)
        left = len(spans)
        try:
            with self._lock:
                if self._shut_down:
                    log_once(
                        _logger,
                        "collector.store_after_shutdown",
                        logging.WARNING,
                        "spans handed over after the receiver's pipeline shut down were not stored",
                    )
                    return False
                if len(spans) > STORE_BATCH_SPANS:
                    # The whole request in end order, then in parts: the enricher decides over the
                    # parts, one after the other, as it would over the request in one batch.
                    spans = sorted(spans, key=_end_time)
                for start in range(0, len(spans), STORE_BATCH_SPANS):
                    part = spans[start : start + STORE_BATCH_SPANS]
                    stored = self.span_exporter.export(part) is SpanExportResult.SUCCESS
                    with self._count_lock:  # journaled: counted in the exporter's backlog from now on
                        self._storing -= len(part)
                        left -= len(part)
                    if not stored:
                        return False
                return True
        except Exception as exc:  # export promises not to raise; log it if it does
            log_once(_logger, "collector.store", logging.ERROR, "storing received spans failed: %r", exc)
            return False
        finally:
            with self._count_lock:
                self._storing -= left

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing to do when a span starts: received spans have ended."""

    def on_end(self, span: ReadableSpan) -> None:
        """Store ``span`` as a batch of one; never raises (the receiver hands requests to :meth:`store`)."""
        context = span.context
        if context is not None and context.trace_flags.sampled:  # as a batch processor, ignore the rest
            self.store((span,))

    def shutdown(self) -> None:
        with self._lock:
            if self._shut_down:
                return
            self._shut_down = True
        try:
            self.span_exporter.shutdown()
        except Exception as exc:
            log_once(_logger, "collector.shutdown", logging.ERROR, "flushing the exporter failed: %r", exc)
        run_after_shutdown(self._after_shutdown)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.span_exporter.force_flush(timeout_millis)


def run_after_shutdown(callbacks: Sequence[Callable[[], object]]) -> None:
    """Call each of a pipeline's ``after_shutdown`` callbacks; a failing one is logged, the rest run."""
    for callback in callbacks:
        try:
            callback()
        except Exception as exc:
            log_once(_logger, "collector.shutdown_hook", logging.ERROR, "shutting down failed: %r", exc)


def _end_time(span: ReadableSpan) -> int:
    return span.end_time or 0
