"""ExportQueue: the span processor an exporter given to LLMCostSpanProcessor gets, sized for DuckDB.

The SDK's ``BatchSpanProcessor`` drops a span when its queue (2,048 by default) is full, with only a
WARNING and no count. Its export thread shares the GIL with the application's threads, so when
sixteen threads end LLM spans at once it gets too little time to keep up, and the queue overflows
although the disk is idle: 16 threads x 10,000 LLM spans stored 126,033 of 160,000, and one thread
streaming 1M spans lost 28-57% of them (``benchmarks/bench_pipeline.py`` at the commit before this
module). Here, a full queue first makes the ending thread wait, up to ``block_s``, for the export
thread to take a batch: that wait hands the GIL to the export thread, which is all it needs. Only
when the queue stays full that long (the exporter is stalled: a disk that does not answer) is a span
dropped; from then on spans are dropped without waiting until the queue has drained to half, so a
stalled disk never slows the application more than once. Every drop is counted
(:attr:`ExportQueue.dropped_spans`, :attr:`ExportQueue.dropped_calls`), logged at ERROR at most once
per ``_DROP_LOG_INTERVAL_S``, and reported to the exporter when it has ``record_dropped`` (the DuckDB
exporter keeps the count beside its file, where ``otel-llm-cost status`` reads it).

Memory is bounded by ``max_queue_size`` spans (plus at most one per application thread racing past
the check). Batches are large (8,192) because DuckDB pays ~3-4 ms per statement.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
import weakref
from typing import Final

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter

from otel_llm_cost._logging import log_once
from otel_llm_cost._worker import step_while_alive
from otel_llm_cost.conventions import names as sc
from otel_llm_cost.enrich.span_copy import span_attributes

__all__ = ["ExportQueue"]

_logger = logging.getLogger("otel_llm_cost.enrich.export_queue")

MAX_QUEUE_SIZE: Final = 32_768
"""Spans waiting at most (~2-3 KB each: ~80 MiB at worst); four batches."""
MAX_BATCH_SIZE: Final = 8_192
SCHEDULE_DELAY_S: Final = 1.0
"""A partial batch waits at most this long."""
BLOCK_S: Final = 5.0
"""How long an ending span waits for room in a full queue before it is dropped."""
_DROP_LOG_INTERVAL_S: Final = 60.0


class ExportQueue(SpanProcessor):
    """Feeds ``exporter`` from a bounded queue on one worker thread; a drop is counted and logged.

    Args:
        exporter: Receives the batches (on the worker thread; ``export`` should not raise).
        max_queue_size: Spans waiting at most.
        max_batch_size: Spans per ``export`` call at most.
        schedule_delay_s: How long a partial batch waits for more spans.
        block_s: How long an ending span waits for room when the queue is full (0: drop at once).

    Raises:
        ValueError: A size is not positive, ``max_batch_size > max_queue_size``, a negative delay.
    """

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        max_queue_size: int = MAX_QUEUE_SIZE,
        max_batch_size: int = MAX_BATCH_SIZE,
        schedule_delay_s: float = SCHEDULE_DELAY_S,
        block_s: float = BLOCK_S,
    ) -> None:
        if max_queue_size <= 0 or max_batch_size <= 0 or max_batch_size > max_queue_size:
            raise ValueError("need 0 < max_batch_size <= max_queue_size")
        if not schedule_delay_s > 0 or not block_s >= 0:
            raise ValueError("schedule_delay_s must be > 0 and block_s >= 0")
        self.span_exporter = exporter
        self.max_queue_size = max_queue_size
        self.max_batch_size = max_batch_size
        self._delay_s = schedule_delay_s
        self._block_s = block_s
        self.dropped_spans = 0
        """Spans dropped because the queue stayed full (since construction)."""
        self.dropped_calls = 0
        """Of those, LLM calls (spans carrying ``llm.cost.status``)."""
        self._reported = (0, 0)
        self._last_drop_log = -_DROP_LOG_INTERVAL_S
        self._init_worker()
        ref = weakref.WeakMethod(self._init_worker)
        os.register_at_fork(after_in_child=lambda: (method := ref()) is not None and method())

    def _init_worker(self) -> None:
        # Also after fork in the child: the parent's queue and thread stay the parent's.
        self._queue: collections.deque[ReadableSpan] = collections.deque()
        self._cond = threading.Condition()  # room in the queue, flush requests
        self._wake = threading.Event()
        self._flushes: list[threading.Event] = []
        self._overflowing = False
        self._shutdown = False
        self._worker = threading.Thread(
            target=_work, args=(weakref.ref(self),), name="otel-llm-cost-export-queue", daemon=True
        )
        self._worker.start()

    @property
    def queued_spans(self) -> int:
        """Spans waiting for the worker now."""
        return len(self._queue)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing to do when a span starts."""

    def on_end(self, span: ReadableSpan) -> None:
        """Queue ``span`` (sampled spans only); wait for room when full, else count a drop. Never raises."""
        context = span.context
        if self._shutdown or context is None or not context.trace_flags.sampled:
            return
        queue = self._queue
        if len(queue) >= self.max_queue_size and not self._wait_for_room():
            self._dropped(span)
            return
        queue.append(span)
        if len(queue) >= self.max_batch_size and not self._wake.is_set():
            self._wake.set()

    def _wait_for_room(self) -> bool:
        if self._overflowing or self._block_s <= 0:
            return False
        deadline = time.monotonic() + self._block_s
        with self._cond:
            self._wake.set()
            while len(self._queue) >= self.max_queue_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._shutdown:
                    self._overflowing = True
                    return False
                self._cond.wait(remaining)
        return True

    def _dropped(self, span: ReadableSpan) -> None:
        try:
            self.dropped_spans += 1
            if sc.LLM_COST_STATUS in span_attributes(span):
                self.dropped_calls += 1
            now = time.monotonic()
            if now - self._last_drop_log >= _DROP_LOG_INTERVAL_S:
                self._last_drop_log = now
                self._log_drops()
        except Exception as exc:
            log_once(_logger, "export_queue.drop", logging.ERROR, "counting a dropped span failed: %r", exc)

    def _log_drops(self) -> None:
        calls, spans = self.dropped_calls, self.dropped_spans
        _logger.error(
            "the export queue for %r stayed full for %.1f s: %d LLM calls (%d spans) dropped so far; "
            "the exporter is not keeping up (a stalled disk?)",
            self.span_exporter,
            self._block_s,
            calls,
            spans,
        )

    def _record_drops(self) -> None:
        """Hand new drops to the exporter (on the worker: it may write a file); never raises."""
        calls, spans = self.dropped_calls, self.dropped_spans
        if (calls, spans) == self._reported:
            return
        record = getattr(self.span_exporter, "record_dropped", None)
        new_calls, new_spans = calls - self._reported[0], spans - self._reported[1]
        self._reported = (calls, spans)
        if record is None:
            return
        try:
            record(new_calls, new_spans)
        except Exception as exc:
            log_once(_logger, "export_queue.record", logging.ERROR, "recording dropped spans failed: %r", exc)

    # -- the worker thread ---------------------------------------------------------------------------

    def _step(self) -> bool:
        """Export what is due; False once shut down and drained."""
        timed_out = not self._wake.wait(self._delay_s)
        self._wake.clear()
        with self._cond:
            flushes, self._flushes = self._flushes, []
            shutdown = self._shutdown
        everything = timed_out or bool(flushes) or shutdown
        queue = self._queue
        while len(queue) >= self.max_batch_size or (everything and queue):
            batch = [queue.popleft() for _ in range(min(len(queue), self.max_batch_size))]
            with self._cond:
                if self._overflowing and len(queue) <= self.max_queue_size // 2:
                    self._overflowing = False
                self._cond.notify_all()
            self._export(batch)
        self._record_drops()
        for done in flushes:
            done.set()
        return not shutdown

    def _export(self, batch: list[ReadableSpan]) -> None:
        try:
            self.span_exporter.export(batch)
        except Exception as exc:
            log_once(
                _logger,
                "export_queue.export",
                logging.ERROR,
                "exporter %r raised: %r",
                self.span_exporter,
                exc,
            )

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export every span queued so far; False when that takes longer than ``timeout_millis``."""
        if self._shutdown:
            return True
        done = threading.Event()
        with self._cond:
            self._flushes.append(done)
        self._wake.set()
        return done.wait(timeout_millis / 1000)

    def shutdown(self) -> None:
        """Export what is queued, then shut the exporter down (a second call is a no-op)."""
        with self._cond:
            if self._shutdown:
                return
            self._shutdown = True
            self._cond.notify_all()
        self._wake.set()
        self._worker.join()
        self._record_drops()
        try:
            self.span_exporter.shutdown()
        except Exception as exc:
            log_once(_logger, "export_queue.shutdown", logging.ERROR, "exporter shutdown raised: %r", exc)

    def __repr__(self) -> str:
        return f"ExportQueue({self.span_exporter!r})"


def _work(ref: weakref.ReferenceType[ExportQueue]) -> None:
    step_while_alive(
        ref,
        ExportQueue._step,
        logger=_logger,
        log_key="export_queue.worker",
        what="export queue worker",
        pause_s=0.1,
    )
