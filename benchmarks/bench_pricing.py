"""Pricing one LLM call: warm-cache PriceBook.compute_cost vs genai_prices.calc_price, same usages, same run.

Run: /work/venv/bin/python benchmarks/bench_pricing.py [--calls N]

Prints microseconds per call for each and the ratio (target: compute_cost >= 5x faster). The usages
cycle through models covering plain, cached, 1h cache write, long-context tier, dated-price and
Bedrock cases, at call times spread over two years, so the figure is not one lucky cache line.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import genai_prices

from otel_llm_cost.conventions.usage import Usage
from otel_llm_cost.pricing import MONEY_QUANTUM, PriceBook

MODELS = [
    ("gpt-4o", "openai"),
    ("gpt-4o-mini-2024-07-18", "openai"),
    ("o3", "openai"),
    ("claude-sonnet-4-20250514", "anthropic"),
    ("claude-opus-4-20250514", "anthropic"),
    ("claude-sonnet-4-5", "anthropic"),
    ("gemini-2.5-pro", "google"),
    ("anthropic.claude-3-5-sonnet-20240620-v1:0", "aws"),
]


def make_calls(count: int, seed: int = 7) -> list[tuple[Usage, genai_prices.Usage, str, str, datetime]]:
    rng = random.Random(seed)
    start = datetime(2024, 6, 1, tzinfo=UTC)
    calls = []
    for _ in range(count):
        model, provider = rng.choice(MODELS)
        uncached = rng.randint(0, 300_000)
        cache_read = rng.choice([0, rng.randint(0, 50_000)])
        cache_write = rng.choice([0, rng.randint(0, 20_000)])
        cache_write_1h = rng.randint(0, cache_write)
        output = rng.randint(0, 4_000)
        counts = {
            "input_tokens": uncached + cache_read + cache_write,
            "cache_read_tokens": cache_read,
            "cache_write_tokens": cache_write,
            "cache_write_1h_tokens": cache_write_1h,
            "output_tokens": output,
        }
        at = start + timedelta(seconds=rng.randint(0, 2 * 365 * 86400))
        ours = Usage(request_model=model, provider=provider, **counts)
        calls.append((ours, genai_prices.Usage(**counts), model, provider, at))
    return calls


def per_call_us(fn: Callable[[], None], calls: int, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - began) / calls * 1e6)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    # Without our corrections, so that every call can be checked against calc_price on the same data
    # (a correction changes compiled rates, not the per-call work).
    with tempfile.TemporaryDirectory() as folder:
        no_corrections = Path(folder) / "corrections.json"
        no_corrections.write_text('{"version": 1, "corrections": []}')
        book = PriceBook(corrections_file=no_corrections)
    calls = make_calls(args.calls)
    warnings.simplefilter("ignore")  # genai-prices warns about price keys it does not use

    # Warm both caches and check the two agree on every call before timing anything.
    for ours, theirs, model, provider, at in calls:
        mine = book.compute_cost(ours, at=at).total_usd
        reference = genai_prices.calc_price(theirs, model, provider_id=provider, genai_request_timestamp=at)
        assert mine == reference.total_price.quantize(MONEY_QUANTUM), (model, at)

    def run_ours() -> None:
        compute = book.compute_cost
        for ours, _, _, _, at in calls:
            compute(ours, at=at)

    def run_genai() -> None:
        calc = genai_prices.calc_price
        for _, theirs, model, provider, at in calls:
            calc(theirs, model, provider_id=provider, genai_request_timestamp=at)

    ours_us = per_call_us(run_ours, len(calls), args.repeats)
    genai_us = per_call_us(run_genai, len(calls), args.repeats)
    print(f"calls per run:                 {len(calls)} (median of {args.repeats} runs)")
    print(f"PriceBook.compute_cost (warm): {ours_us:8.2f} us/call")
    print(f"genai_prices.calc_price:       {genai_us:8.2f} us/call")
    print(f"speed-up:                      {genai_us / ours_us:8.1f}x (target >= 5x)")


if __name__ == "__main__":
    main()
