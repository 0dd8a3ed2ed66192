"""Holding a DuckDB file only while it is used, so that another process can take it in between.

DuckDB allows one read-write process per file, and a second process cannot even open it read-only
while the first holds it. Both sides therefore hold the file only while busy: the reader
(:class:`FileHolder`, behind ``CostStore`` on a path) opens it for queries, the writer
(:class:`WriterLease`, behind the exporter) when a batch arrives; each keeps it while work keeps
coming (reopening costs ~15 ms, closing checkpoints, ~20 ms) and lets go after ``hold_idle_s`` without
use or ``hold_max_s`` of continuous holding (:class:`HoldTimer`), from a daemon release thread
(:func:`start_release_thread`). A reader kept waiting drops a ``<db>.read-request`` file
(``connect``); the writer lets go as soon as it sees one.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final, TypeVar

import duckdb

from otel_llm_cost._logging import log_once
from otel_llm_cost.exceptions import StorageCorruptError, StorageError
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage.corrupt import file_identity, is_corrupt_error, set_aside

__all__ = ["FileHolder", "HoldTimer", "WriterLease", "start_release_thread"]

_logger = logging.getLogger("otel_llm_cost.exporter")
_T = TypeVar("_T")

# A writer waiting for the file retries every 25-50 ms (_storage backoff cap); a reader that has held
# the file for hold_max_s stays out this long before reopening so that a waiting writer gets in.
_WRITER_GAP_S: Final = 0.06


class HoldTimer:
    """When a held file is due back: ``hold_idle_s`` without use, or ``hold_max_s`` of holding."""

    __slots__ = ("held_since", "hold_idle_s", "hold_max_s", "last_use")

    def __init__(self, hold_idle_s: float, hold_max_s: float) -> None:
        self.hold_idle_s = hold_idle_s
        self.hold_max_s = hold_max_s
        self.held_since = 0.0
        self.last_use = 0.0

    def opened(self, now: float) -> None:
        self.held_since = self.last_use = now

    def idle_left(self, now: float) -> float:
        """Seconds until the idle limit (<= 0: reached)."""
        return self.hold_idle_s - (now - self.last_use)

    def held_too_long(self, now: float) -> bool:
        return now - self.held_since >= self.hold_max_s

    def due(self, now: float) -> bool:
        return self.idle_left(now) <= 0 or self.held_too_long(now)


def start_release_thread(
    loop: Callable[[weakref.ReferenceType[_T]], None], owner: _T, name: str
) -> threading.Thread:
    """Start the daemon thread that lets go of ``owner``'s file when due.

    It holds ``owner`` only weakly (an owner nobody uses any more is collected, and its thread ends);
    stop it with :func:`otel_llm_cost.storage.connect.join_release_thread` after telling it to end.
    """
    thread = threading.Thread(target=loop, args=(weakref.ref(owner),), name=name, daemon=True)
    thread.start()
    return thread


class FileHolder:
    """The file handle of a path-backed CostStore: opened for queries, closed soon after the last one.

    Reopening costs ~15 ms, so back-to-back queries (a CLI report, a notebook cell) share one handle; a
    background thread closes it ``hold_idle_s`` after the last query ends. The thread exists only while
    the file is held.
    """

    def __init__(
        self, path: Path, *, read_only: bool, hold_idle_s: float, hold_max_s: float, timeout_s: float
    ) -> None:
        self.path = path
        self.read_only = read_only
        self._timer = HoldTimer(hold_idle_s, hold_max_s)
        self.timeout_s = timeout_s
        self.opens = 0  # how many times the file was opened (tests and benchmarks read it)
        self._cond = threading.Condition()
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._active = 0
        self._closed = False
        self._closer: threading.Thread | None = None
        _LIVE_HOLDERS.add(self)

    @property
    def hold_idle_s(self) -> float:
        """Close the file this long after the last query ends (0: at once)."""
        return self._timer.hold_idle_s

    @property
    def hold_max_s(self) -> float:
        """Reopen (letting a waiting writer in between) after holding the file this long."""
        return self._timer.hold_max_s

    @property
    def held(self) -> bool:
        """True while the file is open."""
        return self._connection is not None

    @contextlib.contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor on the file for one query or block of queries (opens the file if needed)."""
        with self._cond:
            if self._closed:
                raise StorageError(f"this CostStore on {self.path} is closed")
            if (
                self._connection is not None
                and self._active == 0
                and self._timer.held_too_long(time.monotonic())
            ):
                self._close()
                time.sleep(_WRITER_GAP_S)  # under the lock: no other thread of ours reopens meanwhile
            if self._connection is None:
                self._open()
            assert self._connection is not None  # noqa: S101 - _open sets it or raises
            self._active += 1
            connection = self._connection
        try:
            cursor = connection.cursor()
            try:
                yield cursor
            finally:
                cursor.close()
        finally:
            with self._cond:
                self._active -= 1
                self._timer.last_use = time.monotonic()
                if self._active == 0 and self.hold_idle_s == 0:
                    self._close()
                else:
                    self._cond.notify_all()

    def close(self) -> None:
        """Close the file now; later queries raise StorageError."""
        with self._cond:
            self._closed = True
            self._close()
            self._cond.notify_all()
            closer = self._closer
        _storage.join_release_thread(closer)  # no daemon thread may outlive close() at exit

    def _open(self) -> None:
        self._connection = _storage.connect(self.path, read_only=self.read_only, timeout_s=self.timeout_s)
        self.opens += 1
        self._timer.opened(time.monotonic())
        if self.hold_idle_s > 0 and (self._closer is None or not self._closer.is_alive()):
            self._closer = start_release_thread(_closer_loop, self, "otel-llm-cost-store-release")

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _release_if_idle(self) -> bool:
        """Close the file when no query runs and none ran for hold_idle_s; False once nothing is held."""
        if self._connection is None:
            return False
        if self._active == 0:
            idle_left = self._timer.idle_left(time.monotonic())
            if idle_left <= 0:
                self._close()
                return False
            self._cond.wait(idle_left)
        else:
            self._cond.wait()  # woken when a query ends
        return True


