"""The one module that opens DuckDB files: locking, schema creation and migration, bulk inserts.

Everything else (exporter, CostStore, budgets, CLI) goes through :func:`connect`, so a DuckLake (or
other) backend can later be added here without changing any caller.

Why the retry loop: DuckDB lets one process hold a file read-write, and while it does, no other process
can open it, not even read-only (DuckDB raises "Could not set lock on file ... Conflicting lock is
held"). The exporter therefore holds the file only while it writes (see ``lease.py``), and both sides
retry with exponential backoff and jitter. A reader that has to wait also drops a small
``<db>.read-request`` file: a writer that sees it releases the file at once instead of at its next idle
point, so ``otel-llm-cost report`` does not wait behind a busy application.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from otel_llm_cost.exceptions import SchemaVersionError, StorageError, StorageLockedError
from otel_llm_cost.storage import rollup as _rollup
from otel_llm_cost.storage import schema as _schema
from otel_llm_cost.storage import sessions as _sessions
from otel_llm_cost.storage.corrupt import is_corrupt_error, open_error
from otel_llm_cost.storage.ranges import in_start_range
from otel_llm_cost.storage.sandbox import SANDBOX_CONFIG, lock_down

__all__ = [
    "REPLACEMENT_SCANS",
    "add_before_read_hook",
    "commit_pending",
    "connect",
    "ensure_schema",
    "insert_new_rows",
    "insert_rows",
    "is_lock_error",
    "read_request_path",
    "read_requested",
    "schema_version",
]

_VERSION_KEY = "schema_version"
# Backoff bounds: the first retry comes quickly (a writer's hold is usually a few ms), the cap keeps a
# waiting reader polling often enough to catch the gap between two writer holds.
_FIRST_DELAY_S = 0.005
_MAX_DELAY_S = 0.05
# A read request older than this came from a reader that died; writers ignore it.
_READ_REQUEST_STALE_S = 30.0


# hook(path, timeout_s), called before a connection opens ``path`` (see ``connect(see_pending=)``): the
# exporter commits what this process's exporters accepted for that file, so that a query sees it.
_BEFORE_READ: list[Callable[[str, float], None]] = []


def add_before_read_hook(hook: Callable[[str, float], None]) -> None:
    """Call ``hook(path, timeout_s)`` before :func:`connect` opens a file (it must not raise)."""
    _BEFORE_READ.append(hook)


def commit_pending(path: str | os.PathLike[str], timeout_s: float) -> None:
    """Let this process's exporters on ``path`` commit what they accepted (see ``connect(see_pending=)``)."""
    for hook in tuple(_BEFORE_READ):
        hook(os.fspath(path), timeout_s)


def read_request_path(path: str | os.PathLike[str]) -> Path:
    """The file a waiting reader creates so that the writer releases the database early."""
    return Path(f"{os.fspath(path)}.read-request")


def read_requested(path: str | os.PathLike[str]) -> bool:
    """True when a reader is waiting for ``path`` (a fresh read-request file exists)."""
    try:
        mtime = os.stat(read_request_path(path)).st_mtime
    except OSError:
        return False
    return time.time() - mtime < _READ_REQUEST_STALE_S


def is_lock_error(exc: BaseException) -> bool:
    """True when ``exc`` means another connection holds the file (worth retrying), not a real failure."""
    message = str(exc)
    if isinstance(exc, duckdb.IOException):
        return "Could not set lock" in message or "Conflicting lock" in message
    # Same process, other configuration (a read-only connection while the exporter holds it read-write).
    return isinstance(exc, duckdb.ConnectionException) and "different configuration" in message


