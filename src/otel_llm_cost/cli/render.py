"""Tables and CSV rows the report commands print: cost groups, summaries, daily trends, single calls."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC
from typing import Any, Final

from otel_llm_cost.cli.labels import label_user
from otel_llm_cost.query import CallRow, CostRow, DailyCost, Rows, Summary
from otel_llm_cost.query import output as _output

__all__ = [
    "CALL_FIELDS",
    "COST_HEADERS",
    "CSV_HEADERS",
    "call_table",
    "cost_rows_csv",
    "cost_table",
    "daily_section",
    "report_places",
    "summary_lines",
    "top_table",
]

COST_HEADERS: Final = ("cost_usd", "share", "calls", "tokens", "unpriced")


def report_places(summary: Summary, groups: Sequence[Sequence[CostRow]], days: Sequence[DailyCost]) -> int:
    """The decimal places of every amount in one report (see ``usd_places``)."""
    return _output.usd_places(
        [
            summary.cost_usd,
            summary.avg_cost_per_call_usd,
            summary.cost_per_1k_tokens_usd,
            summary.cache_saved_usd,
            *(row.total_cost_usd for rows in groups for row in rows),
            *(day.total_cost_usd for day in days),
        ]
    )


def cost_table(
    title: str,
    rows: Rows[CostRow],
    total: Summary,
    fancy: bool,
    places: int | None = None,
    *,
    labels: dict[str, str] | None = None,
) -> str:
    known = total.cost_usd or 0
    body = [
        [
            (label_user(row.key, labels) if labels else row.key) if row.key is not None else "(none)",
            _output.format_usd(row.total_cost_usd, places=places),
            _output.format_pct(float(row.total_cost_usd / known)) if known and row.total_cost_usd else "",
            _output.format_int(row.call_count),
            _output.format_int(row.total_tokens),
            _output.format_int(row.unpriced_calls) if row.unpriced_calls else "",
        ]
        for row in rows
    ]
    return f"By {title}\n" + _output.render_table(
        [title, *COST_HEADERS], body, fancy=fancy, max_width=_output.terminal_width(sys.stdout)
    )


def summary_lines(summary: Summary, places: int | None = None) -> list[str]:
    cost = _output.format_usd(summary.cost_usd, summary.unpriced_calls, places)
    return [
        f"Total      {cost} over {summary.call_count:,} calls, {summary.total_tokens:,} tokens",
        f"Per call   {_output.format_usd(summary.avg_cost_per_call_usd, places=places)}   "
        f"per 1k tokens {_output.format_usd(summary.cost_per_1k_tokens_usd, places=places)}",
        f"Cache      hit rate {_output.format_pct(summary.cache_hit_rate)}, "
        f"{_output.format_pct(summary.cache_input_share)} of input tokens from cache, "
        f"saved {_output.format_usd(summary.cache_saved_usd, places=places)}",
        f"Excluded   {summary.excluded_records:,} duplicate/aggregate records (not billed twice); "
        f"{summary.from_cache_calls:,} calls answered from a response cache",
    ]


def daily_section(days: Rows[DailyCost], zone_name: str, fancy: bool, places: int | None = None) -> str:
    spark = _output.sparkline([d.total_cost_usd for d in days])
    body = [
        [
            d.day.isoformat(),
            _output.format_usd(d.total_cost_usd, d.unpriced_calls, places),
            _output.format_int(d.call_count),
        ]
        for d in days
    ]
    table = _output.render_table(
        ["day", "cost_usd", "calls"], body, fancy=fancy, max_width=_output.terminal_width(sys.stdout)
    )
    return f"Daily ({zone_name})  {spark}\n{table}"


def cost_rows_csv(section: str, rows: Sequence[CostRow]) -> list[list[Any]]:
    return [[section, r.key, r.total_cost_usd, r.total_tokens, r.call_count, r.unpriced_calls] for r in rows]


CSV_HEADERS: Final = ("section", "key", "total_cost_usd", "total_tokens", "call_count", "unpriced_calls")


def call_table(rows: Sequence[CallRow], fancy: bool, *, first: str = "step") -> str:
    places = _output.usd_places(r.cost_usd for r in rows)
    body = [
        [
            (getattr(r, first) or "(none)")
            if first != "start_time"
            else r.start_time.isoformat(timespec="seconds"),
            r.model or "",
            _output.format_usd(r.cost_usd, places=places)
            if r.cost_status != "unpriced"
            else f"unpriced: {r.cost_reason or '?'}",
            _output.format_int(r.input_tokens),
            _output.format_int(r.output_tokens),
            _output.format_int(r.cache_read_tokens),
            f"{r.latency_ms:,.0f}" if r.latency_ms is not None else "",
            f"{r.time_to_first_token_ms:,.0f}" if r.time_to_first_token_ms is not None else "",
            "yes" if r.from_cache else "",
        ]
        for r in rows
    ]
    headers = [first, "model", "cost_usd", "input", "output", "cache_read", "latency_ms", "ttft_ms", "cached"]
    return _output.render_table(
        headers, body, align="llrrrrrrl", fancy=fancy, max_width=_output.terminal_width(sys.stdout)
    )


def top_table(rows: Sequence[CallRow], fancy: bool, labels: dict[str, str]) -> str:
    """``top``: what each expensive call was for (feature, user) and its trace id, to find it in a backend."""
    places = _output.usd_places(r.cost_usd for r in rows)
    body = [
        [
            r.start_time.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if r.start_time else "(no time)",
            _output.format_usd(r.cost_usd, places=places),
            r.model or "",
            r.feature or "(none)",
            label_user(r.user_id, labels) if r.user_id else "(none)",
            _output.format_int(r.total_tokens),
            f"{r.latency_ms:,.0f}" if r.latency_ms is not None else "",
            r.trace_id,
        ]
        for r in rows
    ]
    headers = ["start (UTC)", "cost_usd", "model", "feature", "user", "tokens", "latency_ms", "trace_id"]
    width = _output.terminal_width(sys.stdout)
    return _output.render_table(headers, body, align="LrlllrrL", fancy=fancy, max_width=width)


CALL_FIELDS: Final = tuple(name for name in CallRow.__dataclass_fields__ if not name.startswith("_"))
