"""``otel-llm-cost report``: spend totals, grouped by dimensions, with a daily trend.

The handler opens the store read-only, prints one report in the chosen ``--format`` and returns the exit
code. Bad input raises ``ValueError`` / ``OtelLLMCostError``, which ``cli.main`` turns into a one-line error.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, time, timedelta
from typing import Any, Final

from otel_llm_cost.cli.labels import load_user_labels
from otel_llm_cost.cli.options import (
    add_command,
    db_path,
    describe_where,
    describe_window,
    emit,
    fancy,
    filter_options,
    filters,
    format_options,
    open_store,
    parse_when,
    store_options,
    window,
    window_options,
)
from otel_llm_cost.cli.render import (
    CSV_HEADERS,
    cost_rows_csv,
    cost_table,
    daily_section,
    report_places,
    summary_lines,
)
from otel_llm_cost.query import CostRow, CostStore, DailyCost, Rows, Summary
from otel_llm_cost.query import output as _output
from otel_llm_cost.query import sql as _queries

__all__ = ["handle_report", "parse_when", "register"]

DEFAULT_REPORT_DIMENSIONS: Final = ("model", "provider", "feature", "user", "org")
TREND_DAYS: Final = 31


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``report`` subcommand."""
    report = add_command(
        subparsers,
        "report",
        handle_report,
        "spend totals, by model/provider/feature/user/org, and a daily trend",
        (store_options(), window_options(), filter_options(), format_options("html")),
    )
    report.add_argument(
        "--by",
        action="append",
        metavar="DIMENSION",
        help="group by this dimension instead of the defaults (repeatable; e.g. agent, tag:team)",
    )


def handle_report(args: argparse.Namespace) -> int:
    since, until, zone = window(args)
    dimensions = tuple(args.by) if args.by else DEFAULT_REPORT_DIMENSIONS
    for name in dimensions:
        _queries.resolve_dimension(name)  # fail on a typo before any work
    where = filters(args)
    labels = load_user_labels(args.user_labels)
    if args.format == "html":
        return _html_report(args, dimensions, where, labels)
    with open_store(args) as store, _output.Progress("report", total=len(dimensions) + 2) as progress:
        summary = store.summary(since, until, where=where)
        progress.advance()
        groups = {name: store.cost_by(name, since, until, where=where) for name in dimensions}
        progress.advance(len(dimensions))
        days = _trend(store, summary, since, until, zone, where=where)
        progress.advance()
    if args.format == "json":
        emit(
            _output.to_json(
                {
                    "window": {"start": since, "end": until, "tz": zone.key},
                    "summary": {
                        **_output.record(summary),
                        "cache_hit_rate": summary.cache_hit_rate,
                        "cache_input_share": summary.cache_input_share,
                        "avg_cost_per_call_usd": summary.avg_cost_per_call_usd,
                        "cost_per_1k_tokens_usd": summary.cost_per_1k_tokens_usd,
                    },
                    "by": {
                        name: [{**_output.record(r), "cache_hit_rate": r.cache_hit_rate} for r in rows]
                        for name, rows in groups.items()
                    },
                    "daily": [_output.record(d) for d in days],
                }
            )
        )
        return 0
    if args.format == "csv":
        rows: list[list[Any]] = [
            [
                "total",
                None,
                summary.cost_usd,
                summary.total_tokens,
                summary.call_count,
                summary.unpriced_calls,
            ]
        ]
        for name, group in groups.items():
            rows += cost_rows_csv(name, group)
        rows += [
            ["daily", d.day, d.total_cost_usd, d.total_tokens, d.call_count, d.unpriced_calls] for d in days
        ]
        emit(_output.to_csv(CSV_HEADERS, rows))
        return 0
    title = f"LLM cost report  {describe_window(since, until, zone)}{describe_where(where)}"
    emit(_report_text(title, summary, groups, days, zone.key, labels=labels))
    return 0


def _html_report(
    args: argparse.Namespace,
    dimensions: tuple[str, ...],
    where: dict[str, str | None],
    labels: dict[str, str],
) -> int:
    """One self-contained page (overview and breakdowns) under the same filters as the other formats,
    rendered by the dashboard package."""
    from otel_llm_cost.ui.report import render_report_for_window  # noqa: PLC0415 - only for --format html

    since, until, zone = window(args)
    _check_html_window(since if args.since else None, until if args.until else None, zone)
    with open_store(args) as store:
        html = render_report_for_window(
            store, since, until, zone, dimensions, source=str(db_path(args)), where=where, user_labels=labels
        )
    emit(html)
    return 0


def _check_html_window(since: datetime | None, until: datetime | None, zone: Any) -> None:
    """The HTML report covers whole local days, at most MAX_WINDOW_DAYS of them: say so instead of
    silently reporting another window than the text report would."""
    from otel_llm_cost.ui.params import MAX_WINDOW_DAYS  # noqa: PLC0415 - only for --format html

    for name, bound in (("--since", since), ("--until", until)):
        if bound is not None and bound.astimezone(zone).timetz().replace(tzinfo=None) != time():
            raise ValueError(
                f"--format html reports whole days in {zone.key}: give {name} as a date "
                f"(got {bound.isoformat()})"
            )
    end = until if until is not None else datetime.now(UTC)
    if since is not None and (end - since).days > MAX_WINDOW_DAYS:
        raise ValueError(f"--format html covers at most {MAX_WINDOW_DAYS} days: narrow --since/--until")


def _report_text(
    title: str,
    summary: Summary,
    groups: dict[str, Rows[CostRow]],
    days: Rows[DailyCost],
    zone_name: str,
    *,
    labels: dict[str, str],
) -> str:
    pretty = fancy()
    places = report_places(summary, list(groups.values()), days)
    parts = [title, "", *summary_lines(summary, places)]
    if summary.call_count:
        for name, group in groups.items():
            user_labels = labels if name == "user" else None
            parts += ["", cost_table(name, group, summary, pretty, places, labels=user_labels)]
        if days:
            parts += ["", daily_section(days, zone_name, pretty, places)]
    return "\n".join(parts)


def _trend(
    store: CostStore,
    summary: Summary,
    since: datetime | None,
    until: datetime | None,
    zone: Any,
    *,
    where: dict[str, str | None],
) -> Rows[DailyCost]:
    """Daily rows over the window, at most the last TREND_DAYS local days of it."""
    if not summary.call_count or summary.first_start is None or summary.last_end is None:
        return Rows([])
    after_last = summary.last_end + timedelta(microseconds=1)
    now = datetime.now(UTC)
    # Up to today for live data; for an old file (an archive, a benchmark) end at its last call
    # rather than showing a month of empty days.
    end = until or (max(now, after_last) if now - after_last < timedelta(days=TREND_DAYS) else after_last)
    start = since or summary.first_start
    last_day = (end - timedelta(microseconds=1)).astimezone(zone).date()
    earliest = datetime.combine(last_day - timedelta(days=TREND_DAYS - 1), time(), zone)
    return store.daily_cost(max(start, earliest), end, zone.key, where=where)