def _backoff_delays(timeout_s: float) -> Iterator[float]:
    """Sleep durations (exponential, full jitter) whose sum stays within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    cap = _FIRST_DELAY_S
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        yield min(remaining, random.uniform(cap / 2, cap))  # noqa: S311 - jitter, not security
        cap = min(cap * 2, _MAX_DELAY_S)


def _open(
    path: str, read_only: bool, timeout_s: float, *, signal_readers: bool, sandbox: bool = True
) -> duckdb.DuckDBPyConnection:
    delays = _backoff_delays(timeout_s)
    requested = False
    try:
        while True:
            try:
                if read_only and sandbox:
                    return duckdb.connect(path, read_only=True, config=SANDBOX_CONFIG)
                return duckdb.connect(path, read_only=read_only)
            except duckdb.Error as exc:
                if not is_lock_error(exc):
                    raise open_error(path, exc) from exc
                delay = next(delays, None)
                if delay is None:
                    raise StorageLockedError(
                        f"DuckDB file {path!r} is held by another process (or by a connection with another "
                        f"configuration in this one) for more than {timeout_s:g} s: {exc}"
                    ) from exc
                if signal_readers and not requested:
                    with contextlib.suppress(OSError):
                        read_request_path(path).touch()
                    requested = True
                time.sleep(delay)
    finally:
        if requested:
            with contextlib.suppress(OSError):
                read_request_path(path).unlink()


def connect(
    path: str | os.PathLike[str],
    *,
    read_only: bool = False,
    timeout_s: float = 5.0,
    see_pending: bool = True,
    sandbox: bool = True,
) -> duckdb.DuckDBPyConnection:
    """Open an otel-llm-cost DuckDB file, waiting while another process holds it.

    Read-write connections create the tables or migrate an older file. Read-only connections check the
    version; an older file is migrated first through a short read-write connection. Timestamps are
    returned in UTC (the session time zone is set to UTC).

    Args:
        path: The DuckDB file.
        read_only: Open for queries only (what CostStore, budgets and the CLI do). Readers signal a busy
            writer to release the file early.
        timeout_s: How long to retry while the file is locked by another process.
        see_pending: First let this process's exporters on the file commit the batches they accepted
            (within ``timeout_s``), so that the connection sees them (the exporter itself: False).
        sandbox: Read-only: no file, URL or extension access, configuration locked (``sandbox.py``).
            ``False`` only for trusted SQL that writes a file (``otel-llm-cost export``'s ``COPY``).

    Returns:
        A connection the caller owns and must close (hold it briefly: while it is open, the exporting
        application cannot write and spools its batches).

    Raises:
        StorageLockedError: The file is held by another process past ``timeout_s`` (a StorageError).
        StorageCorruptError: The file is damaged (truncated, overwritten): see ``storage/corrupt.py``.
        StorageError: The file is missing (read-only) or unreadable.
        SchemaVersionError: The file was written by a newer otel-llm-cost.
    """
    if timeout_s < 0:
        raise ValueError(f"timeout_s must be >= 0, got {timeout_s!r}")
    target = os.fspath(path)
    deadline = time.monotonic() + timeout_s
    if see_pending:
        commit_pending(target, timeout_s)
    if read_only and not os.path.exists(target):
        raise StorageError(f"DuckDB file {target!r} does not exist (nothing has been exported to it yet)")
    sandbox = sandbox and read_only
    con = _open(
        target, read_only, max(0.0, deadline - time.monotonic()), signal_readers=read_only, sandbox=sandbox
    )
    try:
        if read_only:
            version = schema_version(con)
            if version is not None and version < _schema.SCHEMA_VERSION:
                # Readers cannot migrate; do it once through a short read-write connection, then reopen.
                con.close()
                remaining = max(0.0, deadline - time.monotonic())
                with contextlib.closing(_open(target, False, remaining, signal_readers=False)) as writer:
                    ensure_schema(writer)
                remaining = max(0.0, deadline - time.monotonic())
                con = _open(target, True, remaining, signal_readers=True, sandbox=sandbox)
            _check_not_newer(schema_version(con), target)
        else:
            ensure_schema(con)
        if sandbox:
            lock_down(con)
        else:
            con.execute("SET TimeZone = 'UTC'")
    except BaseException as exc:
        con.close()
        if is_corrupt_error(exc):  # the header was readable, the tables were not: truncated
            raise open_error(target, exc) from exc
        raise
    return con


def schema_version(con: duckdb.DuckDBPyConnection) -> int | None:
    """The version recorded in the file, or None for a file otel-llm-cost never wrote to."""
    has_meta = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND schema_name = current_schema()",
        [_schema.META_TABLE],
    ).fetchone()
    if not has_meta or not has_meta[0]:
        return None
    row = con.execute(f"SELECT value FROM {_schema.META_TABLE} WHERE key = ?", [_VERSION_KEY]).fetchone()
    return None if row is None else int(row[0])


def _check_not_newer(version: int | None, where: str) -> None:
    if version is not None and version > _schema.SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{where} has schema version {version}, written by a newer otel-llm-cost; this one understands "
            f"version {_schema.SCHEMA_VERSION} at most. Upgrade otel-llm-cost to read or write it."
        )


def _ddl() -> tuple[str, ...]:
    # Every CREATE_* statement in _schema is idempotent (IF NOT EXISTS), so a table added by a later
    # module (budget_alerts) appears in existing files without a version bump.
    tables = tuple(
        value
        for name, value in vars(_schema).items()
        if name.startswith("CREATE_") and isinstance(value, str) and name != "CREATE_META"
    )
    return (*tables, _rollup.CREATE_ROLLUP, _rollup.CREATE_ROLLUP_STATE, *_sessions.CREATE)


def ensure_schema(con: duckdb.DuckDBPyConnection, *, where: str = "the DuckDB file") -> None:
    """Create the tables of a new file, or migrate an older one, in one transaction.

    Two connections of one process creating a new file's tables at once conflict ("write-write
    conflict"): the loser retries and then finds them.

    Raises:
        SchemaVersionError: The file is newer than this package, or a migration step is missing.
    """
    for delay in (0.01, 0.02, 0.05, 0.1, None):
        try:
            _ensure_schema_once(con, where)
            return
        except duckdb.TransactionException as exc:
            if delay is None or "conflict" not in str(exc):
                raise
            time.sleep(delay)


def _ensure_schema_once(con: duckdb.DuckDBPyConnection, where: str) -> None:
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(_schema.CREATE_META)
        version = schema_version(con)
        _check_not_newer(version, where)
        if version is None:
            for statement in _ddl():
                con.execute(statement)
        else:
            for step in range(version, _schema.SCHEMA_VERSION):
                if step not in _schema.MIGRATIONS:
                    raise SchemaVersionError(
                        f"{where} has schema version {version} and no migration from version {step} exists"
                    )
                for statement in _schema.MIGRATIONS[step]:
                    con.execute(statement)
            for statement in _ddl():
                con.execute(statement)
        if version != _schema.SCHEMA_VERSION:
            con.execute(
                f"INSERT OR REPLACE INTO {_schema.META_TABLE} VALUES (?, ?)",
                [_VERSION_KEY, str(_schema.SCHEMA_VERSION)],
            )
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):  # a failed COMMIT has ended the transaction already
            con.execute("ROLLBACK")
        raise


def _new_rows(con: duckdb.DuckDBPyConnection, table_name: str, rows: pa.Table) -> pa.Table:
    """The rows of ``rows`` whose (trace_id, span_id) is not stored yet (``rows`` deduplicated first)."""
    in_range, bounds = in_start_range(rows)
    existing = _execute_over(
        con,
        rows.select(["trace_id", "span_id"]),
        f"SELECT t.trace_id || t.span_id FROM {table_name} t SEMI JOIN {{rows}} b "
        f"ON t.span_id = b.span_id AND t.trace_id = b.trace_id WHERE {in_range}",
        bounds,
    ).fetchall()
    if not existing:
        return rows
    keys = pc.binary_join_element_wise(rows["trace_id"], rows["span_id"], "")
    stored = pa.array([key for (key,) in existing], pa.string())
    return rows.filter(pc.invert(pc.is_in(keys, value_set=stored)))


def _unique_spans(rows: pa.Table) -> pa.Table:
    if pc.count_distinct(rows["span_id"]).as_py() == rows.num_rows:
        return rows
    return _first_of_each_span(rows)  # the same span re-exported in two batches committed together


def _first_of_each_span(rows: pa.Table) -> pa.Table:
    seen: set[str] = set()
    keys = pc.binary_join_element_wise(rows["trace_id"], rows["span_id"], "").to_pylist()
    first = [key not in seen and not seen.add(key) for key in keys]  # type: ignore[func-returns-value]
    return rows.filter(pa.array(first, pa.bool_()))


def insert_rows(con: duckdb.DuckDBPyConnection, table_name: str, rows: pa.Table) -> pa.Table:
    """Insert an Arrow table into ``table_name`` in one statement, skipping spans already stored.

    Columns are matched by name, so a batch spooled by an older version (fewer columns) still inserts.
    The caller owns the transaction.

    Returns:
        The rows actually inserted (duplicates of stored spans removed).
    """
    if rows.num_rows == 0:
        return rows
    fresh = _new_rows(con, table_name, _unique_spans(rows))
    if fresh.num_rows:
        _execute_over(con, fresh, f"INSERT INTO {table_name} BY NAME SELECT * FROM {{rows}}")
    return fresh


def insert_new_rows(con: duckdb.DuckDBPyConnection, table_name: str, rows: pa.Table) -> None:
    """:func:`insert_rows` in a single statement, for a caller that needs no list of inserted rows.

    One statement is its own transaction, and is one round trip instead of five (begin, look up,
    insert, commit): each is a moment the exporter's writer thread waits for the GIL while the
    export thread converts the next batch (measured with ``benchmarks/bench_exporter.py``).
    """
    if rows.num_rows == 0:
        return
    in_range, bounds = in_start_range(rows)
    _execute_over(
        con,
        _unique_spans(rows),
        f"INSERT INTO {table_name} BY NAME SELECT * FROM {{rows}} b WHERE NOT EXISTS "
        f"(SELECT 1 FROM {table_name} t WHERE t.span_id = b.span_id AND t.trace_id = b.trace_id "
        f"AND {in_range})",
        bounds,
    )


_SCAN_NAME = "_otel_llm_cost_rows"

REPLACEMENT_SCANS = "SET python_enable_replacements = true"
"""Run on a connection or cursor before :func:`insert_rows` (the default, unless a user turned it off)."""


def _execute_over(
    con: duckdb.DuckDBPyConnection, rows: pa.Table, sql: str, params: list[Any] | None = None
) -> duckdb.DuckDBPyConnection:
    """Run ``sql`` with ``{rows}`` naming the Arrow table ``rows``.

    Through DuckDB's replacement scan of a local variable (``python_enable_replacements``, on by
    default and set by :data:`REPLACEMENT_SCANS`): registering a view and unregistering it costs ~2 ms
    per statement, a third of a 512-row insert (measured with ``benchmarks/bench_exporter.py``).
    """
    _otel_llm_cost_rows = rows  # read by name by DuckDB's replacement scan
    return con.execute(sql.format(rows=_SCAN_NAME), params)


def join_release_thread(thread: threading.Thread | None) -> None:
    """Wait (bounded) for a daemon release thread that was told to stop.

    A daemon thread still running when the interpreter finalizes may drop the last reference to an
    object owning a DuckDB connection; the connection's destructor then cannot retake the GIL and the
    process aborts ("FATAL: exception not rethrown", seen with duckdb 2.0 when HOME is unset). Joining
    it here, while the interpreter is alive, leaves no such thread behind.
    """
    if thread is not None and thread is not threading.current_thread():
        thread.join(timeout=2.0)
