"""``otel-llm-cost workflow`` and ``session``: one workflow's steps, one session's totals."""

from __future__ import annotations

import argparse
from typing import Any

from otel_llm_cost.cli.options import add_command, emit, fancy, format_options, open_store, store_options
from otel_llm_cost.cli.render import CALL_FIELDS, CSV_HEADERS, call_table, cost_rows_csv
from otel_llm_cost.query import output as _output

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``workflow`` and ``session`` subcommands."""
    workflow = add_command(
        subparsers,
        "workflow",
        _cmd_workflow,
        "one workflow's totals and its steps in order",
        (store_options(), format_options()),
    )
    workflow.add_argument("workflow_id", metavar="ID")
    session = add_command(
        subparsers,
        "session",
        _cmd_session,
        "one session's duration, totals and provider/model breakdown",
        (store_options(), format_options()),
    )
    session.add_argument("session_id", metavar="ID")
    session.add_argument("--style", choices=("detailed", "compact", "table"), default="detailed")


def _cmd_workflow(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        totals = store.workflow_totals(args.workflow_id)
        if not totals.step_count:
            raise ValueError(f"no billable calls recorded for workflow {args.workflow_id!r}")
        steps = store.steps_for_workflow(args.workflow_id)
    if args.format == "json":
        emit(_output.to_json({"totals": _output.record(totals), "steps": [_output.record(s) for s in steps]}))
        return 0
    if args.format == "csv":
        emit(_output.to_csv(CALL_FIELDS, ([getattr(s, f) for f in CALL_FIELDS] for s in steps)))
        return 0
    pretty = fancy()
    places = _output.usd_places([totals.cost_usd, totals.known_cost_usd, *(s.cost_usd for s in steps)])
    cost = _output.format_usd(totals.cost_usd, places=places)
    if totals.cost_usd is None:
        known = _output.format_usd(totals.known_cost_usd, places=places)
        cost += f" ({totals.unpriced_steps} unpriced steps; priced part {known})"
    lines = [
        f"Workflow {totals.workflow_id}",
        f"  cost       {cost}",
        f"  steps      {totals.step_count} ({totals.cached_steps} served from a response cache)",
        f"  tokens     {totals.input_tokens:,} in ({totals.cache_read_tokens:,} cache read, "
        f"{totals.cache_write_tokens:,} cache write), {totals.output_tokens:,} out",
        f"  latency    {totals.latency_ms:,.0f} ms summed over steps",
        "",
        call_table(steps, pretty),
    ]
    emit("\n".join(lines))
    return 0


def _cmd_session(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        session = store.session_summary(args.session_id)
    if not session.totals.call_count:
        raise ValueError(f"no billable calls recorded for session {args.session_id!r}")
    if args.format == "json":
        emit(
            _output.to_json(
                {
                    "session_id": session.session_id,
                    "started_at": session.started_at,
                    "ended_at": session.ended_at,
                    "duration_s": session.duration,
                    "totals": _output.record(session.totals),
                    "avg_cost_per_call_usd": session.avg_cost_per_call_usd,
                    "cost_per_1k_tokens_usd": session.cost_per_1k_tokens_usd,
                    "by_provider": [_output.record(r) for r in session.by_provider],
                    "by_model": [_output.record(r) for r in session.by_model],
                    "calls": [_output.record(c) for c in session.calls],
                }
            )
        )
        return 0
    if args.format == "csv":
        rows = cost_rows_csv("provider", session.by_provider) + cost_rows_csv("model", session.by_model)
        emit(_output.to_csv(CSV_HEADERS, rows))
        return 0
    emit(_output.format_session(session, args.style, fancy=fancy()))
    return 0
