"""The ``otel-llm-cost`` command line: reports, prices, budgets and the OTLP receiver.

Each command group registers its subcommands from its own module, its parser beside its handler; this
module only builds the parser, runs the chosen handler and turns expected errors into a one-line message
and a non-zero exit.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import duckdb

from otel_llm_cost.cli import agents as _cli_agents
from otel_llm_cost.cli import budgets as _cli_budgets
from otel_llm_cost.cli import calls as _cli_calls
from otel_llm_cost.cli import completion as _cli_completion
from otel_llm_cost.cli import demo as _cli_demo
from otel_llm_cost.cli import lake as _cli_lake
from otel_llm_cost.cli import prices as _cli_prices
from otel_llm_cost.cli import reports as _cli_reports
from otel_llm_cost.cli import savings as _cli_savings
from otel_llm_cost.cli import serve as _cli_serve
from otel_llm_cost.cli import status as _cli_status
from otel_llm_cost.cli import ui as _cli_ui
from otel_llm_cost.cli import workflows as _cli_workflows
from otel_llm_cost.exceptions import OtelLLMCostError

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="otel-llm-cost",
        description="Know what your LLM calls cost: reports, prices, budgets and an OTLP receiver.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details to stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # The order of the help text and of the generated CLI reference.
    command_groups = (
        _cli_reports,
        _cli_workflows,
        _cli_agents,
        _cli_calls,
        _cli_savings,
        _cli_demo,
        _cli_prices,
        _cli_budgets,
        _cli_serve,
        _cli_status,
        _cli_ui,
        _cli_lake,
    )
    for module in command_groups:
        module.register(subparsers)
    _cli_completion.register(subparsers, parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``) and return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="otel-llm-cost: %(levelname)s: %(message)s",
    )
    try:
        code: int = args.handler(args)
    except (OtelLLMCostError, ValueError, OSError, duckdb.Error) as exc:
        # Expected failures (bad input, a missing or foreign file, SQL errors in `query`) are one line,
        # never a traceback; -v shows the traceback for bug reports.
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"otel-llm-cost: error: {first_line}", file=sys.stderr)
        if args.verbose:
            logging.getLogger("otel_llm_cost").exception("details")
        return 2
    except KeyboardInterrupt:
        return 130
    return code
