"""The exporter against real processes: opentelemetry-instrument, kill -9, a reader beside a writer, fork."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from decimal import Decimal
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage import schema as _schema
from otel_llm_cost.storage.exporter import DuckDBSpanExporter
from test_exporter import count, make_span, read_calls

TESTS_DIR = Path(__file__).parent
INSTRUMENT = Path(sys.executable).with_name("opentelemetry-instrument")

_APP = textwrap.dedent(
    """
    from opentelemetry import trace

    tracer = trace.get_tracer("my.app")
    with tracer.start_as_current_span("chat gpt-4o-mini", attributes={
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 200,
    }):
        with tracer.start_as_current_span("not an llm call"):
            pass
    """
)


@pytest.mark.slow
def test_opentelemetry_instrument_loads_the_exporter_by_name(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(_APP)
    db = tmp_path / "auto.duckdb"
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "duckdb",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "auto-app",
        "OTEL_LLM_COST_DUCKDB_PATH": str(db),
    }
    result = subprocess.run(
        [str(INSTRUMENT), sys.executable, str(app)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    [row] = read_calls(db)  # the non-LLM span is not a call
    # Nothing enriched the span (no processor under auto-configuration): the exporter priced it.
    assert (row["service_name"], row["provider"], row["request_model"]) == (
        "auto-app",
        "openai",
        "gpt-4o-mini",
    )
    assert (row["input_tokens"], row["output_tokens"], row["cost_status"]) == (1000, 200, "priced")
    assert row["cost_usd"] is not None
    assert row["cost_usd"] > Decimal(0)


_KILLED_WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[2])
    from test_exporter import make_span
    from otel_llm_cost.storage.exporter import DuckDBSpanExporter

    exporter = DuckDBSpanExporter(sys.argv[1])
    committed = 0
    while True:
        batch = [make_span(start_ns=1_736_942_400_000_000_000 + committed + i) for i in range(100)]
        if exporter.export(batch).name == "SUCCESS":
            committed += len(batch)
            print(committed, flush=True)
    """
)


@pytest.mark.slow
def test_kill_9_loses_nothing_that_export_returned_and_the_file_reopens(tmp_path: Path) -> None:
    db = tmp_path / "killed.duckdb"
    with subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(db), str(TESTS_DIR)], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        acknowledged = 0
        while acknowledged < 1000:
            line = proc.stdout.readline()
            assert line, "the writer died on its own"
            acknowledged = int(line)
        proc.send_signal(signal.SIGKILL)  # mid-stream, file held, WAL not checkpointed
        proc.wait(timeout=30)
        for line in proc.stdout:  # acknowledged before the signal landed
            acknowledged = int(line)
    # The file reopens cleanly (its WAL replayed), and the next exporter on it stores what the killed
    # one had journaled but not committed yet.
    exporter = DuckDBSpanExporter(db)
    assert exporter.force_flush()
    stored = count(db)
    assert stored >= acknowledged >= 1000
    assert stored % 100 == 0  # whole batches only
    with contextlib.closing(_storage.connect(db, read_only=True)) as con:
        assert con.execute(f"SELECT count(DISTINCT span_id) FROM {_schema.CALLS_TABLE}").fetchone() == (
            stored,
        )
    assert exporter.export([make_span()]) is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert count(db) == stored + 1


_BUSY_WRITER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, sys.argv[2])
    from test_exporter import make_span
    from otel_llm_cost.storage.exporter import DuckDBSpanExporter

    exporter = DuckDBSpanExporter(sys.argv[1], lock_timeout_s=30)
    print("started", flush=True)
    for n in range(30):
        exporter.export([make_span(start_ns=1_736_942_400_000_000_000 + n * 100 + i) for i in range(100)])
        time.sleep(0.05)  # a batch every 50 ms, for 1.5 s
    exporter.shutdown()
    print(len(exporter.spool.pending()), flush=True)
    """
)


@pytest.mark.slow
def test_another_process_can_query_while_the_app_is_exporting(tmp_path: Path) -> None:
    db = tmp_path / "busy.duckdb"
    _storage.connect(db).close()
    seen: list[int] = []
    with subprocess.Popen(
        [sys.executable, "-c", _BUSY_WRITER, str(db), str(TESTS_DIR)], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "started"
        while proc.poll() is None:
            with contextlib.closing(_storage.connect(db, read_only=True, timeout_s=30)) as con:
                row = con.execute(f"SELECT count(*) FROM {_schema.CALLS_TABLE}").fetchone()
            assert row is not None
            seen.append(row[0])
            time.sleep(0.25)  # a dashboard refreshing 4x a second
        left_in_spool = int(proc.stdout.read().strip())
    assert proc.returncode == 0
    assert len(seen) >= 3
    assert seen == sorted(seen)  # readers see committed batches only, never a partial one
    assert all(n % 100 == 0 for n in seen)
    assert left_in_spool == 0
    assert count(db) == 3000


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_reopens_the_file_instead_of_using_the_parents_connection(tmp_path: Path) -> None:
    db = tmp_path / "forked.duckdb"
    exporter = DuckDBSpanExporter(db, hold_idle_s=60)  # the parent holds the file when it forks
    assert exporter.export([make_span()]) is SpanExportResult.SUCCESS
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        ok = exporter.export([make_span(span_id=0xC41D)]) is SpanExportResult.SUCCESS
        exporter.shutdown()
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert exporter.export([make_span()]) is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert count(db) == 3


_EXITING_WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[2])
    from test_exporter import make_span
    from otel_llm_cost.storage.exporter import DuckDBSpanExporter

    exporter = DuckDBSpanExporter(sys.argv[1])  # no TracerProvider, no shutdown(): the script just ends
    exporter.export([make_span(start_ns=1_736_942_400_000_000_000 + i) for i in range(50)])
    """
)


@pytest.mark.slow
def test_an_exporter_never_shut_down_commits_its_journal_when_the_process_exits(tmp_path: Path) -> None:
    db = tmp_path / "exiting.duckdb"
    env = {key: value for key, value in os.environ.items() if key != "HOME"}  # duckdb 2.0's exit trap
    result = subprocess.run(
        [sys.executable, "-c", _EXITING_WRITER, str(db), str(TESTS_DIR)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert list(Path(f"{db}.spool").glob("*.batch")) == []
    # Plain DuckDB, which commits nothing on its own: the rows were committed before the exit.
    import duckdb  # noqa: PLC0415

    with contextlib.closing(duckdb.connect(str(db), read_only=True)) as con:
        assert con.execute(f"SELECT count(*) FROM {_schema.CALLS_TABLE}").fetchone() == (50,)
