"""CLI report subcommands: report, workflow, session, top, query, export, savings, reprice, demo.

Each handler opens the store read-only (``reprice`` read-write), prints one report in the chosen
``--format`` and returns the exit code. Bad input raises ``ValueError`` / ``OtelLLMCostError``, which
``cli.main`` turns into a one-line error.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from otel_llm_cost import _config
from otel_llm_cost.exceptions import StorageError
from otel_llm_cost.query import output as _output
from otel_llm_cost.query import sql as _queries
from otel_llm_cost.query.store import CallRow, CostRow, CostStore, DailyCost, Rows, Summary

__all__ = ["parse_when", "register"]

DEFAULT_REPORT_DIMENSIONS: Final = ("model", "provider", "feature", "user", "org")
TREND_DAYS: Final = 31
_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, tz: ZoneInfo, *, now: datetime | None = None) -> datetime:
    """Parse a ``--since`` / ``--until`` value into an aware datetime.

    Accepts an ISO date (midnight in ``tz``), an ISO datetime (naive ones are read in ``tz``), a
    relative age such as ``7d``, ``12h``, ``30m``, ``2w`` (before ``now``), ``today`` or ``now``.

    Raises:
        ValueError: none of those.
    """
    value = text.strip()
    current = now or datetime.now(UTC)
    lowered = value.lower()
    if lowered == "now":
        return current
    if lowered == "today":
        return datetime.combine(current.astimezone(tz).date(), time(), tz)
    match = _RELATIVE.match(lowered)
    if match:
        return current - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), tz)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"cannot read {text!r} as a time: use a date (2025-01-31), a datetime (2025-01-31T09:00+01:00) "
            "or an age (7d, 12h, 30m, 2w)"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=tz)


# -- shared plumbing -------------------------------------------------------------------------------


def _db_path(args: argparse.Namespace) -> Path:
    return Path(args.db if args.db else _config.DUCKDB_PATH.get())


def _open_store(args: argparse.Namespace, *, read_only: bool = True) -> CostStore:
    path = _db_path(args)
    # Checked here so that reporting on a missing file never creates one.
    if not path.is_file():
        raise StorageError(
            f"no DuckDB file at {path} (pass --db PATH or set {_config.DUCKDB_PATH.name}; "
            "`otel-llm-cost demo` writes a sample one)"
        )
    return CostStore(path, read_only=read_only)


def _window(args: argparse.Namespace) -> tuple[datetime | None, datetime | None, ZoneInfo]:
    zone = _queries.resolve_timezone(args.tz)
    now = datetime.now(UTC)
    since = parse_when(args.since, zone, now=now) if args.since else None
    until = parse_when(args.until, zone, now=now) if args.until else None
    _queries.check_window(since, until)
    return since, until, zone


def _fancy() -> bool:
    return _output.is_tty(sys.stdout)


def _emit(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _describe_window(since: datetime | None, until: datetime | None, zone: ZoneInfo) -> str:
    def show(value: datetime | None, fallback: str) -> str:
        return value.astimezone(zone).isoformat(sep=" ", timespec="minutes") if value else fallback

    return f"{show(since, 'first call')} -> {show(until, 'now')} ({zone.key})"


_COST_HEADERS: Final = ("cost_usd", "share", "calls", "tokens", "unpriced")


def _cost_table(title: str, rows: Rows[CostRow], total: Summary, fancy: bool) -> str:
    known = total.cost_usd or 0
    body = [
        [
            row.key if row.key is not None else "(none)",
            _output.format_usd(row.total_cost_usd),
            _output.format_pct(float(row.total_cost_usd / known)) if known and row.total_cost_usd else "",
            _output.format_int(row.call_count),
            _output.format_int(row.total_tokens),
            _output.format_int(row.unpriced_calls) if row.unpriced_calls else "",
        ]
        for row in rows
    ]
    return f"By {title}\n" + _output.render_table([title, *_COST_HEADERS], body, fancy=fancy)


def _summary_lines(summary: Summary) -> list[str]:
    cost = _output.format_usd(summary.cost_usd, summary.unpriced_calls)
    return [
        f"Total      {cost} over {summary.call_count:,} calls, {summary.total_tokens:,} tokens",
        f"Per call   {_output.format_usd(summary.avg_cost_per_call_usd)}   "
        f"per 1k tokens {_output.format_usd(summary.cost_per_1k_tokens_usd)}",
        f"Cache      hit rate {_output.format_pct(summary.cache_hit_rate)}, "
        f"{_output.format_pct(summary.cache_input_share)} of input tokens from cache, "
        f"saved {_output.format_usd(summary.cache_saved_usd)}",
        f"Excluded   {summary.excluded_records:,} duplicate/aggregate records (not billed twice); "
        f"{summary.from_cache_calls:,} calls answered from a response cache",
    ]


def _daily_section(days: Rows[DailyCost], zone_name: str, fancy: bool) -> str:
    spark = _output.sparkline([d.total_cost_usd for d in days])
    body = [
        [
            d.day.isoformat(),
            _output.format_usd(d.total_cost_usd, d.unpriced_calls),
            _output.format_int(d.call_count),
        ]
        for d in days
    ]
    table = _output.render_table(["day", "cost_usd", "calls"], body, fancy=fancy)
    return f"Daily ({zone_name})  {spark}\n{table}"


def _cost_rows_csv(section: str, rows: Sequence[CostRow]) -> list[list[Any]]:
    return [[section, r.key, r.total_cost_usd, r.total_tokens, r.call_count, r.unpriced_calls] for r in rows]


_CSV_HEADERS: Final = ("section", "key", "total_cost_usd", "total_tokens", "call_count", "unpriced_calls")


def _call_table(rows: Sequence[CallRow], fancy: bool, *, first: str = "step") -> str:
    body = [
        [
            (getattr(r, first) or "(none)")
            if first != "start_time"
            else r.start_time.isoformat(timespec="seconds"),
            r.model or "",
            _output.format_usd(r.cost_usd)
            if r.cost_status != "unpriced"
            else f"unpriced: {r.cost_reason or '?'}",
            _output.format_int(r.input_tokens),
            _output.format_int(r.output_tokens),
            _output.format_int(r.cache_read_tokens),
            f"{r.latency_ms:,.0f}" if r.latency_ms is not None else "",
            "yes" if r.from_cache else "",
        ]
        for r in rows
    ]
    headers = [first, "model", "cost_usd", "input", "output", "cache_read", "latency_ms", "cached"]
    return _output.render_table(headers, body, align="llrrrrrl", fancy=fancy)


_CALL_FIELDS: Final = tuple(name for name in CallRow.__dataclass_fields__ if not name.startswith("_"))


# -- handlers -------------------------------------------------------------------------------------


def _cmd_report(args: argparse.Namespace) -> int:
    since, until, zone = _window(args)
    dimensions = tuple(args.by) if args.by else DEFAULT_REPORT_DIMENSIONS
    for name in dimensions:
        _queries.resolve_dimension(name)  # fail on a typo before any work
    if args.format == "html":  # one self-contained page, rendered by the dashboard package
        from otel_llm_cost.ui.report import render_report_for_window  # noqa: PLC0415

        with _open_store(args) as store:
            _emit(render_report_for_window(store, since, until, zone, dimensions, source=str(_db_path(args))))
        return 0
    with _open_store(args) as store, _output.Progress("report", total=len(dimensions) + 2) as progress:
        summary = store.summary(since, until)
        progress.advance()
        groups = {name: store.cost_by(name, since, until) for name in dimensions}
        progress.advance(len(dimensions))
        days = _trend(store, summary, since, until, zone)
        progress.advance()
    if args.format == "json":
        _emit(
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
                    "by": {name: [_output.record(r) for r in rows] for name, rows in groups.items()},
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
            rows += _cost_rows_csv(name, group)
        rows += [
            ["daily", d.day, d.total_cost_usd, d.total_tokens, d.call_count, d.unpriced_calls] for d in days
        ]
        _emit(_output.to_csv(_CSV_HEADERS, rows))
        return 0
    fancy = _fancy()
    parts = [f"LLM cost report  {_describe_window(since, until, zone)}", "", *_summary_lines(summary)]
    if summary.call_count:
        for name, group in groups.items():
            parts += ["", _cost_table(name, group, summary, fancy)]
        if days:
            parts += ["", _daily_section(days, zone.key, fancy)]
    _emit("\n".join(parts))
    return 0


def _trend(
    store: CostStore, summary: Summary, since: datetime | None, until: datetime | None, zone: Any
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
    return store.daily_cost(max(start, earliest), end, zone.key)


def _cmd_workflow(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        totals = store.workflow_totals(args.workflow_id)
        if not totals.step_count:
            raise ValueError(f"no billable calls recorded for workflow {args.workflow_id!r}")
        steps = store.steps_for_workflow(args.workflow_id)
    if args.format == "json":
        _emit(
            _output.to_json({"totals": _output.record(totals), "steps": [_output.record(s) for s in steps]})
        )
        return 0
    if args.format == "csv":
        _emit(_output.to_csv(_CALL_FIELDS, ([getattr(s, f) for f in _CALL_FIELDS] for s in steps)))
        return 0
    fancy = _fancy()
    cost = _output.format_usd(totals.cost_usd)
    if totals.cost_usd is None:
        known = _output.format_usd(totals.known_cost_usd)
        cost += f" ({totals.unpriced_steps} unpriced steps; priced part {known})"
    lines = [
        f"Workflow {totals.workflow_id}",
        f"  cost       {cost}",
        f"  steps      {totals.step_count} ({totals.cached_steps} served from a response cache)",
        f"  tokens     {totals.input_tokens:,} in ({totals.cache_read_tokens:,} cache read, "
        f"{totals.cache_write_tokens:,} cache write), {totals.output_tokens:,} out",
        f"  latency    {totals.latency_ms:,.0f} ms summed over steps",
        "",
        _call_table(steps, fancy),
    ]
    _emit("\n".join(lines))
    return 0


def _cmd_session(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        session = store.session_summary(args.session_id)
    if not session.totals.call_count:
        raise ValueError(f"no billable calls recorded for session {args.session_id!r}")
    if args.format == "json":
        _emit(
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
                }
            )
        )
        return 0
    if args.format == "csv":
        rows = _cost_rows_csv("provider", session.by_provider) + _cost_rows_csv("model", session.by_model)
        _emit(_output.to_csv(_CSV_HEADERS, rows))
        return 0
    _emit(_output.format_session(session, args.style, fancy=_fancy()))
    return 0


def _cmd_top(args: argparse.Namespace) -> int:
    since, until, _zone = _window(args)
    with _open_store(args) as store:
        calls = store.top_calls(args.n, since, until)
    if args.format == "json":
        _emit(_output.to_json([_output.record(c) for c in calls]))
    elif args.format == "csv":
        _emit(_output.to_csv(_CALL_FIELDS, ([getattr(c, f) for f in _CALL_FIELDS] for c in calls)))
    else:
        _emit(_call_table(calls, _fancy(), first="start_time"))
    return 0


def _cmd_query(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        result = store.sql(args.sql, args.param)
        columns = list(result.arrow().column_names)
    if args.format == "json":
        _emit(_output.to_json(list(result)))
    elif args.format == "csv":
        _emit(_output.to_csv(columns, ([row[c] for c in columns] for row in result)))
    else:
        body = [["" if row[c] is None else str(row[c]) for c in columns] for row in result]
        _emit(_output.render_table(columns, body, align="l" * len(columns), fancy=_fancy()))
    return 0


_COPY_OPTIONS: Final = {
    "csv": "FORMAT csv, HEADER",
    "parquet": "FORMAT parquet",
    "json": "FORMAT json, ARRAY true",
}


def _cmd_export(args: argparse.Namespace) -> int:
    since, until, _zone = _window(args)
    query = _queries.export_calls(since, until, include_non_billable=args.all)
    with _open_store(args) as store:
        # COPY writes straight from DuckDB: exact DECIMAL money, no Python row loop on big windows.
        copy = f"COPY ({query.sql}) TO ? ({_COPY_OPTIONS[args.export_format]})"
        result = store.sql(copy, [*query.params, str(args.output)])
        written = result[0]["Count"] if result and "Count" in result[0] else None
    count = f"{written:,} calls" if written is not None else "calls"
    print(f"exported {count} to {args.output}", file=sys.stderr)
    return 0


def _cmd_savings(args: argparse.Namespace) -> int:
    since, until, _zone = _window(args)
    what_if = _parse_what_if(args.what_if) if args.what_if else None
    from otel_llm_cost.pricing.book import PriceBook  # noqa: PLC0415 - loads the price data only when needed

    pricebook = PriceBook.from_file(args.prices) if args.prices else PriceBook.default()
    with _open_store(args) as store:
        report = store.savings(since, until)
        scenario = (
            store.what_if(what_if[0], what_if[1], since, until, pricebook=pricebook) if what_if else None
        )
    if args.format == "json":
        _emit(
            _output.to_json(
                {"savings": _output.record(report), "what_if": scenario and _output.record(scenario)}
            )
        )
        return 0
    if args.format == "csv":
        fields = [f for f in _output.record(report)]
        _emit(_output.to_csv(fields, [[getattr(report, f) for f in fields]]))
        return 0
    _emit(_output.format_savings(report, scenario, fancy=_fancy()))
    return 0


def _parse_what_if(text: str) -> tuple[str, str]:
    source, sep, target = text.partition(":")
    if not sep or not source.strip() or not target.strip():
        raise ValueError(f"--what-if expects FROM_MODEL:TO_MODEL, got {text!r}")
    return source.strip(), target.strip()


def _cmd_reprice(args: argparse.Namespace) -> int:
    since, until, _zone = _window(args)
    from otel_llm_cost.pricing.book import PriceBook  # noqa: PLC0415 - loads the price data only when needed

    pricebook = PriceBook.from_file(args.prices) if args.prices else PriceBook.default()
    with _open_store(args, read_only=args.dry_run) as store:
        result = store.reprice(
            since, until, pricebook=pricebook, include_priced=args.include_priced, dry_run=args.dry_run
        )
    if args.format == "json":
        _emit(_output.to_json(_output.record(result)))
        return 0
    verb = "would change" if args.dry_run else "changed"
    _emit(
        f"{result.rows_examined:,} calls examined; {verb} {result.rows_changed:,} rows "
        f"({result.rows_newly_priced:,} newly priced), cost {'+' if result.usd_changed >= 0 else ''}"
        f"{_output.format_usd(result.usd_changed)}; {result.rows_still_unpriced:,} still unpriced"
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from otel_llm_cost.cli import demo as _demo  # noqa: PLC0415 - pulls in the OpenTelemetry SDK pipeline

    path = _db_path(args) if args.db else Path(_demo.DEFAULT_DB)
    _demo.run_demo(path, calls=args.calls, seed=args.seed)
    report_args = argparse.Namespace(
        db=str(path), since=None, until=None, tz=args.tz, by=None, format=args.format
    )
    print(f"wrote {args.calls:,} synthetic LLM calls through the real pipeline to {path}\n", file=sys.stderr)
    return _cmd_report(report_args)


# -- registration ---------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the report subcommands; each sets ``handler(args) -> int`` with ``set_defaults``."""
    store_opts = argparse.ArgumentParser(add_help=False)
    store_opts.add_argument(
        "--db", metavar="PATH", help=f"DuckDB file (default: ${_config.DUCKDB_PATH.name} or llm_costs.duckdb)"
    )
    store_opts.add_argument(
        "--tz", default="UTC", help="IANA time zone for dates and day buckets (default UTC)"
    )
    window_opts = argparse.ArgumentParser(add_help=False)
    window_opts.add_argument(
        "--since", help="start, inclusive: 2025-01-31, 2025-01-31T09:00+01:00 or 7d, 12h"
    )
    window_opts.add_argument("--until", help="end, exclusive (same forms as --since; default: now)")
    format_opts = argparse.ArgumentParser(add_help=False)
    format_opts.add_argument("--format", choices=("table", "json", "csv"), default="table")
    report_format = argparse.ArgumentParser(add_help=False)
    report_format.add_argument("--format", choices=("table", "json", "csv", "html"), default="table")

    def add(
        name: str,
        handler: Callable[[argparse.Namespace], int],
        help_text: str,
        parents: Sequence[argparse.ArgumentParser],
    ) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = subparsers.add_parser(
            name, parents=list(parents), help=help_text, description=help_text
        )
        parser.set_defaults(handler=handler)
        return parser

    report = add(
        "report",
        _cmd_report,
        "spend totals, by model/provider/feature/user/org, and a daily trend",
        (store_opts, window_opts, report_format),
    )
    report.add_argument(
        "--by",
        action="append",
        metavar="DIMENSION",
        help="group by this dimension instead of the defaults (repeatable; e.g. agent, tag:team)",
    )

    workflow = add(
        "workflow", _cmd_workflow, "one workflow's totals and its steps in order", (store_opts, format_opts)
    )
    workflow.add_argument("workflow_id", metavar="ID")

    session = add(
        "session",
        _cmd_session,
        "one session's duration, totals and provider/model breakdown",
        (store_opts, format_opts),
    )
    session.add_argument("session_id", metavar="ID")
    session.add_argument("--style", choices=("detailed", "compact", "table"), default="detailed")

    top = add("top", _cmd_top, "the most expensive calls", (store_opts, window_opts, format_opts))
    top.add_argument("-n", type=_positive_int, default=10, help="how many (default 10)")

    query = add(
        "query",
        _cmd_query,
        "run SQL on the store (read-only), e.g. over the llm_calls table",
        (store_opts, format_opts),
    )
    query.add_argument("sql", metavar="SQL")
    query.add_argument("--param", action="append", default=[], help="value for a ? placeholder (repeatable)")

    export = add(
        "export",
        _cmd_export,
        "write the billable calls in a window to CSV, Parquet or JSON",
        (store_opts, window_opts),
    )
    export.add_argument("--format", dest="export_format", choices=tuple(_COPY_OPTIONS), default="csv")
    export.add_argument("--output", "-o", required=True, type=Path, metavar="FILE")
    export.add_argument("--all", action="store_true", help="also export non-billable (duplicate) records")

    savings = add(
        "savings",
        _cmd_savings,
        "what prompt caching saved, and what a cheaper model would cost",
        (store_opts, window_opts, format_opts),
    )
    savings.add_argument(
        "--what-if", metavar="FROM:TO", help="reprice FROM_MODEL's calls at TO_MODEL's prices"
    )
    savings.add_argument("--prices", metavar="FILE", help="user price file layered over the bundled prices")

    reprice = add(
        "reprice",
        _cmd_reprice,
        "price calls that were stored unpriced, now that a price is known",
        (store_opts, window_opts, format_opts),
    )
    reprice.add_argument("--prices", metavar="FILE", help="user price file layered over the bundled prices")
    reprice.add_argument(
        "--include-priced",
        action="store_true",
        help="also recompute calls that already have a price (rewrites history)",
    )
    reprice.add_argument("--dry-run", action="store_true", help="report what would change, write nothing")

    demo = add(
        "demo",
        _cmd_demo,
        "generate realistic LLM traffic through the real pipeline, then report",
        (store_opts, format_opts),
    )
    demo.add_argument("--calls", type=_positive_int, default=400, help="LLM calls to simulate (default 400)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (same seed, same traffic)")
