"""The synchronous writer: ``export`` commits its batch itself, on a connection the caller owns.

Batches the database cannot take go to the spool (when there is one) and are replayed, in order, before
the next batch and at start-up. The journaled writer also falls back on it when a batch cannot be
journaled.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Protocol

import duckdb
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_llm_cost._logging import log_once
from otel_llm_cost.exceptions import StorageError
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage.commit import Committer, rejects_batch, remove_committed, set_aside
from otel_llm_cost.storage.journal import Spool, SpoolCorruptError
from otel_llm_cost.storage.rows import RowBatch
from otel_llm_cost.storage.writer import WriteHealth

__all__ = ["CallerConnection", "CursorSource", "DirectWriter"]

_logger = logging.getLogger("otel_llm_cost.exporter")


class CursorSource(Protocol):
    """Where a commit gets its cursor (``lock`` held around acquire ... done_with, and release)."""

    lock: threading.Lock

    def acquire(self, timeout_s: float) -> duckdb.DuckDBPyConnection: ...

    def done_with(self, cursor: duckdb.DuckDBPyConnection) -> None: ...

    def release(self) -> None: ...


class CallerConnection:
    """Cursors on a connection the caller owns (never closed here), one per batch."""

    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        self._connection = connection
        self.lock = threading.Lock()
        self._schema_checked = False
        self._pid = os.getpid()

    def acquire(self, timeout_s: float) -> duckdb.DuckDBPyConnection:
        if os.getpid() != self._pid:
            raise StorageError("a DuckDB connection cannot be used across fork(); spooling in the child")
        cursor = self._connection.cursor()
        try:
            cursor.execute(_storage.REPLACEMENT_SCANS)  # a cursor is a new session: its own settings
            if not self._schema_checked:
                _storage.ensure_schema(cursor)
                self._schema_checked = True
        except BaseException:
            cursor.close()
            raise
        return cursor

    def done_with(self, cursor: duckdb.DuckDBPyConnection) -> None:
        cursor.close()

    def release(self) -> None:
        """Nothing is held between batches."""


class DirectWriter:
    """Commits each batch as it comes; spools what the database cannot take.

    Args:
        source: Where cursors come from.
        committer: Commits a batch on a cursor.
        spool: Where unwritable batches wait (``None``: they are lost, logged).
        health: Shared with whoever else writes the file.
        lock_timeout_s: How long a batch waits for a busy file before it is spooled.
        replay_spool: Replay the spool before each batch (False when another writer owns it).
    """

    def __init__(
        self,
        source: CursorSource,
        committer: Committer,
        spool: Spool | None,
        health: WriteHealth,
        *,
        lock_timeout_s: float,
        replay_spool: bool,
    ) -> None:
        self._source = source
        self._committer = committer
        self._spool = spool
        self._health = health
        self._lock_timeout_s = lock_timeout_s
        self._replay_spool = replay_spool
        self._shutdown = False
        self._fork_locked = False

    @property
    def uncommitted_rows(self) -> int:
        return 0  # committed (or spooled) before accept returns

    def start_replay(self) -> None:
        """Replay batches a previous run spooled, in the background (a busy file never delays start-up)."""
        if self._spool is not None and self._spool.pending():
            threading.Thread(target=self._replay_at_start, name="otel-llm-cost-replay", daemon=True).start()

    def _replay_at_start(self) -> None:
        with self._source.lock:
            if not self._shutdown:
                self.replay_spool(self._lock_timeout_s)

    def accept(self, batch: RowBatch) -> SpanExportResult:
        with self._source.lock:
            if self._shutdown:
                return SpanExportResult.FAILURE
            return self.write(batch, quick=self._health.degraded)

    def flush(self, timeout_s: float) -> bool:
        with self._source.lock:
            if self._shutdown:
                return True
            return self.replay_spool(timeout_s)

    def shutdown(self) -> None:
        with self._source.lock:
            if self._shutdown:
                return
            self._shutdown = True
            self.replay_spool(self._lock_timeout_s)

    def batch_coming(self) -> bool:
        """Nothing to prepare (the batch is committed when accepted); False after shutdown."""
        return not self._shutdown

    def before_fork(self) -> None:
        # Bounded wait so a stuck export cannot hang fork(); the child never uses the connection.
        self._fork_locked = self._source.lock.acquire(timeout=self._lock_timeout_s + 1.0)

    def after_fork_in_parent(self) -> None:
        if self._fork_locked:
            self._source.lock.release()

    def after_fork_in_child(self) -> None:
        self._source.lock = threading.Lock()  # the parent's may have been copied held

    def write(self, batch: RowBatch, *, quick: bool) -> SpanExportResult:
        """Replay the spool (when this writer owns it), then commit ``batch``; spool it when the database
        cannot take it. The caller holds ``source.lock``."""
        pending = self._spool.pending() if self._spool is not None and self._replay_spool else []
        if batch.empty and not pending:
            return SpanExportResult.SUCCESS
        try:
            cursor = self._source.acquire(0.0 if quick else self._lock_timeout_s)
            try:
                self._replay(cursor, pending)
                if not batch.empty:
                    self._committer.commit(cursor, batch)
            finally:
                self._source.done_with(cursor)
        except Exception as exc:
            self._failed(exc)
            return self._spool_batch(batch, exc)
        self._health.succeeded("spooled batches were replayed")
        return SpanExportResult.SUCCESS

    def replay_spool(self, timeout_s: float) -> bool:
        """Commit what waits in the spool (the caller holds ``source.lock``); True when none is left."""
        if self._spool is None:
            return True
        pending = self._spool.pending()
        if not pending:
            return True
        try:
            cursor = self._source.acquire(timeout_s)
            try:
                self._replay(cursor, pending)
            finally:
                self._source.done_with(cursor)
        except Exception as exc:
            self._failed(exc)
            log_once(_logger, "exporter.flush", logging.WARNING, "could not replay the spool: %r", exc)
            return False
        self._health.degraded = False
        return not self._spool.pending()

    def _failed(self, exc: Exception) -> None:
        # Any failure may have left a held connection in an unknown state: drop it (a lock error
        # means there was none).
        self._source.release()
        self._health.failed(exc)

    def _replay(self, cursor: duckdb.DuckDBPyConnection, pending: list[Path]) -> None:
        for path in pending:
            try:
                spooled = Spool.read(path)
            except FileNotFoundError:
                continue  # another process sharing the spool replayed it
            except SpoolCorruptError as exc:
                set_aside(path, "exporter.spool_corrupt", "an undecodable spool file", exc)
                continue
            try:
                self._committer.commit(cursor, spooled)
            except Exception as exc:
                if not rejects_batch(cursor, exc):
                    raise  # the database itself failed: keep the file, spool what follows
                set_aside(path, "exporter.spool_rejected", "a batch the database rejects", exc)
                continue
            remove_committed(path)

    def _spool_batch(self, batch: RowBatch, cause: Exception) -> SpanExportResult:
        if batch.empty:
            return SpanExportResult.FAILURE
        if self._spool is None:
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
            self._spool.write(batch)
        except OSError as exc:
            log_once(
                _logger,
                "exporter.spool_write",
                logging.ERROR,
                "could not write to DuckDB (%s) nor to the spool %s (%r); batches are being lost",
                cause,
                self._spool.directory,
                exc,
            )
            return SpanExportResult.FAILURE
        log_once(
            _logger,
            "exporter.spooled",
            logging.WARNING,
            "could not write to DuckDB file %s (%s); batches are kept in %s and replayed when it is writable",
            self._health.path,
            cause,
            self._spool.directory,
        )
        return SpanExportResult.FAILURE
