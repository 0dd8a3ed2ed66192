"""Time each CostStore report against the equivalent hand-written SQL, in the same run, on the same file.

    python benchmarks/gen_calls.py --rows 10000000 --db /tmp/bench_calls.duckdb
    python benchmarks/bench_store.py --db /tmp/bench_calls.duckdb

Each figure is the best of ``--repeat`` hot runs (after one warm-up), CostStore and raw SQL runs
alternating, because the machine is shared and the minimum is the figure least disturbed by other
processes. Targets: every report under 100 ms hot on 10M calls and at most 1.2x its hand-written SQL.
The hand-written SQL reads the raw rows; CostStore reads the file's rollup where it has one (see
docs/performance.md), and the header line says how much of the file the rollup covers. The
hand-written SQL is what an analyst would type: literal timestamps, no parameters,
``con.sql(...).to_arrow_table()`` on a connection held open; the CostStore side includes taking its
file handle, binding parameters and building the typed Decimal results.

A CostStore on a path holds the file only while it queries (so the exporting application can write):
back-to-back reports share one handle (the "hot" column), but a report that comes after the handle
was released (``hold_idle_s`` without a query) reopens the file and starts with an empty DuckDB buffer
cache. The "after idle" column times that case (best of ``--idle-repeat``), with no other connection
to the file open in this process, and the open itself is timed on its own, beside opening an in-memory
DuckDB (starting a database instance costs that much whatever it opens).

The hand-written SQL of ``session_summary`` asks what the report answers: the session's totals, its
spend by provider and by model, and its calls.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from otel_llm_cost.query import CostStore
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage import rollup as _rollup

END = datetime(2025, 2, 1, tzinfo=UTC)
START = END - timedelta(days=30)
WEEK = END - timedelta(days=7)

S = "TIMESTAMPTZ '2025-01-02 00:00:00+00'"
E = "TIMESTAMPTZ '2025-02-01 00:00:00+00'"
W = "TIMESTAMPTZ '2025-01-25 00:00:00+00'"
WINDOW = f"billable AND start_time >= {S} AND start_time < {E}"
CALL_COLUMNS = (
    "span_id, trace_id, start_time, end_time, duration_ms, coalesce(response_model, request_model), "
    "provider, feature, agent, user_id, org_id, session_id, workflow_id, workflow_label, step, input_tokens, "
    "output_tokens, cache_read_tokens, cache_write_tokens, total_tokens, cost_usd, cost_status, cost_reason, "
    "from_cache, reasoning_tokens, time_to_first_token_ms, conversation_id, parent_span_id"
)


def _group(expression: str, where: str = WINDOW) -> str:
    return (
        f"SELECT {expression} AS key, sum(cost_usd), sum(total_tokens), count(*), "
        f"count(*) FILTER (WHERE cost_usd IS NULL AND NOT coalesce(from_cache, false)) "
        f"FROM llm_calls WHERE {where} GROUP BY 1 ORDER BY 2 DESC NULLS LAST"
    )


def cases(store: CostStore, workflow_id: str, session_id: str) -> list[tuple[str, Callable[[], object], str]]:
    totals = (
        "SELECT count(*), count(*) FILTER (WHERE cost_usd IS NULL AND NOT coalesce(from_cache, false)), "
        "sum(cost_usd), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), "
        "sum(cache_write_tokens), "
        "sum(reasoning_tokens), sum(total_tokens), sum(total_tokens) FILTER (WHERE cost_usd IS NOT NULL), "
        "sum(cache_saved_usd), count(*) FILTER (WHERE cache_hit), count(*) FILTER (WHERE from_cache), "
        "sum(duration_ms), min(start_time), max(end_time) FROM llm_calls WHERE {where}"
    )
    return [
        (
            "summary (30 days)",
            lambda: store.summary(START, END),
            totals.format(where=WINDOW) + "; SELECT count(*) FROM llm_calls WHERE billable = false "
            f"AND start_time >= {S} AND start_time < {E}",
        ),
        (
            "cost_by_model (30 d)",
            lambda: store.cost_by_model(START, END),
            _group("coalesce(response_model, request_model)"),
        ),
        ("cost_by feature (30 d)", lambda: store.cost_by("feature", START, END), _group("feature")),
        ("cost_by user (30 d)", lambda: store.cost_by("user", START, END), _group("user_id")),
        ("cost_by tag:team (30 d)", lambda: store.cost_by("tag:team", START, END), _group("tags['team']")),
        (
            "cost_by org (7 days)",
            lambda: store.cost_by("org", WEEK, END),
            _group("org_id", f"billable AND start_time >= {W} AND start_time < {E}"),
        ),
        (
            "daily_cost UTC (30 d)",
            lambda: store.daily_cost(START, END),
            "SELECT CAST(timezone('UTC', start_time) AS DATE) AS d, sum(cost_usd), count(*) "
            f"FROM llm_calls WHERE {WINDOW} GROUP BY 1 ORDER BY 1",
        ),
        (
            "daily_cost New York (30 d)",
            lambda: store.daily_cost(START, END, "America/New_York"),
            "SELECT CAST(timezone('America/New_York', start_time) AS DATE) AS d, sum(cost_usd), count(*) "
            f"FROM llm_calls WHERE {WINDOW} GROUP BY 1 ORDER BY 1",
        ),
        (
            "top_calls 10 (30 d)",
            lambda: store.top_calls(10, START, END),
            f"SELECT * FROM llm_calls WHERE {WINDOW} AND cost_usd IS NOT NULL "
            "ORDER BY cost_usd DESC LIMIT 10",
        ),
        (
            "workflow_totals",
            lambda: store.workflow_totals(workflow_id),
            totals.format(where=f"billable AND workflow_id = '{workflow_id}'"),
        ),
        (
            "steps_for_workflow",
            lambda: store.steps_for_workflow(workflow_id),
            f"SELECT * FROM llm_calls WHERE billable AND workflow_id = '{workflow_id}' ORDER BY start_time",
        ),
        (
            "session_summary",
            lambda: store.session_summary(session_id),
            totals.format(where=f"billable AND session_id = '{session_id}'")
            + "; "
            + _group("provider", f"billable AND session_id = '{session_id}'")
            + "; "
            + _group("coalesce(response_model, request_model)", f"billable AND session_id = '{session_id}'")
            # The report lists the session's calls too.
            + f"; SELECT {CALL_COLUMNS} FROM llm_calls WHERE billable AND session_id = '{session_id}' "
            "ORDER BY start_time, span_id",
        ),
        (
            "savings (30 d)",
            lambda: store.savings(START, END),
            "SELECT sum(cache_saved_usd), sum(cache_read_tokens), count(*) FILTER (WHERE cache_hit), "
            "count(*) FILTER (WHERE json_extract_string(attributes, '$.\"prompt.could_use_haiku\"') = 'true' "
            "OR json_extract_string(attributes, '$.\"model.recommendation\"') IS NOT NULL) "
            f"FROM llm_calls WHERE {WINDOW}",
        ),
    ]


def interleaved_best(
    first: Callable[[], object], second: Callable[[], object], repeat: int
) -> tuple[float, float, float, float]:
    """Best wall time of each, alternating runs so that load from other processes hits both alike, and
    the best CPU time of each (this process, DuckDB's threads included), which that load disturbs less."""
    first()  # warm-up: file pages and plan caches
    second()
    times: tuple[list[float], list[float]] = ([], [])
    cpu: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for fn, bucket, cpu_bucket in ((first, times[0], cpu[0]), (second, times[1], cpu[1])):
            started, cpu_started = time.perf_counter(), time.process_time()
            fn()
            bucket.append(time.perf_counter() - started)
            cpu_bucket.append(time.process_time() - cpu_started)
    return min(times[0]), min(times[1]), min(cpu[0]), min(cpu[1])


def idle_best(store: CostStore, call: Callable[[], object], repeat: int) -> float:
    """Best time of ``call`` when it must reopen the file (the store released it after being idle)."""
    times = []
    for _ in range(repeat):
        while store.holds_file:
            time.sleep(0.02)
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times)


