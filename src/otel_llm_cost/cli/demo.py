"""``otel-llm-cost demo``: realistic synthetic LLM traffic through the real pipeline, then the report.

The traffic is :mod:`otel_llm_cost.cli.demo_traffic`; :mod:`otel_llm_cost.cli.demo_spans` records it as
spans and stores them. Both load on use: the OpenTelemetry SDK pipeline would slow every other command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Final

from otel_llm_cost.cli.options import add_command, db_path, format_options, positive_int, store_options
from otel_llm_cost.cli.reports import handle_report

__all__ = ["DEFAULT_DB", "register"]

DEFAULT_DB: Final = "otel-llm-cost-demo.duckdb"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``demo`` subcommand."""
    demo = add_command(
        subparsers,
        "demo",
        _cmd_demo,
        "generate realistic LLM traffic through the real pipeline, then report",
        (store_options(), format_options()),
    )
    for action in demo._actions:  # the shared --db help names the report commands' default, not the demo's
        if action.dest == "db":
            action.help = f"DuckDB file to write (default: {DEFAULT_DB})"
    demo.add_argument("--calls", type=positive_int, default=400, help="LLM calls to simulate (default 400)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (same seed, same traffic)")


def _cmd_demo(args: argparse.Namespace) -> int:
    from otel_llm_cost.cli.demo_spans import run_demo  # noqa: PLC0415 - pulls in the OpenTelemetry SDK pipeline

    path = db_path(args) if args.db else Path(DEFAULT_DB)
    run_demo(path, calls=args.calls, seed=args.seed)
    report_args = argparse.Namespace(
        db=str(path),
        since=None,
        until=None,
        tz=args.tz,
        by=None,
        format=args.format,
        where=None,
        user=None,
        user_labels=None,
    )
    print(f"wrote {args.calls:,} synthetic LLM calls through the real pipeline to {path}\n", file=sys.stderr)
    return handle_report(report_args)
