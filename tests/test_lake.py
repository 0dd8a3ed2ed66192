"""The DuckLake target against a real PostgreSQL server and real writer processes.

These run where DuckLake loads offline (duckdb 1.5 with the ``lake`` extra: see docs/lake.md) and
PostgreSQL is installed; elsewhere they are skipped with the reason, unless
``OTEL_LLM_COST_LAKE_REQUIRED=1`` (CI's lake environment), where they fail instead.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import lake_feed
import postgres_server
from otel_llm_cost import CostStore, DuckDBSpanExporter
from otel_llm_cost.cli import main
from otel_llm_cost.exceptions import StorageError
from otel_llm_cost.storage.lake import LakeTarget, load_extensions, open_lake
from test_collector_pipeline import LLM_ATTRIBUTES, serve_process


def _lake_unavailable() -> str | None:
    try:
        import psycopg  # noqa: F401, PLC0415 - the `lake` extra may be missing
    except ImportError:
        return "psycopg is missing (pip install 'otel-llm-cost[lake]')"
    with contextlib.closing(duckdb.connect()) as con:
        try:
            load_extensions(con)
        except StorageError:
            return f"DuckLake does not load offline on duckdb {duckdb.__version__} (the lake extra needs 1.5)"
    return postgres_server.unavailable_reason()


_REASON = _lake_unavailable()
# CI sets it in the environment that has the lake extra and PostgreSQL: there a skip is a failure.
_REQUIRED = os.environ.get("OTEL_LLM_COST_LAKE_REQUIRED") == "1"
needs_lake = pytest.mark.skipif(_REASON is not None and not _REQUIRED, reason=str(_REASON))
_names = itertools.count()
_FEED = Path(__file__).with_name("lake_feed.py")
WRITER_SPANS = int(os.environ.get("OTEL_LLM_COST_LAKE_TEST_SPANS", "10000"))


@pytest.fixture(scope="module")
def server() -> Iterator[postgres_server.Server]:
    if _REASON is not None:
        if _REQUIRED:
            pytest.fail(f"OTEL_LLM_COST_LAKE_REQUIRED=1 but {_REASON}")
        pytest.skip(_REASON)
    with postgres_server.running() as running:
        yield running


@pytest.fixture
def lake(server: postgres_server.Server, tmp_path: Path) -> LakeTarget:
    name = f"lake{os.getpid()}_{next(_names)}"
    postgres_server.create_database(server, name)
    return LakeTarget(f"ducklake:postgres:{server.dsn(name)}", str(tmp_path / "lake-data") + "/")


def test_target_refuses_a_password_and_other_catalogs() -> None:
    with pytest.raises(ValueError, match="PGPASSWORD"):
        LakeTarget("ducklake:postgres:dbname=llm host=db password=hunter2")
    with pytest.raises(ValueError, match="ducklake:postgres:"):
        LakeTarget("ducklake:sqlite:catalog.sqlite")
    with pytest.raises(ValueError, match="data_path is for a DuckLake target"):
        DuckDBSpanExporter("calls.duckdb", data_path="lake-data/")


def _export(exporter: DuckDBSpanExporter, first: int, count: int) -> None:
    for batch in lake_feed.batches(first, count, 500):
        assert exporter.export(batch).name == "SUCCESS"
    assert exporter.force_flush(60_000)
    exporter.shutdown()


def _reports(store: CostStore) -> list[object]:
    return [
        list(store.cost_by_model(None, None)),
        list(store.cost_by("feature", None, None)),
        list(store.daily_cost(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 3, tzinfo=UTC))),
        store.summary(None, None),
    ]


@needs_lake
@pytest.mark.slow
def test_reports_on_the_lake_equal_reports_on_a_file(lake: LakeTarget, tmp_path: Path) -> None:
    _export(DuckDBSpanExporter(lake.target, data_path=lake.data_path, spool_dir=tmp_path / "j"), 0, 3000)
    file = tmp_path / "calls.duckdb"
    _export(DuckDBSpanExporter(file), 0, 3000)
    with CostStore(lake.target) as on_lake, CostStore(file) as on_file:
        lake_reports = _reports(on_lake)
        assert lake_reports == _reports(on_file)
    assert lake_reports[3].call_count == 3000  # type: ignore[attr-defined]
    assert not list((tmp_path / "j").glob("*.batch"))  # the journal is empty once the lake acknowledged


@needs_lake
@pytest.mark.slow
def test_report_cli_on_the_lake_prints_what_it_prints_for_the_file(
    lake: LakeTarget, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _export(DuckDBSpanExporter(lake.target, data_path=lake.data_path, spool_dir=tmp_path / "j"), 0, 1000)
    file = tmp_path / "calls.duckdb"
    _export(DuckDBSpanExporter(file), 0, 1000)
    assert main(["report", "--db", lake.target, "--since", "2026-01-01", "--until", "2026-02-01"]) == 0
    on_lake = capsys.readouterr().out
    assert main(["report", "--db", str(file), "--since", "2026-01-01", "--until", "2026-02-01"]) == 0
    assert on_lake == capsys.readouterr().out
    assert "gpt-4o" in on_lake


@needs_lake
def test_a_reader_never_creates_a_lake_nor_its_tables(lake: LakeTarget) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        CostStore(lake.target)  # an empty catalog
    with contextlib.closing(duckdb.connect()) as con:
        load_extensions(con)
        con.execute(f"ATTACH '{lake.target}' AS bare (DATA_PATH '{lake.data_path}')")
    with pytest.raises(StorageError, match="no otel-llm-cost tables"):
        CostStore(lake.target)  # a lake without our tables


def _writer(lake: LakeTarget, journal: Path, first: int, count: int, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "OTEL_LLM_COST_LAKE_BATCH_SECONDS": "0.5", "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [
            sys.executable,
            str(_FEED),
            lake.target,
            str(lake.data_path),
            str(journal),
            str(first),
            str(count),
            "500",
            *extra,
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for_progress(process: subprocess.Popen[str], sent: int) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("progress") and int(line.split()[1]) >= sent:
            return
    raise AssertionError("the writer ended before it got that far")


@needs_lake
@pytest.mark.slow
def test_concurrent_writers_and_a_killed_one_store_each_call_once(lake: LakeTarget, tmp_path: Path) -> None:
    # Four writers at once; writers 1-3 also export the last half of the previous range (spans handed to two
    # collectors), and writer 3 is killed with -9 mid-way, then restarted on its journal and re-sends
    # everything (an OTLP client retrying): every call must be stored exactly once.
    n = WRITER_SPANS
    shared = n // 2
    writers = [_writer(lake, tmp_path / "j0", 0, n)]
    writers += [_writer(lake, tmp_path / f"j{k}", k * n - shared, n + shared) for k in (1, 2)]
    killed = _writer(lake, tmp_path / "j3", 3 * n - shared, n + shared)
    _wait_for_progress(killed, (n + shared) // 2)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    assert killed.stdout is not None
    killed.stdout.close()
    writers.append(_writer(lake, tmp_path / "j3", 3 * n - shared, n + shared))
    for process in writers:
        out, _ = process.communicate(timeout=600)
        assert process.returncode == 0, out
        assert out.rstrip().endswith("done")
    with contextlib.closing(open_lake(lake, create=False)) as con:
        total, distinct = con.execute(
            "SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM llm_calls"
        ).fetchone() or (0, 0)
        low, high = con.execute("SELECT min(span_id), max(span_id) FROM llm_calls").fetchone() or ("", "")
    assert (total, distinct) == (4 * n, 4 * n)
    assert (int(low, 16), int(high, 16)) == (1, 4 * n)
    for journal in ("j0", "j1", "j2", "j3"):
        assert not list((tmp_path / journal).glob("*.batch"))


@needs_lake
@pytest.mark.slow
def test_a_budget_alert_fires_once_across_writers(lake: LakeTarget, tmp_path: Path) -> None:
    # Four processes with the same $1 budget commit ~$8 of calls at once (a quarter of them of an
    # unknown model): each threshold, and the unpriced-calls alert, is recorded by whichever commit
    # crosses it first, and by no other process.
    writers = [_writer(lake, tmp_path / f"j{k}", k * 2000, 2000, "budget") for k in range(4)]
    delivered: list[str] = []
    for process in writers:
        out, _ = process.communicate(timeout=600)
        assert process.returncode == 0, out
        delivered += [line for line in out.splitlines() if line.startswith("alert")]
    # Each alert recorded is delivered by exactly one process (a threshold passed over by a commit
    # that also crosses a higher one is not delivered on its own).
    assert len(delivered) == len(set(delivered))
    assert {"alert all threshold 1.00", "alert all unpriced 0.00"} <= set(delivered)
    with contextlib.closing(open_lake(lake, create=False)) as con:
        stored = con.execute("SELECT kind, threshold FROM budget_alerts").fetchall()
    assert len(stored) == len(set(stored))
    assert {f"alert all {kind} {value:.2f}" for kind, value in stored} >= set(delivered)


@needs_lake
@pytest.mark.slow
def test_import_is_idempotent_and_maintain_compacts(
    lake: LakeTarget, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "calls.duckdb"
    _export(DuckDBSpanExporter(file), 0, 2000)
    lake_args = ["--db", lake.target, "--data-path", str(lake.data_path)]
    assert main(["lake", "import", str(file), *lake_args]) == 0
    assert "imported 2,000 calls" in capsys.readouterr().err
    assert main(["lake", "import", str(file), *lake_args]) == 0  # again: nothing twice
    assert "imported 0 calls" in capsys.readouterr().err
    # Then writers add small commits on top (one Parquet file each).
    for first in range(2000, 2400, 100):
        _export(DuckDBSpanExporter(lake.target, spool_dir=tmp_path / "j"), first, 100)
    with CostStore(lake.target) as store:
        before = _reports(store)
    assert main(["lake", "maintain", "--db", lake.target, "--expire-snapshots-hours", "0"]) == 0
    message = capsys.readouterr().err
    files = [int(n.replace(",", "")) for n in message.split("data files ")[1].split(" -> ")]
    assert files[1] < files[0]
    with CostStore(lake.target) as store:
        assert _reports(store) == before
        assert store.summary(None, None).call_count == 2400
    leftover = {p.name for p in Path(str(lake.data_path)).rglob("*.parquet")}
    with contextlib.closing(open_lake(lake, create=False)) as con:
        listed = {
            Path(row[0]).name
            for row in con.execute("FROM ducklake_list_files('otel_llm_cost_lake', 'llm_calls')").fetchall()
        }
    assert listed <= leftover
    assert main(["lake", "maintain", "--db", lake.target, "--retention-days", "100000"]) == 0
    assert "0 calls past retention" in capsys.readouterr().err


def test_lake_commands_refuse_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lake", "maintain", "--db", str(tmp_path / "calls.duckdb")]) == 2
    assert "--db must be a lake" in capsys.readouterr().err


@needs_lake
@pytest.mark.slow
def test_serve_writes_received_spans_to_the_lake(lake: LakeTarget, tmp_path: Path) -> None:
    env = {
        "OTEL_LLM_COST_LAKE_DATA_PATH": str(lake.data_path),
        "OTEL_LLM_COST_SPOOL_DIR": str(tmp_path / "j"),
    }
    with serve_process("--db", lake.target, env=env) as (process, url, output):
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
        tracer = provider.get_tracer("opentelemetry.instrumentation.openai_v2")
        for i in range(30):
            with tracer.start_as_current_span(
                "chat", attributes={**LLM_ATTRIBUTES, "gen_ai.response.id": f"r-{i}"}
            ):
                pass
        provider.shutdown()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        stderr = output.text()
    assert process.returncode == 0, stderr
    with CostStore(lake.target) as store:
        assert store.summary(None, None).call_count == 30