def open_best(path: Path, repeat: int) -> float:
    """Best time of a read-only open (version check included) and close, as CostStore does it."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        _storage.connect(path, read_only=True).close()
        times.append(time.perf_counter() - started)
    return min(times)


def memory_open_best(repeat: int) -> float:
    """Best time of opening and closing an in-memory DuckDB: what starting a database costs, file or not."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        duckdb.connect(":memory:").close()
        times.append(time.perf_counter() - started)
    return min(times)


def rollup_state(connection: duckdb.DuckDBPyConnection) -> str:
    """Whether reports can read the rollup (storage/rollup.py), and how much of the file it covers."""
    try:
        mark = _rollup.watermark(connection)
    except duckdb.Error:
        return "no rollup (a file written before it existed): reports read raw rows"
    if not mark:
        return "rollup empty or unusable: reports read raw rows"
    return f"rollup covers rows below {mark:,}; {_rollup.pending_rows(connection):,} rows not rolled up yet"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", type=Path, required=True, help="the DuckDB file")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--idle-repeat", type=int, default=2, help="runs per report after an idle release")
    args = parser.parse_args()
    with CostStore(args.db) as store:
        with store.connect() as connection:
            rows = connection.execute("SELECT count(*) FROM llm_calls").fetchall()[0]
            workflow = connection.execute(
                "SELECT workflow_id FROM llm_calls "
                f"WHERE workflow_id IS NOT NULL AND start_time >= {W} LIMIT 1"
            ).fetchall()[0]
            session = connection.execute(
                f"SELECT session_id FROM llm_calls WHERE start_time >= {W} LIMIT 1"
            ).fetchall()[0]
            print(f"{rows[0]:,} rows in {args.db}; {rollup_state(connection)}")
        all_cases = cases(store, workflow[0], session[0])
        print(f"best of {args.repeat} alternating hot runs")
        print(
            f"{'report':<28} {'CostStore ms':>12} {'raw SQL ms':>11} {'ratio':>6}  {'verdict':<7} "
            f"{'CPU ms: CostStore':>17} {'raw SQL':>8}"
        )
        # The analyst's connection, held for the whole run (same DuckDB instance as the store's).
        with contextlib.closing(_storage.connect(args.db, read_only=True)) as raw_connection:
            for name, call, sql in all_cases:
                statements = [s for s in sql.split("; ") if s]

                def raw(statements: list[str] = statements) -> None:
                    for statement in statements:
                        raw_connection.sql(statement).to_arrow_table()

                store_s, raw_s, store_cpu, raw_cpu = interleaved_best(call, raw, args.repeat)
                ratio = store_s / raw_s if raw_s else float("inf")
                ok = store_s < 0.1 and ratio <= 1.2
                verdict = "ok" if ok else "MISS"
                print(
                    f"{name:<28} {store_s * 1000:>12.1f} {raw_s * 1000:>11.1f} {ratio:>6.2f}  {verdict:<7} "
                    f"{store_cpu * 1000:>17.1f} {raw_cpu * 1000:>8.1f}"
                )
        print()
        print(f"after idle (file reopened, cold DuckDB cache), best of {args.idle_repeat}:")
        print(f"{'open + version check + close':<28} {open_best(args.db, 5) * 1000:>12.1f}")
        bare = memory_open_best(5)
        print(f"{'  a bare in-memory DuckDB':<28} {bare * 1000:>12.1f}  (open + close)")
        for name, call, _sql in all_cases:
            idle_s = idle_best(store, call, args.idle_repeat)
            verdict = "ok" if idle_s < 0.5 else "MISS (> 0.5 s)"
            print(f"{name:<28} {idle_s * 1000:>12.1f}  {verdict}")


if __name__ == "__main__":
    main()
