"""Committing row batches: one transaction per batch or group, commit listeners, batches set aside.

Both writers (the journaled writer thread and the caller-owned connection) commit through
:class:`Committer`. A span already stored (same trace and span id) is skipped, so a batch committed
twice (a replay after a crash) stores nothing twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import duckdb
import pyarrow as pa

from otel_llm_cost._logging import log_once
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage import rollup as _rollup
from otel_llm_cost.storage import schema as _schema
from otel_llm_cost.storage import sessions as _sessions
from otel_llm_cost.storage.journal import Spool
from otel_llm_cost.storage.rows import RowBatch

__all__ = ["CommitInfo", "CommitListener", "Committer", "rejects_batch", "remove_committed", "set_aside"]

_logger = logging.getLogger("otel_llm_cost.exporter")


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


def rejects_batch(cursor: duckdb.DuckDBPyConnection, exc: Exception) -> bool:
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


class Committer:
    """Commits batches on a cursor, then calls the commit listeners (never raising their errors).

    Args:
        path: The DuckDB file (``None``: a caller's connection of unknown file, or in memory).
        listeners: Called after each commit (the list may grow later).
    """

    __slots__ = ("_lock", "_path", "listeners")

    def __init__(self, path: Path | None, listeners: list[CommitListener]) -> None:
        self._path = path
        self.listeners = listeners
        self._lock = _commit_lock_for(path)

    def after_fork_in_child(self) -> None:
        """The parent's lock may have been copied held."""
        self._lock = _commit_lock_for(self._path)

    def commit(self, cursor: duckdb.DuckDBPyConnection, batch: RowBatch) -> None:
        """Store ``batch`` in one transaction (one statement without listeners or spans)."""
        if not self.listeners and batch.spans is None:
            with self._lock:
                _storage.insert_new_rows(cursor, _schema.CALLS_TABLE, batch.calls)  # one statement
            return
        with self._lock:
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
        if self.listeners:
            self._notify(CommitInfo(cursor, inserted))

    def roll_up(self, cursor: duckdb.DuckDBPyConnection, max_rows: int) -> None:
        """Add up to ``max_rows`` stored rows to the rollup (never raising: reports then read raw rows).

        Under the commit lock: no append of this process may commit while the rollup's watermark moves.
        The session table (:mod:`~otel_llm_cost.storage.sessions`) catches up beside it.
        """
        with self._lock:
            for catch_up in (_rollup.catch_up, _sessions.catch_up):
                try:
                    catch_up(cursor, max_rows=max_rows)
                except Exception as exc:
                    log_once(
                        _logger, "exporter.rollup", logging.WARNING, "rolling up stored calls failed: %r", exc
                    )

    def _notify(self, info: CommitInfo) -> None:
        for listener in tuple(self.listeners):
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

    def commit_group(self, cursor: duckdb.DuckDBPyConnection, loaded: list[tuple[Path, RowBatch]]) -> None:
        """One transaction for the group; batch by batch when the database rejects the group's rows."""
        if len(loaded) > 1:
            merged = _merged(loaded)
            if merged is not None:
                try:
                    self.commit(cursor, merged)
                    return
                except Exception as exc:
                    if not rejects_batch(cursor, exc):
                        raise
        for path, batch in loaded:
            try:
                self.commit(cursor, batch)
            except Exception as exc:
                if not rejects_batch(cursor, exc):
                    raise  # committed batches before it are skipped as already stored on the retry
                set_aside(path, "exporter.spool_rejected", "a batch the database rejects", exc)


def _merged(loaded: list[tuple[Path, RowBatch]]) -> RowBatch | None:
    try:
        spans = [batch.spans for _, batch in loaded if batch.spans is not None]
        return RowBatch(
            pa.concat_tables([batch.calls for _, batch in loaded], promote_options="default"),
            pa.concat_tables(spans, promote_options="default") if spans else None,
        )
    except pa.ArrowException:
        return None  # batches of different versions whose columns do not combine


def remove_committed(path: Path) -> None:
    """Delete a committed journal file (a failure is logged: a replay stores nothing twice)."""
    try:
        Spool.remove(path)
    except OSError as exc:
        log_once(_logger, "exporter.journal_remove", logging.WARNING, "could not remove %s: %r", path, exc)


def set_aside(path: Path, key: str, what: str, exc: Exception) -> None:
    """Move a batch that can never be stored to the spool's quarantine, so later batches go on."""
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
    # Registered at import, so it runs before any writer's own after-fork hook rebuilds its state.
    os.register_at_fork(after_in_child=_reset_commit_locks_in_child)
