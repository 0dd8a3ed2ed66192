"""_storage: schema create/migrate, version checks, lock waits against real processes, idempotent inserts."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import threading
import time
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from otel_llm_cost.exceptions import SchemaVersionError, StorageCorruptError, StorageError, StorageLockedError
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage import schema as _schema
from otel_llm_cost.storage.rows import CALLS_ARROW_SCHEMA


def _version(path: Path) -> int | None:
    with contextlib.closing(duckdb.connect(str(path), read_only=True)) as con:
        return _storage.schema_version(con)


def _columns(path: Path, table: str) -> list[str]:
    with contextlib.closing(duckdb.connect(str(path), read_only=True)) as con:
        return [row[0] for row in con.execute(f"SELECT name FROM pragma_table_info('{table}')").fetchall()]


def _rows(n: int, start: int = 0, start_ns: int = 1_736_942_400_000_000_000) -> pa.Table:
    data: dict[str, list[object]] = {name: [None] * n for name in CALLS_ARROW_SCHEMA.names}
    data["span_id"] = [f"{i + start:016x}" for i in range(n)]
    data["trace_id"] = [f"{i + start:032x}" for i in range(n)]
    data["start_time"] = [start_ns + (i + start) * 1000 for i in range(n)]
    data["end_time"] = data["start_time"]
    data["cost_usd"] = [Decimal("0.000123456789")] * n
    data["tags"] = [[] for _ in range(n)]
    return pa.table(data, schema=CALLS_ARROW_SCHEMA)


def test_connect_creates_every_table_and_records_the_version(tmp_path: Path) -> None:
    path = tmp_path / "new.duckdb"
    with contextlib.closing(_storage.connect(path)) as con:
        tables = {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        zone = con.execute("SELECT current_setting('TimeZone')").fetchone()
    assert {_schema.CALLS_TABLE, _schema.SPANS_TABLE, _schema.META_TABLE} <= tables
    assert zone == ("UTC",)
    assert _version(path) == _schema.SCHEMA_VERSION
    assert _columns(path, _schema.CALLS_TABLE) == list(_schema.CALL_COLUMN_NAMES)


def test_a_newer_file_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "newer.duckdb"
    _storage.connect(path).close()
    with contextlib.closing(duckdb.connect(str(path))) as con:
        con.execute(f"UPDATE {_schema.META_TABLE} SET value = ?", [str(_schema.SCHEMA_VERSION + 1)])
    for read_only in (False, True):
        with pytest.raises(SchemaVersionError, match=r"newer otel-llm-cost.*Upgrade"):
            _storage.connect(path, read_only=read_only)


@pytest.mark.parametrize("read_only", [False, True])
def test_an_older_file_is_migrated_on_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read_only: bool
) -> None:
    # The file is written at today's version; then "today" becomes a future version whose migration
    # step is real DDL (data in the MIGRATIONS table, not a mock of the migration code).
    path = tmp_path / "older.duckdb"
    with contextlib.closing(_storage.connect(path)) as con:
        _storage.insert_rows(con, _schema.CALLS_TABLE, _rows(3))
    future = _schema.SCHEMA_VERSION + 1
    monkeypatch.setattr(_schema, "SCHEMA_VERSION", future)
    monkeypatch.setitem(
        _schema.MIGRATIONS,
        future - 1,
        (f"ALTER TABLE {_schema.CALLS_TABLE} ADD COLUMN region VARCHAR DEFAULT 'eu'",),
    )
    with contextlib.closing(_storage.connect(path, read_only=read_only)) as con:
        rows = con.execute(f"SELECT count(*), min(region) FROM {_schema.CALLS_TABLE}").fetchone()
    assert rows == (3, "eu")
    assert _version(path) == future


def test_a_missing_migration_step_is_an_error_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "gap.duckdb"
    _storage.connect(path).close()
    monkeypatch.setattr(_schema, "SCHEMA_VERSION", _schema.SCHEMA_VERSION + 1)
    with pytest.raises(SchemaVersionError, match="no migration"):
        _storage.connect(path)
    assert _version(path) == _schema.SCHEMA_VERSION - 1


def test_read_only_on_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        _storage.connect(tmp_path / "nothing.duckdb", read_only=True)
    assert not (tmp_path / "nothing.duckdb").exists()


def test_a_file_that_is_not_duckdb_is_a_storage_error_not_a_lock_error(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.duckdb"
    path.write_bytes(b"this is not a database" * 1000)
    with pytest.raises(StorageCorruptError, match="is damaged and cannot be opened") as raised:
        _storage.connect(path)
    assert not isinstance(raised.value, StorageLockedError)  # not worth waiting for
    assert path.read_bytes() == b"this is not a database" * 1000  # connect() never moves it


def test_insert_rows_skips_spans_already_stored(tmp_path: Path) -> None:
    with contextlib.closing(_storage.connect(tmp_path / "db.duckdb")) as con:
        first = _storage.insert_rows(con, _schema.CALLS_TABLE, _rows(5))
        again = _storage.insert_rows(con, _schema.CALLS_TABLE, _rows(8))  # 5 known + 3 new
        total = con.execute(f"SELECT count(*), count(DISTINCT span_id) FROM {_schema.CALLS_TABLE}").fetchone()
        cost = con.execute(f"SELECT sum(cost_usd) FROM {_schema.CALLS_TABLE}").fetchone()
    assert first.num_rows == 5
    assert again["span_id"].to_pylist() == [f"{i:016x}" for i in range(5, 8)]
    assert total == (8, 8)
    assert cost == (Decimal("0.000987654312"),)


def test_a_rejected_insert_raises_its_own_error_not_the_aborted_transaction(tmp_path: Path) -> None:
    # The exporter quarantines a batch the database rejects and keeps a batch the database failed on:
    # it needs the real cause, not "Current transaction is aborted" from the cleanup after it.
    rows = _rows(2)
    rows = rows.set_column(rows.schema.get_field_index("input_tokens"), "input_tokens", pa.array(["x", "y"]))
    with contextlib.closing(_storage.connect(tmp_path / "db.duckdb")) as con:
        con.execute("BEGIN TRANSACTION")
        with pytest.raises(duckdb.ConversionException):
            _storage.insert_rows(con, _schema.CALLS_TABLE, rows)
        con.execute("ROLLBACK")
        _storage.insert_rows(con, _schema.CALLS_TABLE, _rows(2))  # the view name is reusable
        assert con.execute(f"SELECT count(*) FROM {_schema.CALLS_TABLE}").fetchone() == (2,)


def test_same_span_id_in_another_trace_is_a_different_span(tmp_path: Path) -> None:
    rows = _rows(1)
    other = rows.set_column(1, "trace_id", pa.array(["f" * 32]))
    with contextlib.closing(_storage.connect(tmp_path / "db.duckdb")) as con:
        _storage.insert_rows(con, _schema.CALLS_TABLE, rows)
        inserted = _storage.insert_rows(con, _schema.CALLS_TABLE, other)
    assert inserted.num_rows == 1


_HOLD = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "ro")
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
    con.close()
    """
)


