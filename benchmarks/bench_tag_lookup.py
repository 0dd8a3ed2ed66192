"""Time the custom-tag report's map lookup: ``tags[?]`` against the key-position form CostStore uses.

    python benchmarks/gen_calls.py --rows 10000000 --db /tmp/bench_calls.duckdb
    python benchmarks/bench_tag_lookup.py --db /tmp/bench_calls.duckdb

The same 30-day ``cost_by("tag:team")`` query three ways, alternating runs, best and median of
``--repeat``: with ``tags[?]``, with ``map_values(tags)[list_position(map_keys(tags), ?)]`` (what
``otel_llm_cost.query.sql.TAG_VALUE`` is), and grouped by the plain ``feature`` column instead: the
floor a tag stored as its own column would reach. The ratios are the figures (the machine is shared).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from otel_llm_cost.query.sql import TAG_VALUE

START, END = datetime(2025, 1, 2, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)
WHERE = "billable IS DISTINCT FROM false AND start_time >= ? AND start_time < ?"
CASES = {
    "tags[?]": ("tags[?]", ["team"]),
    "TAG_VALUE (key position)": (TAG_VALUE, ["team"]),
    "plain column (floor)": ("feature", []),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    con = duckdb.connect(str(args.db), read_only=True)
    queries = {
        name: (
            f"SELECT {expr} AS key, sum(cost_usd), count(*) FROM llm_calls WHERE {WHERE} GROUP BY ALL",
            params,
        )
        for name, (expr, params) in CASES.items()
    }
    results = {
        name: sorted(map(str, con.execute(q, [*p, START, END]).fetchall()))
        for name, (q, p) in queries.items()
    }
    assert results["tags[?]"] == results["TAG_VALUE (key position)"], "the two lookups disagree"
    times: dict[str, list[float]] = {name: [] for name in queries}
    for _ in range(args.repeat):
        for name, (q, p) in queries.items():
            started = time.perf_counter()
            con.execute(q, [*p, START, END]).fetchall()
            times[name].append(time.perf_counter() - started)
    base = min(times["tags[?]"])
    print(f"{'lookup':<26} {'best ms':>8} {'median ms':>10} {'vs tags[?]':>11}")
    for name, runs in times.items():
        best, median = min(runs) * 1000, statistics.median(runs) * 1000
        print(f"{name:<26} {best:>8.1f} {median:>10.1f} {min(runs) / base:>11.2f}")


if __name__ == "__main__":
    main()
