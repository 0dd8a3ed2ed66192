"""``otel-llm-cost agents``: one row per agent run (its calls in one trace): calls, tokens, cost."""

from __future__ import annotations

import argparse
from typing import Any, Final

from otel_llm_cost.cli.options import (
    add_command,
    emit,
    fancy,
    format_options,
    open_store,
    store_options,
    window,
    window_options,
)
from otel_llm_cost.query import AgentRun
from otel_llm_cost.query import output as _output

__all__ = ["register"]

RUN_FIELDS: Final = tuple(name for name in AgentRun.__dataclass_fields__ if not name.startswith("_"))


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``agents`` subcommand."""
    agents = add_command(
        subparsers,
        "agents",
        _cmd_agents,
        "one row per agent run: agent, start, calls, tokens, cost, cache hit rate",
        (store_options(), window_options(), format_options()),
    )
    agents.add_argument("--agent", help="only this agent's runs")
    agents.add_argument("--limit", type=int, default=None, help="at most this many runs (earliest first)")


def _cmd_agents(args: argparse.Namespace) -> int:
    since, until, _zone = window(args)
    with open_store(args) as store:
        runs = store.agent_runs(since, until, agent=args.agent, limit=args.limit)
    if args.format == "json":
        emit(_output.to_json([{**_output.record(r), "cache_hit_rate": r.cache_hit_rate} for r in runs]))
        return 0
    if args.format == "csv":
        emit(_output.to_csv(RUN_FIELDS, ([getattr(r, f) for f in RUN_FIELDS] for r in runs)))
        return 0
    if not runs:
        emit("no agent runs recorded (calls tagged with an agent) in this window")
        return 0
    places = _output.usd_places(r.total_cost_usd for r in runs)
    body = [
        [
            r.agent,
            r.started_at.isoformat(timespec="seconds"),
            _output.format_int(r.call_count),
            _output.format_int(r.input_tokens),
            _output.format_int(r.output_tokens),
            _output.format_usd(r.total_cost_usd, r.unpriced_calls, places),
            _output.format_pct(r.cache_hit_rate),
            r.trace_id,
        ]
        for r in runs
    ]
    headers = ["agent", "started", "calls", "input", "output", "cost_usd", "cache_hit", "trace"]
    emit(_output.render_table(headers, body, align="llrrrrrl", fancy=fancy()))
    return 0
