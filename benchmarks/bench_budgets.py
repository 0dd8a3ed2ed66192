"""What budgets cost on the telemetry path: per-call checks, post-commit evaluation, the guard.

Run: /work/venv/bin/python benchmarks/bench_budgets.py [history_rows]

Prints, for a DuckDB file holding ``history_rows`` calls spread over 30 days (default 1,000,000), 200
orgs and 5,000 users:
- ``check_call`` per span (per-call budget present; the common case: no alert),
- ``on_commit`` per batch of 512 and 10,000 new rows with three window budgets
  (per-org daily, per-user daily, global monthly), no alert firing and with alerts firing,
- ``BudgetGuard.check`` per call.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from otel_llm_cost.budgets import Budget, BudgetEngine, BudgetGuard
from otel_llm_cost.conventions import names as semconv
from otel_llm_cost.storage import connect as _storage

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@dataclass
class Commit:
    connection: duckdb.DuckDBPyConnection
    rows: pa.Table


def fill_history(con: duckdb.DuckDBPyConnection, rows: int) -> None:
    # Time-ordered, as an exporter writes them: over 10M rows, insertion in time order speeds reports
    # more than any index does.
    con.execute(
        """
        INSERT INTO llm_calls (span_id, trace_id, start_time, cost_usd, billable, org_id, user_id,
                               request_model, cost_status, from_cache)
        SELECT printf('%016x', i), printf('%032x', i),
               ?::TIMESTAMPTZ + to_microseconds(CAST(i * (30 * 86400 * 1000000.0 / ?) AS BIGINT)),
               CAST((i % 97) / 10000.0 AS DECIMAL(18,12)), true,
               'org_' || (i % 200), 'h:' || (i % 5000), 'gpt-4o-mini', 'priced', false
        FROM range(?) t(i)
        """,
        [NOW - timedelta(days=30), rows, rows],
    )


def new_batch(con: duckdb.DuckDBPyConnection, start: int, size: int) -> pa.Table:
    con.execute(
        """
        INSERT INTO llm_calls (span_id, trace_id, start_time, cost_usd, billable, org_id, user_id,
                               request_model, cost_status, from_cache)
        SELECT printf('b%015x', i), printf('%032x', i), ?::TIMESTAMPTZ - to_microseconds(i % 1000),
               CAST(0.0001 AS DECIMAL(18,12)), true, 'org_' || (i % 200), 'h:' || (i % 5000),
               'gpt-4o-mini', 'priced', false
        FROM range(?, ?) t(i)
        """,
        [NOW, start, start + size],
    )
    return con.sql(
        f"SELECT * FROM llm_calls WHERE span_id >= 'b{start:015x}' AND span_id < 'b{start + size:015x}'"
    ).to_arrow_table()


def main() -> None:
    history = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.duckdb"
        con = _storage.connect(path)
        t0 = time.perf_counter()
        fill_history(con, history)
        print(f"history: {history:,} rows written in {time.perf_counter() - t0:.1f} s")

        quiet = [
            Budget.per_call(100),
            Budget.per_org_daily(1_000_000),
            Budget.per_user_daily(1_000_000),
            Budget("all-monthly", "global", "month", 10_000_000),
        ]
        engine = BudgetEngine(quiet, [], clock=lambda: NOW)
        attributes = {
            semconv.LLM_COST_USD: 0.0123,
            semconv.COST_ORG_ID: "org_1",
            semconv.LLM_COST_BILLABLE: True,
        }
        n = 50_000
        t0 = time.perf_counter()
        for i in range(n):
            engine.check_call(attributes, trace_id=i + 1, span_id=i + 1, start_time_ns=1)
        print(f"check_call: {(time.perf_counter() - t0) / n * 1e6:.1f} us per span (no alert)")

        offset = 0
        for size in (512, 10_000):
            for label, budgets in (
                ("no alert", quiet),
                ("alerts firing", [Budget.per_org_daily("0.0001"), Budget.per_user_daily("0.0001")]),
            ):
                timings = []
                for _ in range(3):
                    rows = new_batch(con, offset, size)
                    offset += size
                    engine = BudgetEngine(budgets, [], clock=lambda: NOW)
                    t0 = time.perf_counter()
                    engine.on_commit(Commit(con, rows))
                    timings.append(time.perf_counter() - t0)
                median = statistics.median(timings)
                print(
                    f"on_commit: {size:>6,} rows, {label:<13}: median {median * 1000:.0f} ms "
                    f"per batch ({median / size * 1e6:.1f} us/row)"
                )

        guard = BudgetGuard(con, [Budget.per_org_daily(1_000_000)], user_id_hasher=None)
        n = 200
        t0 = time.perf_counter()
        for i in range(n):
            guard.check(org=f"org_{i % 200}", at=NOW)
        print(f"BudgetGuard.check: {(time.perf_counter() - t0) / n * 1000:.2f} ms per call")
        with contextlib.suppress(Exception):
            con.close()


if __name__ == "__main__":
    main()
