"""Feed arbitrary LLM-looking spans through the real pipeline and count what became of them.

Every span declares an LLM operation (``gen_ai.operation.name``) and carries a random subset of count,
model, provider, kind and cost attributes of every supported convention, with values drawn from wrong
types, negatives, NaN/inf, booleans, huge integers, unicode and quotes/newlines in model names, and
figures "claimed" by an upstream processor. They go through a TracerProvider, ``LLMCostSpanProcessor``
and a ``BatchSpanProcessor`` around ``DuckDBSpanExporter`` into a fresh file (flushed every
``--flush-every`` spans, so the SDK queue never overflows). Then the file is read back and checked.

Printed: spans sent, rows stored (by status), spans not stored, rows breaking a rule (must be 0), and
the report's total over the file, with the time per span beside a bare SDK span's (no processor, the
floor) measured in the same run.

    PYTHONPATH=src python benchmarks/bench_fuzz_rows.py                 # 1M spans
    PYTHONPATH=src python benchmarks/bench_fuzz_rows.py --spans 100000 --seed 7
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from otel_llm_cost import DuckDBSpanExporter, LLMCostSpanProcessor
from otel_llm_cost.storage.invariants import MAX_TOKEN_COUNT

COUNT_KEYS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_write.input_tokens",
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.prompt_tokens",
    "gen_ai.usage.total_tokens",
    "llm.token_count.prompt",
    "llm.token_count.completion",
    "llm.token_count.prompt_details.cache_read",
    "llm.tokens.input",
    "llm.tokens.output",
    "llm.tokens.total",
)
TEXT_KEYS = (
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.provider.name",
    "llm.model_name",
    "openinference.span.kind",
    "traceloop.span.kind",
    "cost.user_id",
)
CLAIM_KEYS = (
    "llm.cost.status",
    "llm.cost_usd",
    "gen_ai.usage.cost",
    "gen_ai.usage.cost.source",
    "llm.cost.billable",
)
MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "claude-sonnet-4-20250514",
    "text-embedding-3-small",
    "myres/gpt-4o",
    'we"ird\nmodel',
    "модель",
    "",
)
KINDS = ("LLM", "AGENT", "CHAIN", "workflow", "task", "EMBEDDING")
STATUSES = ("priced", "unpriced", "reported", "free", "invalid", "bogus")


def number(rng: random.Random) -> Any:
    pick = rng.random()
    if pick < 0.5:
        return rng.randint(0, 5000)
    return rng.choice(
        [
            -1,
            -(10**9),
            10**12,
            10**12 + 1,
            10**15,
            2**63 - 1,
            float("nan"),
            float("inf"),
            -0.5,
            12.0,
            True,
            False,
            "12",
            "many",
            rng.uniform(-1e20, 1e20),
        ]
    )


def text(rng: random.Random) -> Any:
    return rng.choice([*MODELS, *KINDS, "openai", "anthropic", "alice@example.com", 42, True])


def claim(rng: random.Random, key: str) -> Any:
    if key == "llm.cost.status":
        return rng.choice(STATUSES)
    if key == "gen_ai.usage.cost.source":
        return rng.choice(["provider", "openlit"])
    if key == "llm.cost.billable":
        return rng.choice([True, False, 1, "no"])
    return rng.choice([0.0, 0.01, -5000.0, 5e6, float("nan"), float("inf"), "0.5"])


def attributes(rng: random.Random) -> dict[str, Any]:
    out: dict[str, Any] = {"gen_ai.operation.name": rng.choice(["chat", "text_completion", "embeddings"])}
    for key in rng.sample(COUNT_KEYS, rng.randint(0, 5)):
        out[key] = number(rng)
    for key in rng.sample(TEXT_KEYS, rng.randint(0, 4)):
        out[key] = text(rng)
    if rng.random() < 0.2:
        for key in rng.sample(CLAIM_KEYS, rng.randint(1, 4)):
            out[key] = claim(rng, key)
    return out


BROKEN_RULES = f"""
SELECT count(*) FROM llm_calls WHERE
    NOT (coalesce(input_tokens, 0) BETWEEN 0 AND {MAX_TOKEN_COUNT})
    OR NOT (coalesce(output_tokens, 0) BETWEEN 0 AND {MAX_TOKEN_COUNT})
    OR total_tokens IS DISTINCT FROM input_tokens + output_tokens
    OR coalesce(cache_read_tokens, 0) + coalesce(cache_write_tokens, 0) > coalesce(input_tokens, 0)
    OR coalesce(reasoning_tokens, 0) > coalesce(output_tokens, 0)
    OR least(cost_usd, input_cost_usd, output_cost_usd, external_cost_usd, unbilled_cost_usd) < 0
    OR cost_status NOT IN ('priced', 'unpriced', 'reported', 'free', 'invalid')
    OR (cost_status IN ('priced', 'reported', 'free') AND coalesce(cost_usd, unbilled_cost_usd) IS NULL)
    OR (cost_status IN ('unpriced', 'invalid') AND (cost_usd IS NOT NULL OR cost_reason IS NULL))
    OR (billable = false AND cost_usd IS NOT NULL)
    OR (user_id IS NOT NULL AND NOT regexp_full_match(user_id, 'h:[0-9a-f]{{32}}'))
"""


def run(spans: int, seed: int, flush_every: int, db: Path) -> None:
    rng = random.Random(seed)
    batches = [
        [attributes(rng) for _ in range(min(flush_every, spans - start))]
        for start in range(0, spans, flush_every)
    ]

    bare = TracerProvider()
    tracer = bare.get_tracer("bench")
    began = time.perf_counter()
    for batch in batches:
        for attrs in batch:
            tracer.start_span("llm", attributes=attrs).end()
    bare_s = time.perf_counter() - began
    bare.shutdown()

    provider = TracerProvider()
    exporter = DuckDBSpanExporter(db)
    provider.add_span_processor(
        LLMCostSpanProcessor(
            BatchSpanProcessor(exporter, max_queue_size=2 * flush_every, max_export_batch_size=8192)
        )
    )
    tracer = provider.get_tracer("bench")
    began = time.perf_counter()
    for batch in batches:
        for attrs in batch:
            tracer.start_span("llm", attributes=attrs).end()
        provider.force_flush()
    provider.shutdown()
    piped_s = time.perf_counter() - began

    with duckdb.connect(str(db), read_only=True) as con:
        by_status = dict(
            con.execute("SELECT cost_status, count(*) FROM llm_calls GROUP BY 1 ORDER BY 1").fetchall()
        )
        rows = sum(by_status.values())
        broken = con.execute(BROKEN_RULES).fetchone()
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "otel_llm_cost",
            "report",
            "--db",
            str(db),
            "--since",
            "36500d",
            "--format",
            "csv",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    total_line = next(
        (line for line in report.stdout.splitlines() if line.startswith("total,")), report.stderr.strip()
    )
    print(f"spans sent          {spans:>12,}")
    print(f"rows stored         {rows:>12,}   " + ", ".join(f"{k} {v:,}" for k, v in by_status.items()))
    print(f"not stored          {spans - rows:>12,}")
    print(f"rows breaking rules {broken[0] if broken else -1:>12,}")
    print(f"report exit         {report.returncode:>12}   {total_line}")
    print(f"pipeline            {piped_s / spans * 1e6:>9.1f} us/span (wall, incl. storage)")
    print(f"bare SDK span       {bare_s / spans * 1e6:>9.1f} us/span   ratio {piped_s / bare_s:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--flush-every", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(args.spans, args.seed, args.flush_every, Path(tmp) / "fuzz.duckdb")


if __name__ == "__main__":
    main()
