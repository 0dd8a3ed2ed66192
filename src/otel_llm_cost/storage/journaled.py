"""The journaled writer: ``export`` journals its batch and returns; a writer thread commits to DuckDB.

Each accepted batch is appended to the journal (one file per batch in the spool directory, written
aside and renamed: it survives kill -9); the writer thread commits the journaled batches in order and
deletes their files. Under load it takes several batches per transaction: besides ~6-7 µs per row,
DuckDB pays ~3-4 ms per statement and commit whatever the size (measured with
benchmarks/bench_exporter.py: a raw insert of 512-row batches runs at 13-15 µs per row, of 8192-row
batches at 6-7 µs), so coalescing is what lets 512-span batches from a BatchSpanProcessor reach the
throughput of large ones. Row building (Python, the export thread) and the insert (DuckDB, GIL
released, the writer thread) also run on two cores at once. A journal the writer could not commit yet
is the spool: replayed in order, at start-up too.

The writer holds the file (:class:`~otel_llm_cost.storage.lease.WriterLease`) while batches keep coming
and lets go when it is idle, held too long, or a reader asks for it, after committing what was
accepted so far (for up to a second). A writer that finds the file held retries with backoff for
``lock_timeout_s``, then keeps the batches journaled and retries with growing pauses (up to a second)
until the file is free again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from pathlib import Path
from typing import Final

from opentelemetry.sdk.trace.export import SpanExportResult

from otel_llm_cost._logging import log_once
from otel_llm_cost._worker import step_while_alive
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage import lifecycle
from otel_llm_cost.storage.backlog import Backlog
from otel_llm_cost.storage.commit import Committer, remove_committed, set_aside
from otel_llm_cost.storage.direct import DirectWriter
from otel_llm_cost.storage.journal import Spool, SpoolCorruptError
from otel_llm_cost.storage.lease import WriterLease, start_release_thread
from otel_llm_cost.storage.rows import RowBatch
from otel_llm_cost.storage.writer import WriteHealth

__all__ = ["CHECKPOINT_THRESHOLD", "JournaledWriter"]

_logger = logging.getLogger("otel_llm_cost.exporter")

# How often the writer thread checks idle time and read requests while the file is held.
_POLL_S = 0.02
# The writer thread's pause after an unexpected error (a bug), so that it cannot spin.
_ERROR_PAUSE_S = 1.0
# How long the writer keeps committing its backlog for a reader that asked for the file.
_READER_BACKLOG_S = 1.0
_IDLE_ROLLUP_ROWS = 32_768  # rolled up per idle release (~0.15 s on one core): see storage/rollup.py
# Building rows for a large batch takes a while on a loaded machine; the file is not idle meanwhile.
_BUILD_GRACE_S = 1.0
# DuckDB's default (16 MB of WAL) checkpoints every ~30k of our rows, recompressing the same partial
# row group again and again: a 1GB threshold doubled throughput (62k -> 118k rows/s, 500k rows making
# a 257 MB WAL replayed in 1.4 s on reopen). The file is released, and so checkpointed, at least every
# ``hold_max_s`` anyway, so the WAL stays small: a reader or a restart after kill -9 replays at most
# that much. Applied to files the exporter opens, never to a caller's connection.
CHECKPOINT_THRESHOLD = "1GB"
# The writer's own connection (never a caller's: `threads` is a database-wide setting). One thread:
# a 512-row insert runs ~30% faster than on two (less coordination), and the export thread, building
# the next rows meanwhile, keeps the other core (measured with benchmarks/bench_exporter.py).
_WRITER_SETTINGS: Final = (
    f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'",
    "SET threads = 1",
    _storage.REPLACEMENT_SCANS,
)


class JournaledWriter:
    """Journals each batch and commits the journal from a writer thread (see the module docstring).

    Args:
        path: The DuckDB file.
        journal: Its spool directory (the journal).
        committer: Commits batches on the held connection.
        lock_timeout_s: How long one attempt waits for a busy file.
        hold_idle_s: Release the file after this long without a batch.
        hold_max_s: Release the file after holding it this long, even while batches keep coming.
    """

    def __init__(
        self,
        path: Path,
        journal: Spool,
        committer: Committer,
        *,
        lock_timeout_s: float,
        hold_idle_s: float,
        hold_max_s: float,
    ) -> None:
        self.path = path
        self._journal = journal
        self._committer = committer
        self._lock_timeout_s = lock_timeout_s
        self._health = WriteHealth(path, journal.directory)
        self._lease = WriterLease(
            path,
            hold_idle_s=hold_idle_s,
            hold_max_s=hold_max_s,
            settings=_WRITER_SETTINGS,
            on_open=self._opened,
        )
        # A batch that cannot be journaled is committed by the exporting thread itself.
        self._direct = DirectWriter(
            self._lease, committer, journal, self._health, lock_timeout_s=lock_timeout_s, replay_spool=False
        )
        self._shut = False
        self._fork_locked = False
        self._init_process_state()
        lifecycle.register_fork_hooks(self)
        lifecycle.register_live(self)
        if self._adopt_journal_files():
            # Start-up replay of batches a previous run could not write: by the writer thread, so a
            # busy file never delays the application's start.
            with self._backlog.cond:
                self._ensure_thread()

    def _init_process_state(self) -> None:
        # The lease's lock guards DuckDB use; the backlog's cond guards the accepted batches and the
        # writer's schedule. Lock order: the lease's, then the backlog's; never the other way round.
        self._backlog = Backlog()
        self._thread: threading.Thread | None = None
        self._stopping = False
        # Deadlines of the flushes waiting now: until the last, the writer waits for a busy file.
        self._flushes: list[float] = []
        self._health.degraded = False
        self._pid = os.getpid()

    # -- the Writer interface ------------------------------------------------------------------------

    @property
    def uncommitted_rows(self) -> int:
        with self._backlog.cond:
            return self._backlog.rows()

    def batch_coming(self) -> bool:
        """Rows of a batch are being built: keep the file meanwhile (not counted as idle).

        Returns:
            False after shutdown (at exit too): the batch is refused.
        """
        if self._shut:
            return False
        if os.getpid() != self._pid:
            self._forked_without_hook()
        self._lease.busy_until(time.monotonic() + _BUILD_GRACE_S)
        return True

    def accept(self, batch: RowBatch) -> SpanExportResult:
        """Journal ``batch`` for the writer thread; commit it here if it cannot be journaled."""
        if batch.empty:
            return SpanExportResult.SUCCESS
        try:
            path = self._journal.write(batch, durable=False)
        except OSError as exc:
            log_once(
                _logger,
                "exporter.journal",
                logging.WARNING,
                "could not journal a batch in %s (%r); writing it to DuckDB directly",
                self._journal.directory,
                exc,
            )
            with self._lease.lock:
                return self._direct.write(batch, quick=self._health.degraded)
        with self._backlog.cond:
            if self._stopping:  # shut down meanwhile: the journal file waits for the next exporter
                return SpanExportResult.FAILURE
            self._backlog.add(path, batch)
            self._lease.busy_until(time.monotonic())
            self._ensure_thread()
            self._backlog.cond.notify_all()
        return SpanExportResult.SUCCESS

    def flush(self, timeout_s: float) -> bool:
        """Wait until every batch accepted so far is committed (or set aside); False on timeout."""
        deadline = time.monotonic() + timeout_s
        self._adopt_journal_files()
        backlog = self._backlog
        with backlog.cond:
            last = backlog.last()
            if last is None:
                return True
            if self._stopping:
                return False  # shut down: what is left waits for the next exporter on the file
            backlog.retry_at = 0.0  # one attempt now, whatever the back-off
            self._flushes.append(deadline)
            try:
                self._ensure_thread()
                backlog.cond.notify_all()
                while last in backlog:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    backlog.cond.wait(remaining)
                return True
            finally:
                self._flushes.remove(deadline)

    def shutdown(self) -> None:
        with self._backlog.cond:
            if self._shut:
                return
            self._shut = True
        drained = self.flush(self._lock_timeout_s)
        with self._backlog.cond:
            self._stopping = True
            self._backlog.cond.notify_all()
            thread, left = self._thread, len(self._backlog)
        _storage.join_release_thread(thread)
        with self._lease.lock:
            self._lease.release()
        lifecycle.unregister_live(self)
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

    # -- what the process-wide hooks need (lifecycle.LiveWriter) -------------------------------------

    @property
    def journal_token(self) -> str:
        return self._journal.token

    def may_drain_for_reader(self) -> bool:
        """Not from the writer thread itself, nor while the file cannot be written (the reader waits)."""
        return self._thread is not threading.current_thread() and not self._health.degraded

    def before_fork(self) -> None:
        # Close the file before fork. Bounded wait so a stuck commit cannot hang fork(); then the
        # child only journals.
        if self._lease.lock.acquire(timeout=self._lock_timeout_s + 1.0):
            self._lease.release()
            self._fork_locked = True
        else:
            self._fork_locked = False

    def after_fork_in_parent(self) -> None:
        if self._fork_locked:
            self._lease.lock.release()

    def after_fork_in_child(self) -> None:
        self._reset_in_child(parent_held_it=not self._fork_locked)

    def _forked_without_hook(self) -> None:
        # os.fork from a C extension skips the at-fork hooks: the child inherited the parent's
        # accepted batches (the parent commits them) and maybe its open connection (never touched).
        self._reset_in_child(parent_held_it=self._lease.held)

    def _reset_in_child(self, *, parent_held_it: bool) -> None:
        self._lease.after_fork_in_child(parent_held_it=parent_held_it)
        self._committer.after_fork_in_child()
        self._init_process_state()
        self._journal.renew_token()  # the parent adopts what this child leaves

    # -- the writer thread ---------------------------------------------------------------------------

    def _opened(self) -> None:
        with self._backlog.cond:
            self._ensure_thread()  # it releases the file when due

    def _ensure_thread(self) -> None:
        """Start the writer thread if it is not running (the caller holds the backlog's cond)."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = start_release_thread(_writer_loop, self, "otel-llm-cost-duckdb-writer")

    def _adopt_journal_files(self) -> bool:
        """Queue journal files nobody in this process owns (left by an earlier run); True: work waits."""
        on_disk = self._journal.pending()
        live = lifecycle.live_tokens()  # this process's writers (this one included) commit their own
        with self._backlog.cond:
            self._backlog.adopt([path for path in on_disk if Spool.owner(path) not in live])
            return bool(self._backlog)

    def step(self) -> bool:
        """Wait for work, commit one group, release the file when due. False: the thread should end."""
        with self._backlog.cond:
            if self._thread is not threading.current_thread() or self._pid != os.getpid():
                return False
            self._wait_for_work()
            stop = self._stopping and not self._backlog.ready(time.monotonic())
        with self._lease.lock:
            if stop:
                self._lease.release()
                return False
            self._commit_next()
            if self._lease.due(time.monotonic()):
                if self._lease.reader_waiting():
                    self._commit_backlog_for_reader()
                elif self._lease.idle(time.monotonic()) and not self._backlog:  # never while busy
                    self._committer.roll_up(self._lease.acquire(0.0), _IDLE_ROLLUP_ROWS)
                self._lease.release()
        return True

    def _wait_for_work(self) -> None:
        now = time.monotonic()
        if self._backlog.ready(now) or self._stopping:
            return
        if self._lease.held:
            wait = _POLL_S
        elif self._backlog:
            wait = max(self._backlog.retry_at - now, 0.001)
        else:
            wait = 1.0
        self._backlog.cond.wait(wait)

    def _commit_backlog_for_reader(self) -> None:
        # Let the reader see what was accepted before it asked (within a second: a huge backlog must
        # not keep it out until its own timeout).
        budget = time.monotonic() + _READER_BACKLOG_S
        with self._backlog.cond:
            last = self._backlog.last()
        while (
            last is not None and last in self._backlog and time.monotonic() < budget and self._commit_next()
        ):
            pass

    def _commit_next(self) -> bool:
        """Commit the next group of accepted batches in one transaction (the caller holds the lease's lock).

        Returns:
            True when a group was committed (or set aside as undecodable or rejected).
        """
        with self._backlog.cond:
            group = self._backlog.next_group() if self._backlog.ready(time.monotonic()) else []
        if not group:
            return False
        loaded, done = _load(group)
        if loaded:
            try:
                cursor = self._lease.acquire(self._attempt_wait_s())
                try:
                    self._committer.commit_group(cursor, loaded)
                finally:
                    self._lease.done_with(cursor)
            except Exception as exc:
                self._lease.release_failed(exc)  # unknown state (a lock error: never opened)
                self._health.failed(exc)
                with self._backlog.cond:
                    self._backlog.attempt_failed()
                self._backlog.forget(done)
                return False
            self._health.succeeded("waiting batches were stored")
        for path, _ in loaded:
            remove_committed(path)
        with self._backlog.cond:
            self._backlog.attempt_succeeded()
        self._backlog.forget(done + [path for path, _ in loaded])
        return True

    def _attempt_wait_s(self) -> float:
        # Wait for a busy file up to lock_timeout_s per attempt (never longer: shutdown and fork wait
        # for an attempt to end); once degraded, only while someone is flushing.
        if not self._health.degraded:
            return self._lock_timeout_s
        with self._backlog.cond:
            flushing_s = max(max(self._flushes, default=0.0) - time.monotonic(), 0.0)
        return min(self._lock_timeout_s, flushing_s)


def _load(group: list[tuple[Path, RowBatch | None]]) -> tuple[list[tuple[Path, RowBatch]], list[Path]]:
    """The group's rows (read back from their files when not in memory), and the files already done."""
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
                set_aside(path, "exporter.spool_corrupt", "an undecodable spool file", exc)
                done.append(path)
                continue
        loaded.append((path, batch))
    return loaded, done


def _writer_loop(ref: weakref.ReferenceType[JournaledWriter]) -> None:
    step_while_alive(
        ref,
        JournaledWriter.step,
        logger=_logger,
        log_key="exporter.writer",
        what="DuckDB writer thread",
        pause_s=_ERROR_PAUSE_S,
    )
