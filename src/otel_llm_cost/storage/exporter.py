"""DuckDBSpanExporter: every LLM call as a typed row in a DuckDB file, fast, idempotent, nothing lost.

A small shell: it converts each export batch to Arrow rows (:mod:`~otel_llm_cost.storage.convert`,
through the :class:`~otel_llm_cost.storage.enricher.SpanEnricher` it receives) and hands them to one
:class:`~otel_llm_cost.storage.writer.Writer`:

- on a path, the :class:`~otel_llm_cost.storage.journaled.JournaledWriter`: ``export`` journals the
  batch (crash-safe) and returns; a writer thread commits the journal, several batches per
  transaction, holding the file only while busy so that readers in other processes get in
  (:mod:`~otel_llm_cost.storage.lease`);
- on a ``connection`` the caller owns, the :class:`~otel_llm_cost.storage.direct.DirectWriter`:
  ``export`` commits the batch itself.

Fork, exit and readers in this process are followed by :mod:`~otel_llm_cost.storage.lifecycle`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_llm_cost import _config
from otel_llm_cost.storage import lifecycle
from otel_llm_cost.storage.commit import CommitInfo, CommitListener, Committer
from otel_llm_cost.storage.convert import BatchConverter
from otel_llm_cost.storage.direct import CallerConnection, DirectWriter
from otel_llm_cost.storage.drops import record_drops
from otel_llm_cost.storage.enricher import SpanEnricher, default_enricher
from otel_llm_cost.storage.journal import Spool
from otel_llm_cost.storage.journaled import CHECKPOINT_THRESHOLD, JournaledWriter
from otel_llm_cost.storage.lake import LakeTarget, is_lake_target
from otel_llm_cost.storage.lake_writer import lake_writer
from otel_llm_cost.storage.writer import WriteHealth, Writer

__all__ = ["CHECKPOINT_THRESHOLD", "CommitInfo", "CommitListener", "DuckDBSpanExporter"]


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

        provider.add_span_processor(LLMCostSpanProcessor(DuckDBSpanExporter("costs.duckdb")))

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

        data_path: With a DuckLake target, where a new lake keeps its Parquet files (a directory or
            ``s3://bucket/prefix/``; default ``OTEL_LLM_COST_LAKE_DATA_PATH``); see docs/lake.md.

    A ``path`` of the form ``ducklake:postgres:<libpq connection string>`` writes to a DuckLake (a
    PostgreSQL catalog and Parquet files) instead of a file: many processes may write to it at once,
    each span is stored once, and batches are committed every ``OTEL_LLM_COST_LAKE_BATCH_ROWS`` rows or
    ``OTEL_LLM_COST_LAKE_BATCH_SECONDS`` seconds (the journal keeps them until the lake acknowledged).

    Raises:
        ValueError: Both ``path`` and ``connection`` given, a lake target with a password or
            ``data_path`` without a lake target, ``enricher`` with any of ``pricing``,
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
        data_path: str | None = None,
    ) -> None:
        if path is not None and connection is not None:
            raise ValueError("pass either a path or a connection, not both")
        _check_durations(lock_timeout_s=lock_timeout_s, hold_idle_s=hold_idle_s, hold_max_s=hold_max_s)
        if enricher is None:
            enricher = default_enricher(
                pricing=pricing, user_id_hasher=user_id_hasher, dedup_capacity=dedup_capacity
            )
        elif pricing is not None or user_id_hasher is not None or dedup_capacity is not None:
            raise ValueError("pass either an enricher or pricing/user_id_hasher/dedup_capacity, not both")
        self.lock_timeout_s = _config.LOCK_TIMEOUT_SECONDS.get() if lock_timeout_s is None else lock_timeout_s
        self._converter = BatchConverter(
            enricher,
            capture_content=_config.CAPTURE_CONTENT.get() if capture_content is None else capture_content,
            store_all_spans=_config.STORE_ALL_SPANS.get() if store_all_spans is None else store_all_spans,
        )
        spool_path = spool_dir if spool_dir is not None else _config.SPOOL_DIR.get()
        self._listeners: list[CommitListener] = []
        self._shutdown = False
        self._dropped = (0, 0)
        self.path: Path | None
        self.spool: Spool | None
        self._writer: Writer
        target = os.fspath(path) if path is not None else _config.DUCKDB_PATH.get()
        self.lake: LakeTarget | None = None
        if connection is None and is_lake_target(target):
            self.lake = LakeTarget(
                target, data_path if data_path is not None else _config.LAKE_DATA_PATH.get()
            )
            self.path = None
            self.spool = Spool(
                spool_path if spool_path is not None else f"llm_costs.{self.lake.key}.lake-journal"
            )
            self._writer = lake_writer(self.lake, self.spool, self._listeners, self.lock_timeout_s)
        elif data_path is not None:
            raise ValueError("data_path is for a DuckLake target ('ducklake:postgres:...')")
        elif connection is None:
            file = Path(target).absolute()
            journal = Spool(spool_path if spool_path is not None else f"{file}.spool")
            self.path, self.spool = file, journal
            self._writer = JournaledWriter(
                file,
                journal,
                Committer(file, self._listeners),
                lock_timeout_s=self.lock_timeout_s,
                hold_idle_s=hold_idle_s,
                hold_max_s=hold_max_s,
            )
        else:
            self.path = _connection_file(connection)
            if spool_path is None and self.path is not None:
                spool_path = f"{self.path}.spool"
            self.spool = Spool(spool_path) if spool_path is not None else None
            self._writer = _direct_writer(
                connection, self.path, self.spool, self._listeners, self.lock_timeout_s
            )

    @property
    def store_all_spans(self) -> bool:
        """Whether every span is also stored in the ``spans`` table."""
        return self._converter.store_all_spans

    @property
    def capture_content(self) -> bool:
        """Whether prompt/completion text attributes are kept."""
        return self._converter.capture_content

    @property
    def uncommitted_rows(self) -> int:
        """LLM-call rows ``export`` accepted that the writer thread has not committed yet (its backlog).

        Exact for every batch this exporter accepted; a journal file an earlier run left counts as 512.
        """
        return self._writer.uncommitted_rows

    @property
    def dropped_calls(self) -> int:
        """LLM calls the queue feeding this exporter had to drop (it stayed full: a stalled disk).

        Reported by :class:`~otel_llm_cost.LLMCostSpanProcessor`'s export queue through
        :meth:`record_dropped`; also appended to ``<file>.dropped``, which ``otel-llm-cost status`` reads.
        """
        return self._dropped[0]

    @property
    def dropped_spans(self) -> int:
        """Spans (LLM calls included) the queue feeding this exporter had to drop."""
        return self._dropped[1]

    def record_dropped(self, calls: int, spans: int) -> None:
        """Count calls and spans dropped before they reached ``export`` (``dropped_calls``); never raises."""
        self._dropped = (self._dropped[0] + calls, self._dropped[1] + spans)
        if self.path is not None:
            record_drops(self.path, calls, spans)

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
        if self._shutdown or not self._writer.batch_coming():
            return SpanExportResult.FAILURE
        batch, dropped = self._converter.convert(spans)
        result = self._writer.accept(batch)
        return SpanExportResult.FAILURE if dropped else result

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Commit every batch accepted so far, and any left in the spool, waiting up to ``timeout_millis``.

        Returns:
            True when nothing accepted is left uncommitted.
        """
        return self._writer.flush(timeout_millis / 1000)

    def shutdown(self) -> None:
        """Commit what was accepted (waiting up to ``lock_timeout_s`` for the file), release the file.

        Batches that still cannot be written stay in the spool, where the next exporter on this file
        stores them (logged). A second call is a no-op.
        """
        self._shutdown = True
        self._writer.shutdown()


def _check_durations(**durations: float | None) -> None:
    for name, value in durations.items():
        if value is not None and not value >= 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")


def _direct_writer(
    connection: duckdb.DuckDBPyConnection,
    path: Path | None,
    spool: Spool | None,
    listeners: list[CommitListener],
    lock_timeout_s: float,
) -> DirectWriter:
    writer = DirectWriter(
        CallerConnection(connection),
        Committer(None, listeners),
        spool,
        WriteHealth(path, None),
        lock_timeout_s=lock_timeout_s,
        replay_spool=True,
    )
    lifecycle.register_fork_hooks(writer)
    writer.start_replay()  # batches a previous run spooled
    return writer


def _connection_file(connection: duckdb.DuckDBPyConnection) -> Path | None:
    try:
        row = connection.execute(
            "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
        ).fetchone()
    except duckdb.Error:
        return None
    return Path(row[0]) if row and row[0] else None