_LIVE_HOLDERS: weakref.WeakSet[FileHolder] = weakref.WeakSet()


@atexit.register
def _close_at_exit() -> None:
    # The closer thread is a daemon: without this, a handle still open at exit is never closed
    # (duckdb then reports leaked objects on stderr).
    for holder in list(_LIVE_HOLDERS):
        holder.close()


def _closer_loop(ref: weakref.ReferenceType[FileHolder]) -> None:
    while True:
        holder = ref()
        if holder is None:
            return
        with holder._cond:
            if holder._closer is not threading.current_thread() or not holder._release_if_idle():
                if holder._closer is threading.current_thread():
                    holder._closer = None
                return
        del holder


# How often a writer waiting for a reader's turn checks the read request again.
_READER_POLL_S: Final = 0.02
# What the checkpoint run by a release may allocate beyond the memory DuckDB holds already (the rows
# appended since the last one). That checkpoint compresses those rows and merges them into the row group
# before them, rewriting up to a full one (122,880 rows): with no limit it took ~340 MiB on top of the
# process, whose RSS then jumped to 2.3-2.7x its steady state while streaming 1M spans; DuckDB spills
# what is beyond the limit to its temporary directory, for about the same CPU (measured with
# benchmarks/bench_pipeline.py --case 1x1000000).
_CHECKPOINT_EXTRA_BYTES: Final = 128 * 2**20
_MEMORY_HELD: Final = "SELECT sum(memory_usage_bytes) FROM duckdb_memory()"


