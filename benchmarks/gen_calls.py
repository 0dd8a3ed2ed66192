"""Generate N synthetic, time-ordered llm_calls rows into a DuckDB file, entirely in DuckDB SQL.

    python benchmarks/gen_calls.py --rows 10000000 --db /tmp/bench_calls.duckdb

Rows are spread evenly over ``--days`` days ending 2025-02-01 UTC, in start order (DuckDB zone maps:
insertion in time order is what keeps window scans fast; DuckDB keeps the order of ``range`` on
insert). Values come from a hash of the row number, so the same N gives the same file: 8 models on
4 providers (one unpriced), 20 features, 10,000 users,
200 orgs, sessions of 8 calls, 3-step workflows on 30% of calls, prompt-cache reads on a quarter,
3% duplicate (non-billable) records, 2% calls tagged downgradable, a `team` custom tag.

The file is then rolled up (``storage/rollup.py``) and its session table filled (``storage/sessions.py``),
as the exporting application's writer does while idle, so that reports read them; ``--no-rollup`` leaves
both out, as in a file written before they existed (reports read raw rows).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage import rollup as _rollup
from otel_llm_cost.storage import schema as _schema
from otel_llm_cost.storage import sessions as _sessions

END_EPOCH_S = 1_738_368_000  # 2025-02-01T00:00:00Z

# (model, provider, USD per input token, USD per output token); NULL prices make the model unpriced.
MODELS = (
    ("gpt-4o-2024-08-06", "openai", "0.0000025", "0.00001"),
    ("gpt-4o-mini-2024-07-18", "openai", "0.00000015", "0.0000006"),
    ("claude-sonnet-4-5-20250929", "anthropic", "0.000003", "0.000015"),
    ("claude-3-5-haiku-20241022", "anthropic", "0.0000008", "0.000004"),
    ("gemini-2.0-flash", "google", "0.0000001", "0.0000004"),
    ("gemini-2.5-pro", "google", "0.00000125", "0.00001"),
    ("text-embedding-3-small", "openai", "0.00000002", "0"),
    ("acme-coder-2-ft", "acme", None, None),
)


def _list(values: list[str]) -> str:
    return "[" + ", ".join(values) + "]"


def _prices(index: int) -> str:
    return _list([f"CAST('{m[index]}' AS DECIMAL(18,12))" if m[index] else "NULL" for m in MODELS])


def generate(path: Path, rows: int, days: int, *, roll_up: bool = True) -> float:
    """Create ``path`` with ``rows`` calls; return the seconds it took."""
    started = time.perf_counter()
    step_s = days * 86400 / rows
    with contextlib.closing(_storage.connect(path)) as connection:
        connection.execute(
            f"""
            INSERT INTO {_schema.CALLS_TABLE} ({", ".join(_schema.CALL_COLUMN_NAMES)})
            WITH base AS (
                SELECT i, hash(i) AS h, CAST(hash(i) % {len(MODELS)} + 1 AS INTEGER) AS m
                FROM range({rows}) AS r(i)
            ), shaped AS (
                SELECT i, h,
                    to_timestamp({END_EPOCH_S - days * 86400} + i * {step_s}) AS start_time,
                    CAST(200 + (h >> 20) % 8000 AS BIGINT) AS input_tokens,
                    CAST(20 + (h >> 34) % 1500 AS BIGINT) AS output_tokens,
                    (h >> 40) % 4 = 0 AS cached,
                    (h >> 40) % 4 = 1 AS cache_written,
                    {_list([repr(model) for model, *_ in MODELS])}[m] AS model,
                    {_list([repr(provider) for _, provider, *_ in MODELS])}[m] AS provider,
                    {_prices(2)}[m] AS price_in,
                    {_prices(3)}[m] AS price_out
                FROM base
            )
            SELECT
                printf('%016x', i), printf('%032x', i // 4), NULL,
                'svc-' || (h >> 8) % 3, 'opentelemetry.instrumentation.openai_v2', 'chat ' || model,
                start_time, start_time + to_milliseconds(CAST(300 + (h >> 12) % 5000 AS BIGINT)),
                CAST(300 + (h >> 12) % 5000 AS DOUBLE), 'UNSET', NULL,
                'chat', provider, model, model, model, NULL, 'gen_ai',
                input_tokens, output_tokens, input_tokens + output_tokens,
                CASE WHEN cached THEN input_tokens // 2 ELSE 0 END,
                CASE WHEN cache_written THEN input_tokens // 4 ELSE 0 END, 0, 0,
                CAST(input_tokens * price_in + output_tokens * price_out AS DECIMAL(18,12)),
                CAST(input_tokens * price_in AS DECIMAL(18,12)), 0, 0,
                CAST(output_tokens * price_out AS DECIMAL(18,12)),
                CASE WHEN price_in IS NULL THEN 'unpriced' ELSE 'priced' END,
                CASE WHEN price_in IS NULL THEN 'unknown model' END,
                CASE WHEN price_in IS NOT NULL THEN 'genai-prices 0.2.3' END,
                NULL,
                (h >> 50) % 33 <> 0, NULL,
                cached, CASE WHEN cached THEN input_tokens // 2 ELSE 0 END,
                CAST(CASE WHEN cached THEN input_tokens // 2 * price_in * 0.9 ELSE 0 END AS DECIMAL(18,12)),
                'feature_' || (h >> 8) % 20, 'agent_' || (h >> 14) % 5,
                'h:' || printf('%032x', (h >> 16) % 10000), 'org_' || (h >> 30) % 200,
                's' || i // 8,
                CASE WHEN (h >> 24) % 10 < 3 THEN 'wf' || i // 3 END,
                CASE WHEN (h >> 24) % 10 < 3 THEN 'label_' || (h >> 26) % 4 END,
                CASE WHEN (h >> 24) % 10 < 3 THEN ['extract', 'classify', 'answer'][i % 3 + 1] END,
                {_list([f"MAP {{'team': 'team_{k}'}}" for k in range(7)])}
                    [CAST((h >> 44) % 7 + 1 AS INTEGER)],
                'resp-' || i, false, (h >> 56) % 100 = 0,
                -- Constant JSON values: a VARCHAR would be parsed and validated on every row.
                CASE WHEN (h >> 52) % 50 = 0 THEN CAST('{{"prompt.could_use_haiku":true}}' AS JSON)
                     ELSE CAST('{{"gen_ai.request.temperature":0.2}}' AS JSON) END,
                -- conversation_id, time_to_first_token_ms, unbilled_cost_usd, service_tier
                NULL, NULL, NULL, NULL
            FROM shaped
            """
        )
        if roll_up:
            _rollup.catch_up(connection, max_rows=None)
            _sessions.catch_up(connection, max_rows=None)
        else:
            tables = (_sessions.SESSIONS_TABLE, _sessions.SESSIONS_STATE_TABLE)
            for table in (_rollup.ROLLUP_TABLE, _rollup.ROLLUP_STATE_TABLE, *tables):
                connection.execute(f"DROP TABLE {table}")
        connection.execute("CHECKPOINT")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--db", type=Path, required=True, help="the DuckDB file")
    parser.add_argument(
        "--no-rollup", action="store_true", help="leave the rollup and session table out (an older file)"
    )
    args = parser.parse_args()
    for leftover in (args.db, Path(f"{args.db}.wal")):
        leftover.unlink(missing_ok=True)
    seconds = generate(args.db, args.rows, args.days, roll_up=not args.no_rollup)
    size_mb = args.db.stat().st_size / 1e6
    print(
        f"generated {args.rows:,} calls over {args.days} days into {args.db} "
        f"in {seconds:.1f} s ({size_mb:,.0f} MB)"
    )


if __name__ == "__main__":
    main()
