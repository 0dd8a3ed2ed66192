"""Readers, forks and budget checks on a lake, against a real PostgreSQL server and real processes.

The dashboard and ``export`` read a lake read-only; a writer forked by a pre-fork server (gunicorn,
celery) reopens its own connections; ``budgets check --fire`` run by several processes at once takes
the writers' commit lock, so each alert fires once. Skipped (or failed) as ``test_lake.py`` says.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from opentelemetry.sdk.trace.export import SpanExportResult

import lake_feed
from helpers import wait_until
from otel_llm_cost import Budget, CostStore, DuckDBSpanExporter, _logging
from otel_llm_cost.budgets import BudgetGuard
from otel_llm_cost.cli import main
from otel_llm_cost.exceptions import BudgetExceeded
from otel_llm_cost.pricing import PriceBook
from otel_llm_cost.query.results import RepriceResult
from otel_llm_cost.storage.lake import LakeTarget, open_lake
from otel_llm_cost.storage.lake_lock import CommitLock
from test_collector_pipeline import serve_process
from test_lake import _export, lake, needs_lake, server  # noqa: F401 - the fixtures, shared
from test_ui_receiver import send_calls, window
from ui_helpers import PageReader

DAY = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
CALLS = 1200  # lake_feed spans 0..1199: one a second from 2026-01-01T00:00Z


@pytest.fixture
def filled(lake: LakeTarget, tmp_path: Path) -> LakeTarget:  # noqa: F811 - the imported fixture
    _export(DuckDBSpanExporter(lake.target, data_path=lake.data_path, spool_dir=tmp_path / "j"), 0, CALLS)
    return lake


@contextlib.contextmanager
def _dashboard(target: str) -> Iterator[str]:
    """``otel-llm-cost ui --db TARGET`` in a subprocess; yields the URL it announced."""
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_llm_cost", "ui", "--db", target, "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert process.stderr is not None
    drain = threading.Thread(target=process.stderr.read, daemon=True)  # after the banner
    try:
        seen: list[str] = []
        for line in process.stderr:  # the banner, or the end of the stream if the command failed
            seen.append(line)
            if "dashboard on " in line:
                break
        else:
            pytest.fail("ui never announced its URL:\n" + "".join(seen))
        drain.start()
        yield line.split("dashboard on ")[1].split()[0].rstrip("/")
    finally:
        process.terminate()
        process.wait(timeout=30)
        if drain.is_alive():
            drain.join(timeout=30)
        process.stderr.close()


@needs_lake
@pytest.mark.slow
def test_the_dashboard_on_a_lake_shows_what_cost_store_reads(filled: LakeTarget) -> None:
    with (
        _dashboard(filled.target) as base,
        urllib.request.urlopen(f"{base}/?from=2026-01-01&to=2026-01-01&tz=UTC", timeout=60) as response,
    ):
        assert response.status == 200
        reader = PageReader(response.read().decode())
    with CostStore(filled.target) as store:
        summary = store.summary(*DAY)
    assert summary.call_count == CALLS
    assert Decimal(reader.cards["spend"] or "") == summary.cost_usd
    assert int(reader.cards["calls"] or 0) == summary.call_count
    assert int(reader.cards["tokens"] or 0) == summary.total_tokens
    assert int(reader.cards["unpriced"] or 0) == summary.unpriced_calls > 0


@needs_lake
@pytest.mark.slow
def test_serve_ui_on_a_lake_shows_the_calls_the_receiver_just_committed(
    lake: LakeTarget,  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> None:
    env = {
        "OTEL_LLM_COST_LAKE_DATA_PATH": lake.data_path or "",
        "OTEL_LLM_COST_SPOOL_DIR": str(tmp_path / "j"),
    }
    with serve_process("--db", lake.target, "--ui", env=env) as (_, url, stderr):
        ui = url.removesuffix("/v1/traces") + "/ui/"
        assert f"dashboard on {ui} (read-only)" in stderr.text(timeout_s=0)
        send_calls(url, 12)
        wait_until(
            lambda: _stored(lake.target) == 12, timeout_s=120, what="every acknowledged call committed"
        )
        query, start, end = window()
        with urllib.request.urlopen(f"{ui}?{query}", timeout=60) as response:
            cards = PageReader(response.read().decode()).cards
        with urllib.request.urlopen(f"{ui}breakdown?{query}&dim=feature", timeout=60) as response:
            table = PageReader(response.read().decode()).table("breakdown")
        with CostStore(lake.target) as store:
            summary = store.summary(start, end)
            by_feature = store.cost_by("feature", start, end)
        assert summary.call_count == 12
        assert Decimal(cards["spend"] or "") == summary.cost_usd
        assert int(cards["calls"] or 0) == 12
        assert table.texts(0) == [row.key for row in by_feature]
        assert [Decimal(value or "") for value in table.values(1)] == [
            row.total_cost_usd for row in by_feature
        ]
        # Calls arriving while the page is open show on its next load.
        send_calls(url, 3, first=12)
        wait_until(lambda: _stored(lake.target) == 15, timeout_s=120, what="the new calls committed")
        with urllib.request.urlopen(f"{ui}?{query}", timeout=60) as response:
            assert int(PageReader(response.read().decode()).cards["calls"] or 0) == 15


def _stored(target: str) -> int:
    with CostStore(target) as store:
        return store.summary().call_count


@needs_lake
@pytest.mark.slow
def test_export_and_query_read_a_lake_and_cannot_write_it(
    filled: LakeTarget, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "calls.csv"
    args = ["--db", filled.target, "--since", "2026-01-01", "--until", "2026-01-02"]
    assert main(["export", *args, "--format", "csv", "--output", str(out)]) == 0
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    with CostStore(filled.target) as store:
        summary = store.summary(*DAY)
    assert len(rows) == summary.call_count == CALLS
    assert sum(Decimal(r["cost_usd"]) for r in rows if r["cost_usd"]) == summary.cost_usd
    capsys.readouterr()
    assert main(["query", "--db", filled.target, "DELETE FROM llm_calls"]) != 0
    assert "read-only" in capsys.readouterr().err
    with CostStore(filled.target) as store:
        assert store.summary(*DAY).call_count == CALLS


@needs_lake
def test_a_budget_guard_reads_spend_on_a_lake(
    filled: LakeTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # a lake target must never become a file name
    with CostStore(filled.target) as store:
        spent = store.summary(None, None).cost_usd
    guard = BudgetGuard(filled.target, [Budget("all", "global", "lifetime", spent)])
    try:
        with pytest.raises(BudgetExceeded) as raised:
            guard.check()
        assert raised.value.spent_usd == spent
    finally:
        guard.close()
    assert list(cwd.iterdir()) == []


@needs_lake
@pytest.mark.slow
def test_a_forked_child_writes_the_lake_on_its_own_connections(lake: LakeTarget, tmp_path: Path) -> None:  # noqa: F811
    exporter = DuckDBSpanExporter(lake.target, data_path=lake.data_path, spool_dir=tmp_path / "j")
    assert exporter.export([lake_feed.span(0)]) is SpanExportResult.SUCCESS
    assert exporter.force_flush(60_000)  # the parent has its lake connection and lock session open
    failures = _logging.ERROR_COUNTS.copy()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, which exits as a pre-fork worker does
        ok = exporter.export([lake_feed.span(1)]) is SpanExportResult.SUCCESS and exporter.force_flush(60_000)
        exporter.shutdown()  # closes the child's connections, never the parent's
        os._exit(0 if ok and failures == _logging.ERROR_COUNTS else 1)
    deadline = time.monotonic() + 120
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung committing to the lake")
    assert os.waitstatus_to_exitcode(done[1]) == 0
    # The parent's catalog sessions survived the child's exit.
    assert exporter.export([lake_feed.span(2)]) is SpanExportResult.SUCCESS
    assert exporter.force_flush(60_000)
    exporter.shutdown()
    assert failures == _logging.ERROR_COUNTS  # no commit failed and had to be retried
    with contextlib.closing(open_lake(lake, create=False)) as con:
        stored = con.execute("SELECT span_id FROM llm_calls ORDER BY span_id").fetchall()
    assert [int(s, 16) for (s,) in stored] == [1, 2, 3]
    assert not list((tmp_path / "j").glob("*.batch"))


_BUDGETS = textwrap.dedent(
    """
    [defaults]
    thresholds = [0.25, 0.5, 0.75, 1.0]
    [[budget]]
    name = "all"
    scope = "global"
    window = "lifetime"
    limit_usd = "0.5"
    [[budget]]
    name = "per-feature"
    scope = "feature"
    window = "daily"
    tz = "UTC"
    limit_usd = "0.1"
    [[budget]]
    name = "per-model"
    scope = "model"
    window = "monthly"
    tz = "UTC"
    limit_usd = "0.1"
    """
)


def _advisory_waiters(target: LakeTarget) -> int:
    with psycopg.connect(target.libpq_dsn, autocommit=True) as con:
        row = con.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()
    return int(row[0]) if row else 0


@needs_lake
@pytest.mark.slow
def test_budget_checks_run_at_once_fire_each_alert_once(
    filled: LakeTarget, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    budgets = tmp_path / "budgets.toml"
    budgets.write_text(_BUDGETS)
    command = [sys.executable, "-m", "otel_llm_cost", "budgets", "check", "--fire", "--budgets", str(budgets)]
    command += ["--db", filled.target, "--at", "2026-01-01T12:00"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    lock = CommitLock(filled.libpq_dsn)
    try:
        with lock.held(10):  # as a writer committing: every check waits for it, then runs alone
            checks = [
                subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                for _ in range(4)
            ]
            wait_until(lambda: _advisory_waiters(filled) == 4, timeout_s=120, what="4 checks waiting")
    finally:
        lock.close()
    fired: list[list[str]] = []
    for check in checks:
        out, err = check.communicate(timeout=120)
        assert check.returncode == 1, err  # over budget
        fired.append([line for line in out.splitlines() if line.startswith("ALERT")])
    # The first check to get the lock fires every alert; the others find them recorded.
    assert sorted(len(lines) for lines in fired)[:3] == [0, 0, 0]
    assert len(max(fired, key=len)) >= 9
    with contextlib.closing(open_lake(filled, create=False)) as con:
        stored = con.execute("SELECT budget, entity, kind, threshold FROM budget_alerts").fetchall()
    # Lower thresholds crossed in the same check are recorded, and only the highest delivered.
    assert len(stored) == len(set(stored)) >= len(max(fired, key=len))
    capsys.readouterr()
    assert main(["alerts", "--db", filled.target, "--format", "json", "--limit", "1000"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == len(stored)
    status = ["budgets", "status", "--budgets", str(budgets), "--db", filled.target, "--format", "json"]
    assert main([*status, "--at", "2026-01-01T12:00"]) == 0
    spent = {(s["budget"], s["entity"]): Decimal(s["spent_usd"]) for s in json.loads(capsys.readouterr().out)}
    with CostStore(filled.target) as store:
        assert spent[("all", "*")] == store.summary(None, None).cost_usd


@needs_lake
@pytest.mark.slow
def test_reprice_on_a_lake_commits_under_the_writers_commit_lock(filled: LakeTarget, tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."no-such-model-xyz"]\ninput = 1\noutput = 2\n')
    book = PriceBook.from_file(prices)
    with CostStore(filled.target) as store:
        unpriced = store.summary(None, None).unpriced_calls
    assert unpriced > 0
    results: list[RepriceResult | BaseException] = []

    def reprice(store: CostStore) -> None:
        try:
            results.append(store.reprice(pricebook=book))
        except BaseException as exc:
            results.append(exc)

    lock = CommitLock(filled.libpq_dsn)
    with CostStore(filled.target, read_only=False) as store:
        try:
            with lock.held(10):  # as a writer committing
                worker = threading.Thread(target=reprice, args=(store,))
                worker.start()
                wait_until(lambda: _advisory_waiters(filled) == 1, timeout_s=120, what="reprice to wait")
                assert not results
        finally:
            lock.close()
        worker.join(timeout=120)
    [result] = results
    assert isinstance(result, RepriceResult), result
    assert result.rows_newly_priced == unpriced
    with CostStore(filled.target) as store:
        assert store.summary(None, None).unpriced_calls == 0
