"""DuckDBSpanExporter: every LLM call as a typed row in a DuckDB file, fast, idempotent, nothing lost.

How a batch travels (path mode): ``export`` converts the spans to Arrow rows, appends them to a journal
(one file per batch in the spool directory, written aside and renamed: it survives kill -9) and
returns; a writer thread commits the journaled batches to DuckDB in order and deletes their files.
Under load the writer takes several batches per transaction: besides ~6-7 µs per row, DuckDB pays
~3-4 ms per statement and commit whatever the size (DESIGN.md fact 5; measured with
benchmarks/bench_exporter.py: a raw insert of 512-row batches runs at 13-15 µs per row, of 8192-row
batches at 6-7 µs), so coalescing is what lets 512-span batches from a BatchSpanProcessor reach the
throughput of large ones. Row building (Python, the export thread) and the insert (DuckDB, GIL
released, the writer thread) also run on two cores at once. A journal the writer could not commit yet
is the spool: replayed in order, at start-up too.

How the file is shared with readers (DESIGN.md fact 5: one process holds a DuckDB file, and nobody
else can open it, not even read-only): the writer opens the file when a batch arrives, keeps it while
batches keep coming (reopening costs ~15 ms and closing checkpoints, ~20 ms), and closes it after
``hold_idle_s`` without a batch, after ``hold_max_s`` of continuous holding, or, after committing what
was accepted so far (for up to a second), as soon as a reader asks for it
(``_storage.connect(read_only=True)`` drops a ``<db>.read-request`` file while it waits; a reader in
this process first waits for this process's exporters to commit). A writer that finds the file held
retries with backoff for ``lock_timeout_s``, then keeps the batches journaled and retries with growing
pauses (up to a second) until the file is free again.

With a ``connection`` the caller owns, batches are committed synchronously by ``export`` itself.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import duckdb
import pyarrow as pa
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_llm_cost import _config
from otel_llm_cost._logging import log_once
from otel_llm_cost.conventions import names as sc
from otel_llm_cost.exceptions import StorageError, StorageLockedError
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage import schema as _schema
from otel_llm_cost.storage.enricher import SpanEnricher, default_enricher
from otel_llm_cost.storage.journal import Spool, SpoolCorruptError
from otel_llm_cost.storage.rows import Enricher, RowBatch, build_rows

__all__ = ["CHECKPOINT_THRESHOLD", "CommitInfo", "CommitListener", "DuckDBSpanExporter"]

_logger = logging.getLogger("otel_llm_cost.exporter")

# How often the writer thread checks idle time and read requests while the file is held.
_POLL_S = 0.02
# The writer commits up to this many rows of consecutive journaled batches in one transaction: large
# enough to amortise DuckDB's per-statement cost, small enough that a waiting reader is let in quickly
# (~70 ms of inserting).
_GROUP_ROWS = 16_384
# A journaled batch not kept in memory counts as this many rows when grouping.
_ROWS_OF_UNREAD_BATCH = 512
# Journaled batches kept in memory for the writer; beyond this they are read back from their files
# (the database is locked or slower than the application for a long time: disk holds the backlog).
_MEMORY_BYTES = 64 * 2**20
# Pauses between attempts while the file cannot be written (locked by a reader, read-only, full...).
_RETRY_FIRST_S = 0.05
_RETRY_MAX_S = 1.0
# How long the writer keeps committing its backlog for a reader that asked for the file.
_READER_BACKLOG_S = 1.0
# Building rows for a large batch takes a while on a loaded machine; the file is not idle meanwhile.
_BUILD_GRACE_S = 1.0
# DuckDB's default (16 MB of WAL) checkpoints every ~30k of our rows, recompressing the same partial
# row group again and again (DESIGN.md fact 5: 1GB doubled throughput). The file is released, and so
# checkpointed, at least every ``hold_max_s`` anyway, so the WAL stays small: a reader or a restart
# after kill -9 replays at most that much. Applied to files the exporter opens, never to a caller's
# connection.
CHECKPOINT_THRESHOLD = "1GB"
# The exporter's own connection (never a caller's: `threads` is a database-wide setting). One thread:
# a 512-row insert runs ~30% faster than on two (less coordination), and the export thread, building
# the next rows meanwhile, keeps the other core (measured with benchmarks/bench_exporter.py).
_WRITER_SETTINGS: Final = (
    f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'",
    "SET threads = 1",
    _storage.REPLACEMENT_SCANS,
)


@dataclass(frozen=True, slots=True)
class CommitInfo:
    """What a commit listener receives after each committed batch.

    Attributes:
        connection: A read-write cursor on the database, valid until the listener returns (budgets
            query the stored rows and record alerts through it).
        rows: The ``llm_calls`` rows this commit inserted (``pyarrow.Table``, possibly empty;
            re-exported spans that were already stored are not included).
    """

    connection: duckdb.DuckDBPyConnection
    rows: pa.Table


CommitListener = Callable[[CommitInfo], None]


class DuckDBSpanExporter(SpanExporter):
    """A SpanExporter that stores LLM spans (and optionally every span) in a DuckDB file.

    Spans enriched by :class:`~otel_llm_cost.LLMCostSpanProcessor` are stored as they are; LLM spans
    nothing enriched (for example under ``OTEL_TRACES_EXPORTER=duckdb opentelemetry-instrument``) are
    normalised and priced here, and the second record of one call (the Anthropic SDK's span next to
    an instrumentation's) or a span wrapping calls is stored with ``billable = false``, by the same
    double-count guard and rules the processor applies. Each batch is one Arrow bulk insert; a span
    already stored (same trace and span id) is never stored twice. ``export`` never raises: when the
    file cannot be written the batch goes to a crash-safe spool next to it and is replayed later.

    Example::

        provider.add_span_processor(LLMCostSpanProcessor(BatchSpanProcessor(DuckDBSpanExporter("costs.duckdb"))))

    Args:
        path: The DuckDB file (default ``OTEL_LLM_COST_DUCKDB_PATH``, else ``llm_costs.duckdb``).
        connection: A connection the caller owns instead of a path (used through a cursor per batch,
            never closed here). Exclusive with ``path``.
        store_all_spans: Also store every span in the ``spans`` table (default
            ``OTEL_LLM_COST_STORE_ALL_SPANS``, else False).
        capture_content: Keep prompt/completion text attributes (default
            ``OTEL_LLM_COST_CAPTURE_CONTENT``, else False: they are dropped before storage).
        lock_timeout_s: How long a batch waits for a file another process holds before it is spooled
            (default ``OTEL_LLM_COST_LOCK_TIMEOUT_SECONDS``, else 5).
        spool_dir: Where unwritable batches wait (default ``OTEL_LLM_COST_SPOOL_DIR``, else
            ``<path>.spool``; with ``connection``, next to the connection's file, none in memory).
        pricing: Prices spans nothing enriched (default: ``PriceBook.default()``, loaded on first need);
            passed to the default enricher.
        user_id_hasher: Hashes user ids found on spans nothing enriched, and raw ids set directly on
            any span (``cost.user_id``) stored in the ``spans`` table (default: the process hasher);
            passed to the default enricher.
        hold_idle_s: Release the file after this long without a batch.
        hold_max_s: Release the file after holding it this long, even while batches keep coming.
        dedup_capacity: How many recent calls the double-count guard for spans nothing enriched
            remembers (default ``OTEL_LLM_COST_DEDUP_CAPACITY``, else 10,000); passed to the default
            enricher.
        enricher: Normalises, prices and deduplicates spans nothing enriched and hashes user ids
            (default: the enricher ``otel_llm_cost.exporter`` registers, built from ``pricing``,
            ``user_id_hasher`` and ``dedup_capacity``; see :mod:`otel_llm_cost.storage.enricher`).

    Raises:
        ValueError: Both ``path`` and ``connection`` given, ``enricher`` with any of ``pricing``,
            ``user_id_hasher``, ``dedup_capacity``, a negative duration, or a ``dedup_capacity`` that
            is not positive.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        connection: duckdb.DuckDBPyConnection | None = None,
        store_all_spans: bool | None = None,
        capture_content: bool | None = None,
        lock_timeout_s: float | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        pricing: Any = None,
        user_id_hasher: Any = None,
        hold_idle_s: float = 0.2,
        hold_max_s: float = 2.0,
        dedup_capacity: int | None = None,
        enricher: SpanEnricher | None = None,
    ) -> None:
        if path is not None and connection is not None:
            raise ValueError("pass either a path or a connection, not both")
        for name, value in (
            ("lock_timeout_s", lock_timeout_s),
            ("hold_idle_s", hold_idle_s),
            ("hold_max_s", hold_max_s),
        ):
            if value is not None and not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        self._user_connection = connection
        self.path: Path | None
        if connection is None:
            self.path = Path(os.fspath(path) if path is not None else _config.DUCKDB_PATH.get()).absolute()
        else:
            self.path = _connection_file(connection)
        self.store_all_spans = _config.STORE_ALL_SPANS.get() if store_all_spans is None else store_all_spans
        self.capture_content = _config.CAPTURE_CONTENT.get() if capture_content is None else capture_content
        self.lock_timeout_s = _config.LOCK_TIMEOUT_SECONDS.get() if lock_timeout_s is None else lock_timeout_s
        self._hold_idle_s = hold_idle_s
        self._hold_max_s = hold_max_s
        spool_path = spool_dir if spool_dir is not None else _config.SPOOL_DIR.get()
        if spool_path is None and self.path is not None:
            spool_path = f"{self.path}.spool"
        self.spool = Spool(spool_path) if spool_path is not None else None
        if enricher is None:
            enricher = default_enricher(
                pricing=pricing, user_id_hasher=user_id_hasher, dedup_capacity=dedup_capacity
            )
        elif pricing is not None or user_id_hasher is not None or dedup_capacity is not None:
            raise ValueError("pass either an enricher or pricing/user_id_hasher/dedup_capacity, not both")
        self._enricher = enricher
        self._listeners: list[CommitListener] = []
        self._shutdown = False
        self._fork_locked = False
        # The journal: every accepted batch, until the writer committed it (path mode only; a caller's
        # connection is written synchronously).
        self._journal = self.spool if connection is None else None
        self._init_process_state()
        _register_fork_hooks(self)
        if self._journal is not None:
            _LIVE.add(self)
            if self._adopt_spool_files():
                # Start-up replay of batches a previous run could not write: by the writer thread, so a
                # busy file never delays the application's start.
                with self._queue:
                    self._ensure_writer()
        elif self.spool is not None and self.spool.pending():
            threading.Thread(
                target=self._replay_in_background, name="otel-llm-cost-replay", daemon=True
            ).start()

    def _init_process_state(self) -> None:
        # _cond guards DuckDB use (the held connection); _queue guards the accepted batches and the
        # writer's schedule. Lock order: _cond, then _queue; never the other way round.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queue = threading.Condition()
        # Journal file -> (its rows in memory or None when only on disk, bytes counted in memory).
        self._pending: dict[Path, tuple[RowBatch | None, int]] = {}
        self._pending_bytes = 0
        self._writer: threading.Thread | None = None
        self._stopping = False
        # Deadlines of the flushes waiting now: until the last, the writer waits for a busy file.
        self._flushes: list[float] = []
        self._retry_at = 0.0
        self._retry_delay = _RETRY_FIRST_S
        self._held: duckdb.DuckDBPyConnection | None = None
        self._held_since = 0.0
        self._last_use = 0.0
        self._degraded = False
        self._schema_checked = False
        self._pid = os.getpid()
        self._fork_unsafe = False
        self._commit_lock = _commit_lock_for(self.path if self._user_connection is None else None)

    # -- public API ------------------------------------------------------------------------------

    @property
    def uncommitted_rows(self) -> int:
        """LLM-call rows ``export`` accepted that the writer thread has not committed yet (its backlog).

        Exact for batches kept in memory; a batch only in its journal file counts as 512.
        """
        with self._queue:
            return sum(
                batch.calls.num_rows if batch is not None else _ROWS_OF_UNREAD_BATCH
                for batch, _ in self._pending.values()
            )

    def add_commit_listener(self, listener: CommitListener) -> None:
        """Call ``listener(CommitInfo)`` after each committed batch (budgets use this).

        The listener runs while the file is held, on the exporter's writer thread (on the exporting
        thread with a ``connection``): keep it short. Its exceptions are logged once and counted,
        never raised. One commit may hold several exported batches.
        """
        self._listeners.append(listener)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Store one batch. Never raises.

        When a span cannot be converted to a row (a hand-built ReadableSpan breaking what the SDK's
        spans guarantee, or a bug here), the batch is converted again in halves down to the spans at
        fault: only those are dropped, each counted in ``ERROR_COUNTS["exporter.span_dropped"]``
        (the first failure is logged, as ``exporter.build_rows``), and the rest is stored. Such a
        batch is not spooled: converting it again later would fail the same way.

        Returns:
            SUCCESS when the batch is journaled (path mode: the writer thread commits it moments later,
            or when the file is writable again; it survives the process being killed) or committed
            (with a ``connection``); FAILURE when it could be neither journaled nor committed (with a
            ``connection``: when it was spooled to be stored later), when a span of it had to be
            dropped, or after shutdown.
        """
        if self._shutdown:
            return SpanExportResult.FAILURE
        if os.getpid() != self._pid and self._journal is not None:
            self._forked_without_hook()
        # Batches keep coming: keep the file while this one's rows are built (not counted as idle).
        self._last_use = time.monotonic() + _BUILD_GRACE_S
        enrich = _Memo(self._enricher.enrich)  # a second conversion must not ask the dedup guard twice
        dropped = 0
        try:
            batch = self._build_rows(spans, enrich)
        except Exception as exc:
            log_once(
                _logger,
                "exporter.build_rows",
                logging.ERROR,
                "could not convert a batch of %d spans to rows (%r); storing all but the spans at fault",
                len(spans),
                exc,
            )
            batch, dropped = self._build_rows_around_failures(spans, enrich)
        if self._journal is not None:
            result = self._accept(batch, self._journal)
        else:
            with self._cond:
                if self._shutdown:
                    return SpanExportResult.FAILURE
                result = self._write(batch, quick=self._degraded)
        return SpanExportResult.FAILURE if dropped else result

    def _accept(self, batch: RowBatch, journal: Spool) -> SpanExportResult:
        """Journal ``batch`` for the writer thread; commit it here if it cannot be journaled."""
        if batch.empty:
            return SpanExportResult.SUCCESS
        try:
            path = journal.write(batch, durable=False)
        except OSError as exc:
            log_once(
                _logger,
                "exporter.journal",
                logging.WARNING,
                "could not journal a batch in %s (%r); writing it to DuckDB directly",
                journal.directory,
                exc,
            )
            with self._cond:
                return self._write(batch, quick=self._degraded)
        size = batch.calls.nbytes + (batch.spans.nbytes if batch.spans is not None else 0)
        with self._queue:
            if self._stopping:  # shut down meanwhile: the journal file waits for the next exporter
                return SpanExportResult.FAILURE
            if self._pending_bytes + size > _MEMORY_BYTES:
                self._pending[path] = (None, 0)  # read back from its file when the writer gets to it
            else:
                self._pending[path] = (batch, size)
                self._pending_bytes += size
            self._last_use = time.monotonic()
            self._ensure_writer()
            self._queue.notify_all()
        return SpanExportResult.SUCCESS

    def _build_rows(self, spans: Sequence[ReadableSpan], enrich: Enricher) -> RowBatch:
        return build_rows(
            spans,
            enrich=enrich,
            capture_content=self.capture_content,
            store_all_spans=self.store_all_spans,
            hash_user_id=self._enricher.hash_user_id,
        )

    def _build_rows_around_failures(
        self, spans: Sequence[ReadableSpan], enrich: _Memo
    ) -> tuple[RowBatch, int]:
        """Rows of every span that converts, by halving the batch down to the ones that do not."""
        unique: dict[tuple[int, int], ReadableSpan] = {}
        for span in spans:
            context = span.context
            if context is not None:
                unique.setdefault((context.trace_id, context.span_id), span)
        spans = list(unique.values())  # one span in two halves would be stored twice
        with contextlib.suppress(Exception):
            # The whole batch once, in end order, before the halves: dedup verdicts stay batch-wide.
            enrich([span for span in spans if sc.LLM_COST_STATUS not in (span.attributes or {})])
        parts: list[RowBatch] = []
        dropped = 0
        pending = [spans]
        while pending:
            part = pending.pop()
            try:
                parts.append(self._build_rows(part, enrich))
            except Exception as exc:
                if len(part) > 1:
                    middle = len(part) // 2
                    pending += (part[middle:], part[:middle])  # popped first half first: span order
                    continue
                dropped += 1
                log_once(
                    _logger,
                    "exporter.span_dropped",
                    logging.ERROR,
                    "dropped span %r: it cannot be stored (%r)",
                    getattr(part[0], "name", None),
                    exc,
                )
        if not parts:
            return self._build_rows([], enrich), dropped
        calls = pa.concat_tables([part.calls for part in parts])
        all_spans = [part.spans for part in parts if part.spans is not None]
        return RowBatch(calls, pa.concat_tables(all_spans) if all_spans else None), dropped

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Commit every batch accepted so far, and any left in the spool, waiting up to ``timeout_millis``.

        Returns:
            True when nothing accepted is left uncommitted.
        """
        if self._journal is not None:
            return self._drain(timeout_millis / 1000)
        with self._cond:
            if self._shutdown:
                return True
            return self._flush(timeout_millis / 1000)

    def shutdown(self) -> None:
        """Commit what was accepted (waiting up to ``lock_timeout_s`` for the file), release the file.

        Batches that still cannot be written stay in the spool, where the next exporter on this file
        stores them (logged). A second call is a no-op.
        """
        if self._journal is None:
            with self._cond:
                if self._shutdown:
                    return
                self._shutdown = True
                self._flush(self.lock_timeout_s)
            return
        with self._queue:
            if self._shutdown:
                return
            self._shutdown = True
        drained = self._drain(self.lock_timeout_s)
        with self._queue:
            self._stopping = True
            self._queue.notify_all()
            writer, left = self._writer, len(self._pending)
        _storage.join_release_thread(writer)
        with self._cond:
            self._release()
        _LIVE.discard(self)
        if not drained:
            log_once(
                _logger,
                "exporter.shutdown_pending",
                logging.WARNING,
                "%d batches could not be written to %s before shutdown; they stay in %s and the next "
                "exporter on that file stores them",
                left,
                self.path,
                self._journal.directory,
            )

    # -- the writer thread (path mode) ------------------------------------------------------------

    def _ensure_writer(self) -> None:
        """Start the writer thread if it is not running (the caller holds ``_queue``)."""
        if self._writer is None or not self._writer.is_alive():
            self._writer = threading.Thread(
                target=_writer_loop,
                args=(weakref.ref(self),),
                name="otel-llm-cost-duckdb-writer",
                daemon=True,
            )
            self._writer.start()

    def _forked_without_hook(self) -> None:
        # os.fork from a C extension skips the at-fork hooks: the child inherited the parent's
        # accepted batches (the parent commits them) and maybe its open connection (never touched).
        held = self._held
        if held is not None:
            _ABANDONED_AFTER_FORK.append(held)
        self._init_process_state()
        self._fork_unsafe = held is not None
        if self._journal is not None:
            self._journal.renew_token()  # the parent adopts what this child leaves

    def _adopt_spool_files(self) -> bool:
        """Add batches on disk the writer does not know (left by an earlier run) to the queue, in order.

        Returns:
            True when anything is waiting.
        """
        assert self._journal is not None  # noqa: S101 - path mode only
        on_disk = self._journal.pending()
        # Files of this process's exporters (this one's included) are their writers' to commit.
        live = {exporter._journal.token for exporter in list(_LIVE) if exporter._journal is not None}
        with self._queue:
            unknown = [
                path for path in on_disk if path not in self._pending and Spool.owner(path) not in live
            ]
            if unknown:
                merged = {**self._pending, **dict.fromkeys(unknown, (None, 0))}
                self._pending = dict(sorted(merged.items(), key=lambda item: item[0].name))
            return bool(self._pending)

    def _drain(self, timeout_s: float) -> bool:
        """Wait until every batch accepted so far is committed (or set aside); False on timeout."""
        deadline = time.monotonic() + timeout_s
        self._adopt_spool_files()
        with self._queue:
            if not self._pending:
                return True
            if self._stopping:
                return False  # shut down: what is left waits for the next exporter on the file
            last = next(reversed(self._pending))
            self._retry_at = 0.0  # one attempt now, whatever the back-off
            self._flushes.append(deadline)
            try:
                self._ensure_writer()
                self._queue.notify_all()
                while last in self._pending:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._queue.wait(remaining)
                return True
            finally:
                self._flushes.remove(deadline)

    def _flush_until(self) -> float:
        """When the last waiting flush gives up (0: none is waiting); the caller holds ``_queue``."""
        return max(self._flushes, default=0.0)

    def _work_ready(self, now: float) -> bool:
        """Whether the writer should try to commit now (the caller holds ``_queue``)."""
        return bool(self._pending) and now >= self._retry_at

    def _writer_step(self) -> bool:
        """Wait for work, commit one group, release the file when due. False: the thread should end."""
        with self._queue:
            if self._writer is not threading.current_thread() or self._pid != os.getpid():
                return False
            now = time.monotonic()
            if not self._work_ready(now) and not self._stopping:
                if self._held is not None:
                    wait = _POLL_S
                elif self._pending:
                    wait = max(self._retry_at - now, 0.001)
                else:
                    wait = 1.0
                self._queue.wait(wait)
            stop = self._stopping and not self._work_ready(time.monotonic())
        with self._cond:
            if stop:
                self._release()
                return False
            self._commit_next()
            if self._held is not None and self._should_release(time.monotonic()):
                if self.path is not None and _storage.read_requested(self.path):
                    # Let the reader see what was accepted before it asked (within a second: a huge
                    # backlog must not keep it out until its own timeout).
                    budget = time.monotonic() + _READER_BACKLOG_S
                    with self._queue:
                        last = next(reversed(self._pending), None)
                    while (
                        last is not None
                        and last in self._pending
                        and time.monotonic() < budget
                        and self._commit_next()
                    ):
                        pass
                self._release()
        return True

    def _next_group(self) -> list[tuple[Path, RowBatch | None]]:
        """The oldest accepted batches, up to ``_GROUP_ROWS`` rows (at least one batch)."""
        group: list[tuple[Path, RowBatch | None]] = []
        rows = 0
        with self._queue:
            if not self._work_ready(time.monotonic()):
                return group
            for path, (batch, _) in self._pending.items():
                count = batch.calls.num_rows if batch is not None else _ROWS_OF_UNREAD_BATCH
                if group and rows + count > _GROUP_ROWS:
                    break
                group.append((path, batch))
                rows += count
        return group

    def _commit_next(self) -> bool:
        """Commit the next group of accepted batches in one transaction (the caller holds ``_cond``).

        Returns:
            True when a group was committed (or set aside as undecodable or rejected).
        """
        group = self._next_group()
        if not group:
            return False
        loaded: list[tuple[Path, RowBatch]] = []
        done: list[Path] = []
        for path, kept in group:
            batch = kept
            if batch is None:
                try:
                    batch = Spool.read(path)
                except FileNotFoundError:
                    done.append(path)  # another process sharing the spool stored it
                    continue
                except SpoolCorruptError as exc:
                    self._set_aside(path, "exporter.spool_corrupt", "an undecodable spool file", exc)
                    done.append(path)
                    continue
            loaded.append((path, batch))
        if loaded:
            # Wait for a busy file up to lock_timeout_s per attempt (never longer: shutdown and fork
            # wait for an attempt to end); once degraded, only while someone is flushing.
            with self._queue:
                flushing_s = max(self._flush_until() - time.monotonic(), 0.0)
            wait_s = min(self.lock_timeout_s, flushing_s) if self._degraded else self.lock_timeout_s
            try:
                cursor = self._acquire(wait_s)
                try:
                    self._commit_group(cursor, loaded)
                finally:
                    self._done_with(cursor)
            except Exception as exc:
                self._on_write_error(exc)
                with self._queue:
                    self._retry_at = time.monotonic() + self._retry_delay
                    self._retry_delay = min(self._retry_delay * 2, _RETRY_MAX_S)
                self._forget(done)
                return False
            if self._degraded:
                _logger.info("DuckDB file %s is writable again; waiting batches were stored", self.path)
            self._degraded = False
        for path, _ in loaded:
            self._remove_committed(path)
        with self._queue:
            self._retry_delay = _RETRY_FIRST_S
        self._forget(done + [path for path, _ in loaded])
        return True

    def _commit_group(self, cursor: duckdb.DuckDBPyConnection, loaded: list[tuple[Path, RowBatch]]) -> None:
        """One transaction for the group; batch by batch when the database rejects the group's rows."""
        if len(loaded) > 1:
            try:
                spans = [batch.spans for _, batch in loaded if batch.spans is not None]
                merged = RowBatch(
                    pa.concat_tables([batch.calls for _, batch in loaded], promote_options="default"),
                    pa.concat_tables(spans, promote_options="default") if spans else None,
                )
            except pa.ArrowException:
                merged = None  # batches of different versions whose columns do not combine
            if merged is not None:
                try:
                    self._commit(cursor, merged)
                    return
                except Exception as exc:
                    if not _rejects_batch(cursor, exc):
                        raise
        for path, batch in loaded:
            try:
                self._commit(cursor, batch)
            except Exception as exc:
                if not _rejects_batch(cursor, exc):
                    raise  # committed batches before it are skipped as already stored on the retry
                self._set_aside(path, "exporter.spool_rejected", "a batch the database rejects", exc)

    def _remove_committed(self, path: Path) -> None:
        try:
            Spool.remove(path)
        except OSError as exc:  # committed anyway: a replay at the next start stores nothing twice
            log_once(
                _logger, "exporter.journal_remove", logging.WARNING, "could not remove %s: %r", path, exc
            )

    def _set_aside(self, path: Path, key: str, what: str, exc: Exception) -> None:
        try:
            target = Spool.quarantine(path)
        except OSError as move_error:
            # Left in place: later batches go on, and the next exporter on the file tries it again.
            log_once(
                _logger,
                key,
                logging.ERROR,
                "%s (%r) could not be moved to quarantine (%r); left in %s",
                what,
                exc,
                move_error,
                path.parent,
            )
            return
        log_once(
            _logger,
            key,
            logging.ERROR,
            "moved %s (%r) to quarantine (%s) so that later batches are written",
            what,
            exc,
            target.parent,
        )

    def _forget(self, paths: list[Path]) -> None:
        """Drop committed (or set aside) batches from the queue and wake anyone flushing."""
        if not paths:
            return
        with self._queue:
            for path in paths:
                _, size = self._pending.pop(path, (None, 0))
                self._pending_bytes -= size
            self._queue.notify_all()

    # -- writing ----------------------------------------------------------------------------------

    def _write(self, batch: RowBatch, *, quick: bool) -> SpanExportResult:
        """Replay the spool (with a ``connection``: in path mode the writer thread owns it), then commit
        ``batch``; spool it when the database cannot take it."""
        pending = self.spool.pending() if self.spool is not None and self._journal is None else []
        if batch.empty and not pending:
            return SpanExportResult.SUCCESS
        try:
            cursor = self._acquire(0.0 if quick else self.lock_timeout_s)
            try:
                self._replay(cursor, pending)
                if not batch.empty:
                    self._commit(cursor, batch)
            finally:
                self._done_with(cursor)
        except Exception as exc:
            self._on_write_error(exc)
            return self._spool_batch(batch, exc)
        if self._degraded:
            _logger.info("DuckDB file %s is writable again; spooled batches were replayed", self.path)
        self._degraded = False
        return SpanExportResult.SUCCESS

    def _flush(self, timeout_s: float) -> bool:
        if self.spool is None:
            return True
        pending = self.spool.pending()
        if not pending:
            return True
        try:
            cursor = self._acquire(timeout_s)
            try:
                self._replay(cursor, pending)
            finally:
                self._done_with(cursor)
        except Exception as exc:
            self._on_write_error(exc)
            log_once(_logger, "exporter.flush", logging.WARNING, "could not replay the spool: %r", exc)
            return False
        self._degraded = False
        return not self.spool.pending()

    def _replay(self, cursor: duckdb.DuckDBPyConnection, pending: list[Path]) -> None:
        assert self.spool is not None or not pending  # noqa: S101 - pending comes from the spool
        for path in pending:
            try:
                spooled = Spool.read(path)
            except FileNotFoundError:
                continue  # another process sharing the spool replayed it
            except SpoolCorruptError as exc:
                self._set_aside(path, "exporter.spool_corrupt", "an undecodable spool file", exc)
                continue
            try:
                self._commit(cursor, spooled)
            except Exception as exc:
                if not _rejects_batch(cursor, exc):
                    raise  # the database itself failed: keep the file, spool what follows
                self._set_aside(path, "exporter.spool_rejected", "a batch the database rejects", exc)
                continue
            self._remove_committed(path)

    def _commit(self, cursor: duckdb.DuckDBPyConnection, batch: RowBatch) -> None:
        if not self._listeners and batch.spans is None:
            with self._commit_lock:
                _storage.insert_new_rows(cursor, _schema.CALLS_TABLE, batch.calls)  # one statement
            return
        with self._commit_lock:
            cursor.execute("BEGIN TRANSACTION")
            try:
                inserted = _storage.insert_rows(cursor, _schema.CALLS_TABLE, batch.calls)
                if batch.spans is not None and batch.spans.num_rows:
                    _storage.insert_rows(cursor, _schema.SPANS_TABLE, batch.spans)
                cursor.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    cursor.execute("ROLLBACK")
                raise
        if self._listeners:
            info = CommitInfo(cursor, inserted)
            for listener in tuple(self._listeners):
                try:
                    listener(info)
                except Exception as exc:
                    log_once(
                        _logger,
                        "exporter.commit_listener",
                        logging.ERROR,
                        "commit listener %r failed: %r",
                        listener,
                        exc,
                    )

    def _spool_batch(self, batch: RowBatch, cause: Exception) -> SpanExportResult:
        if batch.empty:
            return SpanExportResult.FAILURE
        if self.spool is None:
            log_once(
                _logger,
                "exporter.no_spool",
                logging.ERROR,
                "could not write to DuckDB and no spool is configured; a batch of %d calls is lost: %s",
                batch.calls.num_rows,
                cause,
            )
            return SpanExportResult.FAILURE
        try:
            self.spool.write(batch)
        except OSError as exc:
            log_once(
                _logger,
                "exporter.spool_write",
                logging.ERROR,
                "could not write to DuckDB (%s) nor to the spool %s (%r); batches are being lost",
                cause,
                self.spool.directory,
                exc,
            )
            return SpanExportResult.FAILURE
        log_once(
            _logger,
            "exporter.spooled",
            logging.WARNING,
            "could not write to DuckDB file %s (%s); batches are kept in %s and replayed when it is writable",
            self.path,
            cause,
            self.spool.directory,
        )
        return SpanExportResult.FAILURE

    def _on_write_error(self, exc: Exception) -> None:
        # Any failure may have left the held connection in an unknown state: drop it (a lock error
        # means we never had one). Lock errors switch to quick attempts until the file is free.
        self._release()
        self._degraded = True
        key = "exporter.locked" if isinstance(exc, StorageLockedError) else "exporter.write"
        if self._journal is not None:
            log_once(
                _logger,
                key,
                logging.WARNING,
                "DuckDB write to %s failed: %s; batches wait in %s and are stored once it is writable",
                self.path,
                exc,
                self._journal.directory,
            )
        else:
            log_once(_logger, key, logging.WARNING, "DuckDB write to %s failed: %s", self.path, exc)

    # -- holding the file ---------------------------------------------------------------------------

    def _acquire(self, timeout_s: float) -> duckdb.DuckDBPyConnection:
        """A cursor for this batch: on the caller's connection, or on the file, opened if needed."""
        if os.getpid() != self._pid:  # fork without the at-fork hook (e.g. os.fork in a C extension)
            self._init_process_state()
            self._fork_unsafe = True
        if self._user_connection is not None:
            if self._fork_unsafe:
                raise StorageError("a DuckDB connection cannot be used across fork(); spooling in the child")
            cursor = self._user_connection.cursor()
            try:
                cursor.execute(_storage.REPLACEMENT_SCANS)  # a cursor is a new session: its own settings
                if not self._schema_checked:
                    _storage.ensure_schema(cursor)
                    self._schema_checked = True
            except BaseException:
                cursor.close()
                raise
            return cursor
        assert self.path is not None  # noqa: S101 - set whenever there is no user connection
        if self._fork_unsafe:
            raise StorageError(
                "this process was forked while its parent held the DuckDB file; its batches stay in the "
                "journal, where the parent (or the next exporter on the file) stores them"
            )
        if self._held is None:
            deadline = time.monotonic() + timeout_s
            # A reader asked for the file: let it in before taking the file back.
            # Sleep with the lock held: another exporting thread must not open the file meanwhile.
            while _storage.read_requested(self.path) and time.monotonic() < deadline:
                time.sleep(_POLL_S)
            held = _storage.connect(
                self.path, timeout_s=max(0.0, deadline - time.monotonic()), see_pending=False
            )
            try:
                for setting in _WRITER_SETTINGS:
                    held.execute(setting)
            except BaseException:
                held.close()
                raise
            self._held = held
            self._held_since = time.monotonic()
            with self._queue:
                self._ensure_writer()  # it releases the file when due
        return self._held

    def _done_with(self, cursor: duckdb.DuckDBPyConnection) -> None:
        if cursor is not self._held:
            cursor.close()
            return
        self._last_use = time.monotonic()

    def _release(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            try:
                held.close()  # checkpoints: the file is compact and readable by the next opener
            except duckdb.Error as exc:
                log_once(_logger, "exporter.close", logging.WARNING, "closing %s failed: %r", self.path, exc)

    def _should_release(self, now: float) -> bool:
        return (
            now - self._last_use >= self._hold_idle_s
            or now - self._held_since >= self._hold_max_s
            or (self.path is not None and _storage.read_requested(self.path))
        )

    def _replay_in_background(self) -> None:
        with self._cond:
            if not self._shutdown:
                self._flush(self.lock_timeout_s)

    # -- fork ---------------------------------------------------------------------------------------

    def _before_fork(self) -> None:
        # Close the file before fork: a child must never inherit an open DuckDB instance (it would
        # write through a copy of the parent's state without holding the file lock). Bounded wait so
        # a stuck export cannot hang fork(); then the child only spools.
        if self._lock.acquire(timeout=self.lock_timeout_s + 1.0):
            self._release()
            self._fork_locked = True
        else:
            self._fork_locked = False

    def _after_fork_in_parent(self) -> None:
        if self._fork_locked:
            self._lock.release()

    def _after_fork_in_child(self) -> None:
        held_open = not self._fork_locked
        if held_open and self._held is not None:
            _ABANDONED_AFTER_FORK.append(self._held)  # never close it here: that would write the file
        self._init_process_state()
        self._fork_unsafe = held_open or self._user_connection is not None
        if self._journal is not None:
            self._journal.renew_token()  # the parent adopts what this child leaves


class _Memo:
    """An enricher that computes each span once, however many times the batch is converted."""

    __slots__ = ("_done", "_enrich")

    def __init__(self, enrich: Enricher) -> None:
        self._enrich = enrich
        self._done: dict[int, Mapping[str, Any] | None] = {}  # id(span): the batch keeps spans alive

    def __call__(self, spans: Sequence[ReadableSpan]) -> list[Mapping[str, Any] | None]:
        done = self._done
        missing = [span for span in spans if id(span) not in done]
        if missing:
            done.update(zip(map(id, missing), self._enrich(missing), strict=True))
        return [done[id(span)] for span in spans]


# What a batch's own content causes (a value that does not fit its column, a column the table does
# not have, a constraint): retrying the same batch can never succeed. IO, memory, transaction and
# lock errors are the database's, not the batch's.
_BATCH_ERRORS: Final = (
    duckdb.DataError,
    duckdb.IntegrityError,
    duckdb.ProgrammingError,
    duckdb.NotSupportedError,
    pa.ArrowException,
)


def _rejects_batch(cursor: duckdb.DuckDBPyConnection, exc: Exception) -> bool:
    """Whether ``exc`` came from the batch, not the database (which still answers a query)."""
    if not isinstance(exc, _BATCH_ERRORS):
        return False
    try:
        # After a fatal error DuckDB answers every statement with InvalidInputException (a
        # ProgrammingError): the database is broken then, not the batch.
        cursor.execute("SELECT 1").fetchall()
    except duckdb.Error:
        return False
    return True


# Connections a forked child inherited open: kept referenced so their finalizers never run (and
# never checkpoint the parent's file from the child).
_ABANDONED_AFTER_FORK: list[duckdb.DuckDBPyConnection] = []


def _writer_loop(ref: weakref.ReferenceType[DuckDBSpanExporter]) -> None:
    while True:
        exporter = ref()
        if exporter is None:
            return
        try:
            if not exporter._writer_step():
                return
        except Exception as exc:  # a bug here must not end the thread and strand the journal
            log_once(_logger, "exporter.writer", logging.ERROR, "DuckDB writer thread error: %r", exc)
            time.sleep(_RETRY_MAX_S)
        del exporter


# One lock per DuckDB file for this process's commits: two exporters on one file share one DuckDB
# database in the process (no file lock between them), and two transactions at once would each miss
# the other's rows in the duplicate check and store them twice.
_COMMIT_LOCKS: dict[Path, threading.Lock] = {}
_COMMIT_LOCKS_GUARD = threading.Lock()


def _commit_lock_for(path: Path | None) -> threading.Lock:
    if path is None:
        return threading.Lock()  # a caller's connection (in memory, or of unknown file)
    with _COMMIT_LOCKS_GUARD:
        return _COMMIT_LOCKS.setdefault(path, threading.Lock())


def _reset_commit_locks_in_child() -> None:
    global _COMMIT_LOCKS_GUARD  # noqa: PLW0603 - a fork may have copied it held
    _COMMIT_LOCKS_GUARD = threading.Lock()
    _COMMIT_LOCKS.clear()


if hasattr(os, "register_at_fork"):
    # Registered at import, so it runs before any exporter's own after-fork hook rebuilds its state.
    os.register_at_fork(after_in_child=_reset_commit_locks_in_child)

# Path-mode exporters of this process, for readers of the same file (see _commit_before_read).
_LIVE: weakref.WeakSet[DuckDBSpanExporter] = weakref.WeakSet()


def _commit_before_read(path: str, timeout_s: float) -> None:
    """Before a connection opens ``path``: commit what this process's exporters accepted for it.

    Within ``timeout_s`` for all of them, and not for an exporter that cannot write the file now (held
    by another process, unwritable): the reader then sees what is committed.
    """
    target = Path(path).absolute()
    deadline = time.monotonic() + timeout_s
    for exporter in list(_LIVE):
        if (
            exporter.path == target
            and exporter._writer is not threading.current_thread()
            and not exporter._degraded
        ):
            try:
                exporter._drain(max(0.0, deadline - time.monotonic()))
            except Exception as exc:
                log_once(_logger, "exporter.before_read", logging.ERROR, "commit before read failed: %r", exc)


_storage.add_before_read_hook(_commit_before_read)


def _shut_down_at_exit() -> None:
    # A TracerProvider shuts its exporters down at exit (its own atexit hook, which runs before this
    # one); an exporter used without one would otherwise leave its last batches in the journal until the
    # next exporter on the file starts, invisible to readers meanwhile.
    for exporter in list(_LIVE):
        exporter.shutdown()


atexit.register(_shut_down_at_exit)


def _register_fork_hooks(exporter: DuckDBSpanExporter) -> None:
    if not hasattr(os, "register_at_fork"):
        return
    ref = weakref.ref(exporter)

    def call(method: str) -> Callable[[], None]:
        def hook() -> None:
            target = ref()
            if target is not None:
                getattr(target, method)()

        return hook

    os.register_at_fork(
        before=call("_before_fork"),
        after_in_parent=call("_after_fork_in_parent"),
        after_in_child=call("_after_fork_in_child"),
    )


def _connection_file(connection: duckdb.DuckDBPyConnection) -> Path | None:
    try:
        row = connection.execute(
            "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
        ).fetchone()
    except duckdb.Error:
        return None
    return Path(row[0]) if row and row[0] else None
