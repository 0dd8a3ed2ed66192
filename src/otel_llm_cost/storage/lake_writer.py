"""The lake's writer: ``export`` journals its batch and returns; a thread commits batches to the lake.

Each DuckLake commit writes at least one Parquet file and a catalog transaction, so the thread waits
until ``batch_rows`` rows or ``batch_s`` seconds have gathered and commits them as one transaction,
holding the lake's commit lock (:mod:`~otel_llm_cost.storage.lake_lock`) so that a span handed to two
writers is stored once. A batch stays in the journal until its commit returned; a failed commit (the
catalog unreachable, a conflict with maintenance) is retried with growing pauses, and because the
commit skips spans already stored, retrying a commit whose acknowledgement was lost stores nothing
twice. Batches a killed process journaled are committed by the next writer on the same journal.
There is no file lease here: a lake has no single-writer file to hand over.

``fork()`` (gunicorn, celery and other pre-fork servers): the parent closes its lake connection and
its lock's catalog session before the fork (waiting briefly for a commit in flight) and reopens them
when it next commits, so a child inherits neither: a child that used them would write through a copy
of the parent's DuckDB instance and share its PostgreSQL sockets, and closing them there would end the
parent's catalog sessions. The child starts with no thread and no batches of its own; the batches the
parent accepted stay the parent's to commit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from pathlib import Path

import duckdb
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_llm_cost import _config
from otel_llm_cost._logging import log_once
from otel_llm_cost._worker import step_while_alive
from otel_llm_cost.storage import lifecycle
from otel_llm_cost.storage.commit import CommitListener, Committer, remove_committed, set_aside
from otel_llm_cost.storage.journal import Spool, SpoolCorruptError
from otel_llm_cost.storage.lake import LakeTarget, attach_lake, load_extensions
from otel_llm_cost.storage.lake_lock import CommitLock
from otel_llm_cost.storage.rows import RowBatch
from otel_llm_cost.storage.writer import WriteHealth

__all__ = ["LakeWriter", "lake_writer"]

_logger = logging.getLogger("otel_llm_cost.exporter")

_FIRST_RETRY_S = 0.05
_MAX_RETRY_S = 2.0
_LAKE_LOCK_WAIT_S = 60.0
# How long fork() waits for a commit in flight (a commit takes ~0.1-1 s; waiting for other writers'
# commits can take longer, and fork must not hang on them).
_FORK_WAIT_S = 5.0
# Connections a child inherited because a commit was in flight at the fork: never used or closed in
# the child (closing them would end the parent's catalog sessions), kept so nothing collects them.
_INHERITED: list[object] = []


class LakeWriter:
    """Journals each batch and commits the journal to the lake in batches (see the module docstring).

    Args:
        target: The lake.
        journal: Where accepted batches wait until the lake acknowledged them.
        committer: Commits batches (skipping spans already stored) and calls the commit listeners.
        batch_rows: Commit once this many rows wait.
        batch_s: Commit once the oldest waiting batch is this old.
        lock_timeout_s: How long one commit waits for the commit lock.
    """

    def __init__(
        self,
        target: LakeTarget,
        journal: Spool,
        committer: Committer,
        *,
        batch_rows: int,
        batch_s: float,
        lock_timeout_s: float,
    ) -> None:
        self.target = target
        self.path: Path | None = None  # no file: readers of this process do not wait for it
        self._journal = journal
        self._committer = committer
        self._batch_rows = batch_rows
        self._batch_s = batch_s
        self._lock_timeout_s = lock_timeout_s
        self._health = WriteHealth(target.target, journal.directory)
        self._cond = threading.Condition()
        self._pending: list[tuple[Path, RowBatch | None, int]] = []  # journal file, rows, row count
        self._oldest = 0.0
        self._flushing = 0
        self._retry_at = 0.0
        self._failures = 0
        self._shut = False
        self._stopping = False
        self._lock = CommitLock(target.libpq_dsn)
        self._con: duckdb.DuckDBPyConnection | None = None
        self._thread: threading.Thread | None = None
        # Held while the lake connection and the lock's session are in use or being closed.
        self._using = threading.Lock()
        self._fork_locked = False
        self._pid = os.getpid()
        lifecycle.register_fork_hooks(self)
        lifecycle.register_live(self)
        self._adopt()

    @property
    def journal_token(self) -> str:
        return self._journal.token

    @property
    def uncommitted_rows(self) -> int:
        with self._cond:
            return sum(rows for _, _, rows in self._pending)

    def may_drain_for_reader(self) -> bool:
        return False  # readers of a lake never wait for this process

    def batch_coming(self) -> bool:
        return not self._shut

    def accept(self, batch: RowBatch) -> SpanExportResult:
        """Journal ``batch`` for the writer thread (the journal is what makes it survive a crash)."""
        if batch.empty:
            return SpanExportResult.SUCCESS
        if self._pid != os.getpid():
            self._reset_in_child(closed_before_fork=False)  # os.fork from C code skips the fork hooks
        try:
            path = self._journal.write(batch, durable=False)
        except OSError as exc:
            log_once(
                _logger,
                "exporter.journal",
                logging.ERROR,
                "could not journal a batch in %s: %r",
                self._journal.directory,
                exc,
            )
            return SpanExportResult.FAILURE
        with self._cond:
            if self._stopping:
                return SpanExportResult.FAILURE  # the journal file waits for the next writer
            if not self._pending:
                self._oldest = time.monotonic()
            self._pending.append((path, batch, batch.calls.num_rows))
            self._start()
            self._cond.notify_all()
        return SpanExportResult.SUCCESS

    def flush(self, timeout_s: float) -> bool:
        """Commit everything accepted so far now; False when something is left after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            if not self._pending:
                return True
            last = self._pending[-1][0]
            self._flushing += 1
            self._retry_at = 0.0
            self._start()
            self._cond.notify_all()
            try:
                while any(path == last for path, _, _ in self._pending):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._stopping:
                        return False
                    self._cond.wait(remaining)
                return True
            finally:
                self._flushing -= 1

    def shutdown(self) -> None:
        with self._cond:
            if self._shut:
                return
            self._shut = True
        drained = self.flush(self._lock_timeout_s)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread, left = self._thread, len(self._pending)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self._lock_timeout_s + 2.0)
        with self._using:
            self._close()
        lifecycle.unregister_live(self)
        if not drained:
            log_once(
                _logger,
                "exporter.shutdown_pending",
                logging.WARNING,
                "%d batches could not be committed to the lake before shutdown; they stay in %s and the "
                "next exporter on that journal commits them",
                left,
                self._journal.directory,
            )

    # -- fork (lifecycle.ForkAware) ------------------------------------------------------------------

    def before_fork(self) -> None:
        self._fork_locked = self._using.acquire(timeout=_FORK_WAIT_S)
        if self._fork_locked:
            self._close()  # reopened by the parent's next commit

    def after_fork_in_parent(self) -> None:
        if self._fork_locked:
            self._using.release()

    def after_fork_in_child(self) -> None:
        self._reset_in_child(closed_before_fork=self._fork_locked)

    def _reset_in_child(self, *, closed_before_fork: bool) -> None:
        if not closed_before_fork:
            _INHERITED.extend([self._con, self._lock])
        self._con = None
        self._lock = CommitLock(self.target.libpq_dsn)
        self._using = threading.Lock()  # the copy may be held by the parent's writer thread
        self._committer.after_fork_in_child()
        self._cond = threading.Condition()
        self._pending = []  # the parent commits the batches it accepted
        self._oldest, self._flushing, self._retry_at, self._failures = 0.0, 0, 0.0, 0
        self._thread = None
        self._stopping = False
        self._fork_locked = False
        self._health.degraded = False
        self._journal.renew_token()  # what this child leaves is adopted by the next writer on the journal
        self._pid = os.getpid()

    # -- the writer thread ---------------------------------------------------------------------------

    def _adopt(self) -> None:
        live = lifecycle.live_tokens()
        left = [path for path in self._journal.pending() if Spool.owner(path) not in live]
        if left:
            with self._cond:
                self._pending[:0] = [(path, None, 512) for path in left]
                self._oldest = 0.0  # due now
                self._start()

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=_writer_loop, args=(weakref.ref(self),), name="otel-llm-cost-lake-writer", daemon=True
            )
            self._thread.start()

    def _due(self, now: float) -> bool:
        if not self._pending or now < self._retry_at:
            return False
        full = sum(rows for _, _, rows in self._pending) >= self._batch_rows
        return full or self._flushing > 0 or self._stopping or now - self._oldest >= self._batch_s

    def step(self) -> bool:
        """Wait for a due batch and commit it. False: the thread should end."""
        with self._cond:
            now = time.monotonic()
            if not self._due(now):
                if self._stopping:
                    return False
                waits = [self._oldest + self._batch_s - now, self._retry_at - now, 1.0]
                self._cond.wait(
                    max(0.001, min(w for w in waits if w > 0) if any(w > 0 for w in waits) else 0.001)
                )
                return True
            group = list(self._pending)
        committed = self._commit(group)
        with self._cond:
            if committed:
                done = {path for path, _, _ in group}
                self._pending = [item for item in self._pending if item[0] not in done]
                self._oldest = time.monotonic()
                self._failures, self._retry_at = 0, 0.0
            else:
                self._failures += 1
                self._retry_at = time.monotonic() + min(_MAX_RETRY_S, _FIRST_RETRY_S * 2**self._failures)
            self._cond.notify_all()
        return True

    def _commit(self, group: list[tuple[Path, RowBatch | None, int]]) -> bool:
        loaded: list[tuple[Path, RowBatch]] = []
        for path, kept, _ in group:
            batch = kept
            if batch is None:
                try:
                    batch = Spool.read(path)
                except FileNotFoundError:
                    continue  # another writer sharing the journal committed it
                except SpoolCorruptError as exc:
                    set_aside(path, "exporter.spool_corrupt", "an undecodable journal file", exc)
                    continue
            loaded.append((path, batch))
        if loaded:
            try:
                with self._using:
                    try:
                        con = self._connection()
                        with self._lock.held(self._lock_timeout_s):
                            self._committer.commit_group(con, loaded)
                    except Exception:
                        self._close_lake()  # a failed connection is reopened; the batch stays journaled
                        raise
            except Exception as exc:
                self._health.failed(exc)
                return False
            self._health.succeeded("journaled batches were committed")
        for path, _ in loaded:
            remove_committed(path)
        return True

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            con = duckdb.connect(":memory:")
            try:
                load_extensions(con)
                # Creating the lake and its tables races with other writers: under the lock.
                with self._lock.held(self._lock_timeout_s):
                    attach_lake(con, self.target, create=True)
            except BaseException:
                con.close()
                raise
            self._con = con
        return self._con

    def _close_lake(self) -> None:
        con, self._con = self._con, None
        if con is not None:
            with contextlib.suppress(duckdb.Error):
                con.close()

    def _close(self) -> None:
        self._close_lake()
        self._lock.close()


def _writer_loop(ref: weakref.ReferenceType[LakeWriter]) -> None:
    step_while_alive(
        ref,
        LakeWriter.step,
        logger=_logger,
        log_key="exporter.writer",
        what="lake writer thread",
        pause_s=1.0,
    )


def lake_writer(
    target: LakeTarget, journal: Spool, listeners: list[CommitListener], lock_timeout_s: float
) -> LakeWriter:
    """The exporter's writer for ``target``, batching as the environment says."""
    return LakeWriter(
        target,
        journal,
        Committer(None, listeners),
        batch_rows=_config.LAKE_BATCH_ROWS.get(),
        batch_s=_config.LAKE_BATCH_SECONDS.get(),
        # Commits are serialised by the lock and take ~0.1-1 s each (batches of thousands of rows), so
        # with several writers the file exporter's lock wait (5 s) is too short for a lake.
        lock_timeout_s=max(lock_timeout_s, _LAKE_LOCK_WAIT_S),
    )