@contextlib.contextmanager
def _held_by_another_process(path: Path, mode: str, seconds: float) -> subprocess.Popen[str]:  # type: ignore[misc]
    with subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(path), mode, str(seconds)], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "held"
            yield proc
        finally:
            proc.kill()


@pytest.mark.slow
def test_reader_waits_for_a_writer_process_then_opens(tmp_path: Path) -> None:
    path = tmp_path / "db.duckdb"
    _storage.connect(path).close()
    with _held_by_another_process(path, "rw", 0.5) as proc:
        with contextlib.closing(_storage.connect(path, read_only=True, timeout_s=30)) as con:
            assert con.execute(f"SELECT count(*) FROM {_schema.CALLS_TABLE}").fetchone() == (0,)
        assert proc.wait(timeout=30) == 0  # it released the file by finishing, not by being killed
    assert not _storage.read_request_path(path).exists()


@pytest.mark.slow
def test_writer_waits_for_a_reader_process_then_opens(tmp_path: Path) -> None:
    path = tmp_path / "db.duckdb"
    _storage.connect(path).close()
    with _held_by_another_process(path, "ro", 0.5) as proc:
        with contextlib.closing(_storage.connect(path, timeout_s=30)) as con:
            _storage.insert_rows(con, _schema.CALLS_TABLE, _rows(1))
        assert proc.wait(timeout=30) == 0


def test_lock_held_past_the_timeout_is_a_storage_error_and_a_reader_signals_it(tmp_path: Path) -> None:
    path = tmp_path / "db.duckdb"
    _storage.connect(path).close()
    with _held_by_another_process(path, "rw", 60):
        started = time.monotonic()
        seen_request = False

        def watch() -> None:
            nonlocal seen_request
            while time.monotonic() - started < 5 and not seen_request:
                seen_request = _storage.read_requested(path)
                time.sleep(0.01)

        watcher = threading.Thread(target=watch)
        watcher.start()
        with pytest.raises(StorageError, match="held by another process") as raised:
            _storage.connect(path, read_only=True, timeout_s=0.5)
        watcher.join()
    # Callers (the exporter's spool-and-retry decision) tell a lock from a real failure by type.
    assert isinstance(raised.value, StorageLockedError)
    assert seen_request
    assert not _storage.read_request_path(path).exists()


def test_a_version_1_file_gains_the_unbilled_cost_and_service_tier_columns(tmp_path: Path) -> None:
    path = tmp_path / "v1.duckdb"
    with contextlib.closing(_storage.connect(path)) as con:
        _storage.insert_rows(con, _schema.CALLS_TABLE, _rows(2))
    with contextlib.closing(duckdb.connect(str(path))) as con:  # the file as version 1 wrote it
        for column in ("unbilled_cost_usd", "service_tier"):
            con.execute(f"ALTER TABLE {_schema.CALLS_TABLE} DROP COLUMN {column}")
        con.execute(f"UPDATE {_schema.META_TABLE} SET value = '1'")
    with contextlib.closing(_storage.connect(path)) as con:
        rows = con.execute(
            f"SELECT count(*), count(unbilled_cost_usd), count(service_tier) FROM {_schema.CALLS_TABLE}"
        )
        assert rows.fetchone() == (2, 0, 0)
    assert _version(path) == _schema.SCHEMA_VERSION
