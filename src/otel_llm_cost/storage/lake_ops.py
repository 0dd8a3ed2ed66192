"""Lake upkeep and migration: ``otel-llm-cost lake maintain`` and ``otel-llm-cost lake import``.

Both run under the lake's commit lock (:mod:`~otel_llm_cost.storage.lake_lock`), like every writer's
commit: an import's "already stored?" anti-join is then exact (running it twice stores nothing twice),
and compaction never races a writer's commit.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from otel_llm_cost.exceptions import StorageError
from otel_llm_cost.storage import schema as _schema
from otel_llm_cost.storage.lake import LAKE_ALIAS, LakeTarget, attach_lake, load_extensions
from otel_llm_cost.storage.lake_lock import CommitLock

__all__ = ["ImportResult", "MaintainResult", "import_file", "locked_lake", "maintain"]

_LOCK_WAIT_S = 300.0  # upkeep waits for the writers' commits in flight, however many there are
_SOURCE = "otel_llm_cost_source"


@dataclass(frozen=True, slots=True)
class MaintainResult:
    """What ``maintain`` did: rows removed by retention, data files before and after, seconds taken."""

    deleted_rows: int
    files_before: int
    files_after: int
    seconds: float


@dataclass(frozen=True, slots=True)
class ImportResult:
    """Rows the import added per table (rows already in the lake are not counted)."""

    calls: int
    spans: int
    alerts: int


@contextlib.contextmanager
def locked_lake(target: LakeTarget, *, create: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the lake, used while holding the writers' commit lock (waiting up to 5 minutes).

    For work that must see every earlier commit and that no writer may interleave with: upkeep,
    imports, and recording budget alerts outside a writer (``budgets check --fire``).

    Raises:
        StorageError: The lake cannot be reached (or has no tables and ``create`` is False), or the
            lock stayed held for 5 minutes.
    """
    con = duckdb.connect(":memory:")
    lock = CommitLock(target.libpq_dsn)
    try:
        load_extensions(con)
        with lock.held(_LOCK_WAIT_S):
            attach_lake(con, target, create=create)
            yield con
    finally:
        lock.close()
        con.close()


def _data_files(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute(
        f"SELECT count(*) FROM ducklake_list_files('{LAKE_ALIAS}', '{_schema.CALLS_TABLE}')"
    ).fetchall()
    return int(row[0][0])


def maintain(
    target: LakeTarget,
    *,
    retention_days: int | None = None,
    snapshots_older_than: timedelta = timedelta(days=1),
) -> MaintainResult:
    """Apply retention, compact small files, expire old snapshots and delete files nothing references.

    Args:
        target: The lake.
        retention_days: Delete calls (and spans) that started more than this many days ago (None: keep all).
        snapshots_older_than: Expire snapshots older than this (time travel to them ends); the files only
            they referenced are deleted.

    Returns:
        What was done.

    Raises:
        ValueError: A retention that is not positive.
        StorageError: The lake cannot be reached, or another writer held the lock for 5 minutes.
    """
    if retention_days is not None and retention_days <= 0:
        raise ValueError(f"retention_days must be positive, got {retention_days!r}")
    started = time.monotonic()
    with locked_lake(target) as con:
        before = _data_files(con)
        deleted = 0
        if retention_days is not None:
            cutoff = datetime.now(UTC) - timedelta(days=retention_days)
            for table in (_schema.CALLS_TABLE, _schema.SPANS_TABLE):
                row = con.execute(f"DELETE FROM {table} WHERE start_time < ?", [cutoff]).fetchall()
                deleted += int(row[0][0]) if row and table == _schema.CALLS_TABLE else 0
        expire_before = datetime.now(UTC) - snapshots_older_than
        for statement in (
            f"CALL ducklake_flush_inlined_data('{LAKE_ALIAS}')",
            f"CALL ducklake_merge_adjacent_files('{LAKE_ALIAS}')",
            f"CALL ducklake_rewrite_data_files('{LAKE_ALIAS}')",  # files mostly deleted by retention
            f"CALL ducklake_expire_snapshots('{LAKE_ALIAS}', older_than => ?)",
            f"CALL ducklake_cleanup_old_files('{LAKE_ALIAS}', older_than => ?)",
        ):
            con.execute(statement, [expire_before] if "?" in statement else []).fetchall()
        after = _data_files(con)
    return MaintainResult(deleted, before, after, time.monotonic() - started)


def import_file(target: LakeTarget, source: str | Path) -> ImportResult:
    """Copy the calls, spans and alerts of a DuckDB file (or a Parquet file of calls) into the lake.

    Idempotent: rows whose span (or alert key) is already in the lake are skipped, so an interrupted
    import is finished by running it again. A DuckDB file must be readable by the running duckdb
    (files written by duckdb 2.0 cannot be read by the 1.5 line the lake uses: export them to
    Parquet with ``COPY llm_calls TO 'calls.parquet'`` under 2.0 and import that).

    Raises:
        StorageError: The source cannot be read, or the lake cannot be reached.
    """
    path = Path(source)
    if not path.is_file():
        raise StorageError(f"no file at {path}")
    with locked_lake(target) as con:
        tables = _attach_source(con, path)
        added = {}
        for table, key in (
            (_schema.CALLS_TABLE, ("trace_id", "span_id")),
            (_schema.SPANS_TABLE, ("trace_id", "span_id")),
            (_schema.ALERTS_TABLE, _schema.ALERT_KEY_COLUMNS),
        ):
            added[table] = _copy_new(con, tables.get(table), table, key)
    return ImportResult(added[_schema.CALLS_TABLE], added[_schema.SPANS_TABLE], added[_schema.ALERTS_TABLE])


def _attach_source(con: duckdb.DuckDBPyConnection, path: Path) -> dict[str, str]:
    quoted = str(path).replace("'", "''")
    if path.suffix == ".parquet":
        return {_schema.CALLS_TABLE: f"read_parquet('{quoted}')"}
    try:
        con.execute(f"ATTACH '{quoted}' AS {_SOURCE} (READ_ONLY)")
    except duckdb.Error as exc:
        raise StorageError(f"cannot read {path} with duckdb {duckdb.__version__}: {exc}") from exc
    present = {
        row[0]
        for row in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [_SOURCE]
        ).fetchall()
    }
    return {name: f"{_SOURCE}.main.{name}" for name in present}


def _copy_new(con: duckdb.DuckDBPyConnection, source: str | None, table: str, key: tuple[str, ...]) -> int:
    if source is None:
        return 0
    same = " AND ".join(f"t.{column} = s.{column}" for column in key)
    order = " ORDER BY s.start_time" if table != _schema.ALERTS_TABLE else ""
    row = con.execute(
        f"INSERT INTO {table} BY NAME SELECT s.* FROM {source} s "
        f"WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {same}){order}"
    ).fetchall()
    return int(row[0][0]) if row else 0