class WriterLease:
    """The writer's side: the file opened when a batch is committed, released when due.

    ``lock`` guards every use of the held connection (commit, release, fork); hold it around
    :meth:`acquire` ... :meth:`done_with` and :meth:`release`. Whoever commits also decides when to
    let go (:meth:`due`): the writer thread checks it between commits.

    Args:
        path: The DuckDB file.
        hold_idle_s: Release after this long without a commit.
        hold_max_s: Release after holding the file this long, even while batches keep coming.
        settings: Statements run on each opening (the writer's own connection settings).
        on_open: Called (lock held) each time the file is opened: starts whatever releases it.
        checkpoint_extra_bytes: What the checkpoint of a release may allocate beyond the memory
            DuckDB holds when it starts (DuckDB spills the rest).
    """

    def __init__(
        self,
        path: Path,
        *,
        hold_idle_s: float,
        hold_max_s: float,
        settings: tuple[str, ...],
        on_open: Callable[[], None],
        checkpoint_extra_bytes: int = _CHECKPOINT_EXTRA_BYTES,
    ) -> None:
        self.path = path
        self._settings = settings
        self._checkpoint_extra_bytes = checkpoint_extra_bytes
        self._on_open = on_open
        self.lock = threading.Lock()
        self._timer = HoldTimer(hold_idle_s, hold_max_s)
        self._held: duckdb.DuckDBPyConnection | None = None
        self._identity: tuple[int, int] | None = None
        # Set in a child forked while the parent held the file: the child never writes it.
        self.fork_unsafe = False

    @property
    def held(self) -> bool:
        """True while the file is open."""
        return self._held is not None

    def acquire(self, timeout_s: float) -> duckdb.DuckDBPyConnection:
        """The held connection, opening the file (waiting up to ``timeout_s``) when needed.

        Raises:
            StorageError: The file cannot be opened (``StorageLockedError``: held past ``timeout_s``),
                or this process was forked while its parent held it.
        """
        if self.fork_unsafe:
            raise StorageError(
                "this process was forked while its parent held the DuckDB file; its batches stay in the "
                "journal, where the parent (or the next exporter on the file) stores them"
            )
        if self._held is None:
            deadline = time.monotonic() + timeout_s
            # A reader asked for the file: let it in before taking the file back. Sleep with the lock
            # held: another exporting thread must not open the file meanwhile.
            while _storage.read_requested(self.path) and time.monotonic() < deadline:
                time.sleep(_READER_POLL_S)
            identity = file_identity(self.path)
            try:
                held = _storage.connect(
                    self.path, timeout_s=max(0.0, deadline - time.monotonic()), see_pending=False
                )
            except StorageCorruptError as exc:
                # A damaged file never opens again: move it aside and write a fresh one.
                set_aside(self.path, exc, identity)
                held = _storage.connect(
                    self.path, timeout_s=max(0.0, deadline - time.monotonic()), see_pending=False
                )
            self._identity = file_identity(self.path)
            try:
                for setting in self._settings:
                    held.execute(setting)
            except BaseException:
                held.close()
                raise
            self._held = held
            self._timer.opened(time.monotonic())
            self._on_open()
        return self._held

    def done_with(self, cursor: duckdb.DuckDBPyConnection) -> None:
        """A commit on ``cursor`` ended: the file is in use until ``hold_idle_s`` from now."""
        if cursor is self._held:
            self._timer.last_use = time.monotonic()

    def busy_until(self, when: float) -> None:
        """Not idle before ``when`` (rows for the next commit are being built)."""
        self._timer.last_use = when

    def idle(self, now: float) -> bool:
        """Whether the held file went unused for ``hold_idle_s`` (not merely held for ``hold_max_s``)."""
        return self._held is not None and self._timer.idle_left(now) <= 0

    def reader_waiting(self) -> bool:
        """Whether a reader (in any process) asked for the file."""
        return _storage.read_requested(self.path)

    def due(self, now: float) -> bool:
        """Whether the held file should be let go now (idle, held too long, or a reader asked)."""
        return self._held is not None and (self._timer.due(now) or self.reader_waiting())

    def release(self) -> None:
        """Close the file (checkpoints, in bounded memory: it is compact and readable by the next opener)."""
        held, self._held = self._held, None
        if held is not None:
            try:
                row = held.execute(_MEMORY_HELD).fetchone()
                used = int(row[0] or 0) if row else 0
                held.execute(f"SET memory_limit = '{used + self._checkpoint_extra_bytes}B'")
            except duckdb.Error as exc:  # the checkpoint runs unbounded then
                log_once(_logger, "exporter.checkpoint_memory", logging.WARNING, "%s: %r", self.path, exc)
            try:
                held.close()
            except duckdb.Error as exc:
                log_once(_logger, "exporter.close", logging.WARNING, "closing %s failed: %r", self.path, exc)

    def release_failed(self, exc: BaseException) -> None:
        """:meth:`release` after a failed commit; a file found damaged (truncated) is set aside."""
        identity = self._identity if self._held is not None else None
        self.release()
        if is_corrupt_error(exc):
            set_aside(self.path, exc, identity)

    def after_fork_in_child(self, *, parent_held_it: bool) -> None:
        """Forget the inherited connection without closing it (that would write), and any held lock.

        Args:
            parent_held_it: The parent may have held the file at fork: this process never writes it.
        """
        held, self._held = self._held, None
        if held is not None:
            _ABANDONED_AFTER_FORK.append(held)
        self.lock = threading.Lock()
        self.fork_unsafe = parent_held_it


# Connections a forked child inherited open: kept referenced so their finalizers never run (and
# never checkpoint the parent's file from the child).
_ABANDONED_AFTER_FORK: list[duckdb.DuckDBPyConnection] = []
