"""Read-only really means read-only: `otel-llm-cost query` and CostStore.sql cannot touch files,
URLs or extensions, and cannot turn that back on; the CLI's own export still writes its file."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from conftest import BASE_TIME, CallsDB, call
from otel_llm_cost import CostStore
from otel_llm_cost.exceptions import QueryError
from otel_llm_cost.storage import connect as _storage


@pytest.fixture
def db(calls_db: CallsDB) -> Path:
    calls_db.insert(call(feature="search", cost_usd="1.25"))
    return calls_db.path


def query_cli(db: Path, sql: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otel_llm_cost", "query", "--db", str(db), sql],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_query_cli_refuses_every_way_out_of_the_database(db: Path, tmp_path: Path) -> None:
    written = tmp_path / "stolen.csv"
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret\n")
    other = tmp_path / "other.duckdb"
    attacks = {
        "COPY TO": f"COPY (SELECT * FROM llm_calls) TO '{written}' (FORMAT csv)",
        "read_text": f"SELECT content FROM read_text('{secret}')",
        "read_csv": f"SELECT * FROM read_csv('{secret}')",
        "glob": f"SELECT * FROM glob('{tmp_path}/*')",
        "ATTACH": f"ATTACH '{other}' AS other",
        "INSTALL": "INSTALL httpfs",
        "LOAD": "LOAD httpfs",
        "URL": "SELECT * FROM read_parquet('https://127.0.0.1:9/x.parquet')",
        "re-enable": "SET enable_external_access = true",
        "unlock": "SET lock_configuration = false",
        "autoinstall": "SET autoinstall_known_extensions = true",
    }
    for name, sql in attacks.items():
        result = query_cli(db, sql)
        assert result.returncode != 0, f"{name} was allowed: {result.stdout}"
        assert "Traceback" not in result.stderr, name
        assert "top secret" not in result.stdout + result.stderr, name
    assert not written.exists()
    assert not other.exists()
    allowed = query_cli(db, "SELECT feature, sum(cost_usd) AS spent FROM llm_calls GROUP BY 1")
    assert allowed.returncode == 0, allowed.stderr
    assert "search" in allowed.stdout
    assert "1.25" in allowed.stdout


def test_cost_store_sql_is_sandboxed_and_reports_still_work(db: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    with CostStore(db) as store:
        with pytest.raises(QueryError, match="disabled by configuration"):
            store.sql(f"COPY llm_calls TO '{target}'")
        with pytest.raises(QueryError, match="locked"):
            store.sql("SET enable_external_access = true")
        # Reports that need the time-zone and JSON functions run on the same locked connection.
        day = timedelta(days=1)
        days = store.daily_cost(BASE_TIME - day, BASE_TIME + day, "America/New_York")
        assert sum(day.total_cost_usd for day in days) == Decimal("1.25")
        assert store.sql("SELECT current_setting('TimeZone') AS tz")[0]["tz"] in {"UTC", "Etc/UTC"}
        assert store.savings(None, None) is not None
    assert not target.exists()


def test_export_still_writes_its_file_and_nothing_else(db: Path, tmp_path: Path) -> None:
    target = tmp_path / "calls.csv"
    result = subprocess.run(
        [sys.executable, "-m", "otel_llm_cost", "export", "--db", str(db), "--output", str(target)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "exported 1 calls" in result.stderr
    assert "search" in target.read_text()


def test_a_second_read_only_connection_joins_the_locked_sandbox(db: Path) -> None:
    with CostStore(db, hold_idle_s=60) as store, store.connect() as first:
        second = _storage.connect(db, read_only=True)  # the file's configuration is locked already
        try:
            assert second.sql("SELECT count(*) FROM llm_calls").fetchall() == [(1,)]
            assert first.sql("SELECT count(*) FROM llm_calls").fetchall() == [(1,)]
            with pytest.raises(duckdb.PermissionException):
                second.sql("SELECT * FROM read_text('/etc/hostname')").fetchall()
        finally:
            second.close()
