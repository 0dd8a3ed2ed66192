"""A damaged database file, a full disk, a removed data directory: the exporter goes on, says so,
and stores every batch it accepted once it can."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_llm_cost import CostStore
from otel_llm_cost._logging import ERROR_COUNTS, reset_log_once
from otel_llm_cost.exceptions import StorageCorruptError, StorageLockedError
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage.exporter import DuckDBSpanExporter
from otel_llm_cost.storage.journal import Spool
from otel_llm_cost.storage.rows import build_rows
from test_exporter import count, make_span

START_NS = 1_736_942_400_000_000_000


@pytest.fixture(autouse=True)
def _fresh_log_once() -> Iterator[None]:
    reset_log_once()
    yield
    reset_log_once()


def _spans(n: int, offset: int = 0) -> list:  # type: ignore[type-arg]
    return [make_span(start_ns=START_NS + offset + i) for i in range(n)]


def _truncated(path: Path) -> None:
    """A real exporter file with rows, cut to a third (what a full disk or a bad copy leaves)."""
    exporter = DuckDBSpanExporter(path, spool_dir=path.parent / "first-spool")
    assert exporter.export(_spans(3000, offset=10_000_000)) is SpanExportResult.SUCCESS
    exporter.shutdown()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _random(path: Path) -> None:
    path.write_bytes(os.urandom(300_000))


def _empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize("damage", [_truncated, _random, _empty])
def test_a_damaged_file_is_set_aside_and_exporting_goes_on_into_a_fresh_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: object
) -> None:
    db = tmp_path / "llm_costs.duckdb"
    damage(db)  # type: ignore[operator]
    Path(f"{db}.wal").write_bytes(b"wal of the damaged file")
    spool_dir = tmp_path / "spool"
    # Batches left in the journal by an earlier run that could not store them.
    left_over = build_rows(_spans(5, offset=1_000), enrich=None, capture_content=False, store_all_spans=False)
    Spool(spool_dir).write(left_over)
    damaged_bytes = db.read_bytes()

    with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
        exporter = DuckDBSpanExporter(db, spool_dir=spool_dir, lock_timeout_s=0.5)
        assert exporter.export(_spans(7)) is SpanExportResult.SUCCESS
        assert exporter.force_flush(10_000)
        exporter.shutdown()

    assert count(db) == 12  # the journal replayed, then the new batch
    [aside] = list(tmp_path.glob("llm_costs.duckdb.corrupt-*[0-9]Z"))
    assert aside.read_bytes() == damaged_bytes  # kept as it was, for recovery
    assert Path(f"{aside}.wal").read_bytes() == b"wal of the damaged file"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    message = errors[0].getMessage()
    assert str(db) in message
    assert aside.name in message
    assert "backup" in message
    assert ERROR_COUNTS["exporter.corrupt_file"] == 1
    assert not list(spool_dir.glob("*.batch"))


@pytest.mark.parametrize("damage", [_random, _truncated])
def test_a_reader_gets_a_clear_error_naming_the_damaged_file(tmp_path: Path, damage: object) -> None:
    db = tmp_path / "llm_costs.duckdb"
    damage(db)  # type: ignore[operator]
    before = db.read_bytes()
    with pytest.raises(StorageCorruptError, match=r"llm_costs\.duckdb' is damaged"):
        CostStore(db)
    assert db.read_bytes() == before  # readers never move or repair it
    result = subprocess.run(
        [sys.executable, "-m", "otel_llm_cost", "report", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "is damaged" in result.stderr
    assert str(db) in result.stderr


_HOLDER = textwrap.dedent(
    """
    import sys, time, duckdb
    connection = duckdb.connect(sys.argv[1])
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    connection.close()
    """
)


@pytest.mark.slow
def test_a_file_another_process_holds_is_never_set_aside(tmp_path: Path) -> None:
    db = tmp_path / "llm_costs.duckdb"
    _storage.connect(db).close()
    with subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(db), "3"], stdout=subprocess.PIPE, text=True
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StorageLockedError):
            _storage.connect(db, timeout_s=0.2)
        exporter = DuckDBSpanExporter(db, spool_dir=tmp_path / "spool", lock_timeout_s=0.2)
        assert exporter.export(_spans(4)) is SpanExportResult.SUCCESS
        time.sleep(0.5)
        assert list(tmp_path.glob("*.corrupt-*")) == []
        holder.wait(timeout=30)
    assert exporter.force_flush(15_000)
    exporter.shutdown()
    assert count(db) == 4
    assert list(tmp_path.glob("*.corrupt-*")) == []


def test_a_removed_data_directory_keeps_batches_waiting_until_it_is_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    db = data / "llm_costs.duckdb"
    exporter = DuckDBSpanExporter(db, spool_dir=tmp_path / "spool", lock_timeout_s=0.2, hold_idle_s=0)
    assert exporter.export(_spans(3)) is SpanExportResult.SUCCESS
    assert exporter.force_flush(10_000)
    shutil.rmtree(data)
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
        for offset in range(1, 6):
            assert exporter.export(_spans(2, offset=offset * 1000)) is SpanExportResult.SUCCESS
        assert not exporter.force_flush(1_000)
    assert caplog.records, "the failure is logged"
    assert len(caplog.records) <= 3, "and logged once, not once per batch"
    data.mkdir()
    assert exporter.force_flush(15_000)
    exporter.shutdown()
    assert count(db) == 10  # the batches accepted while it was gone
