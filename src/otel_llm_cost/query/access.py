"""How a CostStore reaches the data: a file it holds only while querying, or a connection it was given.

DuckDB allows one read-write process per file, and while any process holds a file no other process can
open it, not even read-only. A store on a path therefore holds the file only while it runs queries
(:class:`~otel_llm_cost.storage.lease.FileHolder`), so that the exporting application can write in
between; a connection passed in by the caller is used as given and never closed.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import duckdb

from otel_llm_cost.exceptions import StorageError
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage.lake import LakeTarget, open_lake, use_lake
from otel_llm_cost.storage.lake_lock import CommitLock
from otel_llm_cost.storage.lease import FileHolder

__all__ = ["ConnectionAccess", "FileAccess", "LakeAccess", "StoreAccess"]

_LAKE_LOCK_WAIT_S = 300.0  # a write waits for the commits in flight, however many writers there are


class StoreAccess(Protocol):
    """What a CostStore needs from its data source."""

    @property
    def path(self) -> Path | None:
        """The file, or None for a caller's connection."""

    @property
    def caller_connection(self) -> duckdb.DuckDBPyConnection | None:
        """The caller's connection (results' relations live on it), or None for a file."""

    @property
    def held(self) -> bool:
        """True while the file is open (always False for a caller's connection)."""

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor on the caller's connection; StorageError for a file."""

    def connect(self) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A cursor valid inside the block (a file is held for the block)."""

    def close(self) -> None:
        """Release the file now; a caller's connection stays open."""

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Held around a write so that no other writer commits in between (a lake's commit lock)."""

    def interrupt(self, thread_id: int) -> bool:
        """Cancel the query thread ``thread_id`` runs now; False when it runs none."""


class FileAccess:
    """A DuckDB file, opened for queries and released soon after the last one."""

    caller_connection: None = None

    def __init__(
        self, path: Path, *, read_only: bool, hold_idle_s: float, hold_max_s: float, timeout_s: float
    ) -> None:
        # An exporter of this process may have accepted batches for a file it has not created yet.
        _storage.commit_pending(path, timeout_s)
        if not path.is_file():
            raise StorageError(f"no DuckDB file at {path}")
        self.path = path
        self.holder = FileHolder(
            path, read_only=read_only, hold_idle_s=hold_idle_s, hold_max_s=hold_max_s, timeout_s=timeout_s
        )
        # Open once now: a missing table or a newer schema is reported here, not at the first report.
        with self.holder.cursor():
            pass
        self._running: dict[int, duckdb.DuckDBPyConnection] = {}
        self._lock = threading.Lock()

    @property
    def held(self) -> bool:
        return self.holder.held

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        raise StorageError(
            "a CostStore opened on a path holds the file only while it queries: "
            "use `with store.connect() as connection:` for your own SQL"
        )

    def connect(self) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]:
        return self._tracked()

    @contextlib.contextmanager
    def _tracked(self) -> Iterator[duckdb.DuckDBPyConnection]:
        # Each thread's cursor is known while it runs, so that another thread can cancel its query.
        ident = threading.get_ident()
        with self.holder.cursor() as cursor:
            with self._lock:
                self._running[ident] = cursor
            try:
                yield cursor
            finally:
                with self._lock:
                    self._running.pop(ident, None)

    def interrupt(self, thread_id: int) -> bool:
        with self._lock:
            cursor = self._running.get(thread_id)
            if cursor is not None:
                cursor.interrupt()
        return cursor is not None

    def close(self) -> None:
        self.holder.close()

    def writing(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # the holder's read-write handle already excludes every writer


class ConnectionAccess:
    """The caller's connection, with a cursor per thread (a shared connection refuses concurrent calls)."""

    path: None = None
    held = False

    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        self.caller_connection = connection
        self._local = threading.local()
        self._cursors: dict[int, duckdb.DuckDBPyConnection] = {}

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        cursor: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self.caller_connection.cursor()
            self._local.cursor = cursor
            self._cursors[threading.get_ident()] = cursor
        return cursor

    def connect(self) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]:
        return contextlib.nullcontext(self.connection)

    def close(self) -> None:
        """Nothing to release: the caller owns the connection."""

    def writing(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # the caller's connection: the caller orders its writes

    def interrupt(self, thread_id: int) -> bool:
        cursor = self._cursors.get(thread_id)
        if cursor is not None:
            cursor.interrupt()
        return cursor is not None


class LakeAccess(ConnectionAccess):
    """A DuckLake: an in-memory connection with the lake attached, owned (and closed) by the store.

    No lease: a lake has no single-writer file, so readers and any number of writers run at once, and
    each query reads the lake's latest committed snapshot. Read-only unless asked otherwise: the lake
    is attached so that DuckDB refuses any write.
    """

    def __init__(self, target: LakeTarget, *, read_only: bool) -> None:
        super().__init__(open_lake(target, create=False, read_only=read_only))
        self.lake = target

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        cursor: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self.caller_connection.cursor()
            use_lake(cursor)  # a cursor starts on the in-memory database, not the connection's choice
            self._local.cursor = cursor
            self._cursors[threading.get_ident()] = cursor
        return cursor

    def writing(self) -> contextlib.AbstractContextManager[None]:
        return _commit_lock_held(self.lake)

    def close(self) -> None:
        self.caller_connection.close()


@contextlib.contextmanager
def _commit_lock_held(lake: LakeTarget) -> Iterator[None]:
    """The writers' commit lock (as ``lake maintain`` and ``budgets check --fire`` take it)."""
    lock = CommitLock(lake.libpq_dsn)
    try:
        with lock.held(_LAKE_LOCK_WAIT_S):
            yield
    finally:
        lock.close()
