"""What importing the processor costs an application, against importing the OpenTelemetry SDK itself.

Each round runs a fresh ``python -X importtime`` that imports ``opentelemetry.sdk.trace`` first
(the floor: an application that uses the processor has it anyway) and then what an application
writes: ``from otel_llm_cost import LLMCostSpanProcessor, attribution``. The figure is the extra
cumulative import time of the second line (modules the SDK already loaded count zero), beside
the SDK's own; the median over rounds, and which heavy modules were loaded.

    python benchmarks/bench_import.py [--rounds 7] [--statement "import otel_llm_cost"]

Target: <= 120 ms added, and neither duckdb, pyarrow nor genai_prices loaded.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys

HEAVY = ("duckdb", "pyarrow", "genai_prices")
_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def _one_round(statement: str) -> tuple[float, float, list[str]]:
    code = (
        "import opentelemetry.sdk.trace\n"
        "import sys\n"
        "print('--mark--', file=sys.stderr)\n"
        f"{statement}\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True
    )
    before, _, after = run.stderr.partition("--mark--")
    return _top_level_ms(before), _top_level_ms(after), [m for m in run.stdout.strip().split(",") if m]


def _top_level_ms(importtime: str) -> float:
    """Sum of cumulative times of top-level imports (one indent level) in an importtime log."""
    total_us = 0
    for match in _LINE.finditer(importtime):
        if len(match.group(3)) == 1:  # importtime indents nested imports by two more spaces
            total_us += int(match.group(2))
    return total_us / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--statement", default="from otel_llm_cost import LLMCostSpanProcessor, attribution")
    args = parser.parse_args()
    sdk, ours, heavy = [], [], set()
    for _ in range(args.rounds):
        sdk_ms, our_ms, loaded = _one_round(args.statement)
        sdk.append(sdk_ms)
        ours.append(our_ms)
        heavy.update(loaded)
    sdk_median, our_median = statistics.median(sdk), statistics.median(ours)
    print(f"import opentelemetry.sdk.trace (floor)   {sdk_median:7.1f} ms  (median of {args.rounds})")
    print(f"then: {args.statement:<35} {our_median:7.1f} ms  ({our_median / sdk_median:.2f}x the SDK import)")
    print(f"heavy modules loaded: {', '.join(sorted(heavy)) or 'none'}  (target: none, <= 120 ms)")


if __name__ == "__main__":
    main()
