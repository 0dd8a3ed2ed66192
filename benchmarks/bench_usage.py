"""normalize_usage cost per call: a typical LLM span and a non-LLM span.

The attributes are those of benchmarks/bench_processor.py (an opentelemetry-instrumentation-openai-v2
chat span; an HTTP server span), as a plain dict, which is what LLMCostSpanProcessor hands over.
Time is this process's CPU time (other processes on a busy machine do not count); each figure is
the best of several rounds, the usual way to read a micro-benchmark on a shared machine.

    python benchmarks/bench_usage.py [--calls 100000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import functools
import os
import time
import timeit
from collections.abc import Callable, Sequence
from typing import Any

from bench_processor import HTTP_ATTRIBUTES, LLM_ATTRIBUTES

from otel_llm_cost.conventions.usage import normalize_usage

CACHED_LLM_ATTRIBUTES: dict[str, Any] = {
    **LLM_ATTRIBUTES,
    "gen_ai.usage.cache_read.input_tokens": 1024,
    "gen_ai.usage.reasoning.output_tokens": 120,
}


def us_per_call(func: Callable[[], Any], calls: int, rounds: int) -> float:
    best = min(timeit.repeat(func, number=calls, repeat=rounds, timer=time.process_time))
    return best / calls * 1e6


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)

    llm = {**LLM_ATTRIBUTES, "gen_ai.response.id": "chatcmpl-1"}
    cached = {**CACHED_LLM_ATTRIBUTES, "gen_ai.response.id": "chatcmpl-2"}
    http = dict(HTTP_ATTRIBUTES)
    assert normalize_usage(llm, "bench") is not None
    assert normalize_usage(http, "bench") is None

    print(f"normalize_usage, CPU time, best of {args.rounds} rounds of {args.calls:,} calls")
    for label, attributes in (
        ("LLM span (gen_ai, input+output)", llm),
        ("LLM span with cache read + reasoning", cached),
        ("non-LLM span (HTTP)", http),
    ):
        figure = us_per_call(functools.partial(normalize_usage, attributes, "bench"), args.calls, args.rounds)
        print(f"{label:<40}{figure:>8.2f} us/call")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"load average (1/5/15 min) after the run: {load}, on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
