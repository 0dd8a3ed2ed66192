"""``otel-llm-cost budgets status|check`` and ``otel-llm-cost alerts`` (registered by ``cli``).

``budgets status`` prints where every entity stands; ``budgets check`` exits 1 when any window budget is
spent (for cron and CI; ``--fire`` also records and delivers alerts); ``alerts`` prints the history kept
in ``budget_alerts``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import duckdb

from otel_llm_cost import _config
from otel_llm_cost.budgets import (
    AlertSink,
    Budget,
    BudgetEngine,
    BudgetStatus,
    WebhookSink,
    evaluate_budgets,
    load_budgets,
)
from otel_llm_cost.cli.reports import parse_when
from otel_llm_cost.exceptions import BudgetConfigError, StorageError
from otel_llm_cost.query import CostStore
from otel_llm_cost.query import output as _output
from otel_llm_cost.query import sql as _queries
from otel_llm_cost.query.alert_sql import ALERT_FIELDS
from otel_llm_cost.query.output import format_int, format_usd, usd_places
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage.lake import LakeTarget, is_lake_target, open_lake
from otel_llm_cost.storage.lake_ops import locked_lake

_BAR_WIDTH = 20


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``budgets`` (with ``status`` and ``check``) and ``alerts``."""
    budgets = subparsers.add_parser("budgets", help="budget status and checks (see budgets.toml)")
    commands = budgets.add_subparsers(dest="budgets_command", metavar="{status,check}", required=True)

    status = commands.add_parser("status", help="spent, limit, percent and forecast per entity")
    _common(status)
    _format_options(status)
    status.set_defaults(handler=_status)

    check = commands.add_parser(
        "check", help="exit 1 when any budget is spent (0 otherwise): for cron and CI"
    )
    _common(check)
    check.add_argument(
        "--fire",
        action="store_true",
        help="also record new alerts in budget_alerts, print them and POST them to --webhook if given",
    )
    check.add_argument(
        "--webhook",
        default=_config.WEBHOOK_URL.get(),
        help="with --fire, POST alerts to this URL (default: $OTEL_LLM_COST_WEBHOOK_URL)",
    )
    check.set_defaults(handler=_check)

    alerts = subparsers.add_parser("alerts", help="history of fired budget alerts")
    alerts.add_argument("--db", default=_config.DUCKDB_PATH.get(), help="DuckDB file (default: %(default)s)")
    alerts.add_argument("--budget", help="only this budget")
    alerts.add_argument("--kind", choices=("threshold", "forecast", "unpriced"), help="only this kind")
    alerts.add_argument(
        "--since",
        help="only alerts fired at or after this time: 2025-01-31, 2025-01-31T09:00+01:00 or 7d, 12h",
    )
    _tz_option(alerts)
    alerts.add_argument("--limit", type=int, default=50, help="newest N alerts (default: %(default)s)")
    _format_options(alerts)
    alerts.set_defaults(handler=_alerts)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--budgets",
        default=_config.BUDGETS_FILE.get(),
        help="budgets TOML file (default: $OTEL_LLM_COST_BUDGETS)",
    )
    parser.add_argument("--db", default=_config.DUCKDB_PATH.get(), help="DuckDB file (default: %(default)s)")
    parser.add_argument(
        "--at",
        help="evaluate the windows containing this time (default: now; same forms as --since of reports: "
        "2025-01-31T09:00, 2025-01-31T09:00+01:00, 12h; no zone means --tz)",
    )
    _tz_option(parser)


def _tz_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tz",
        help="IANA time zone for times without one (default UTC) and for displayed times "
        "(default: each budget's own zone; UTC for alerts)",
    )


def _format_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table")
    # Earlier releases had --json; kept as a hidden alias of --format json.
    parser.add_argument("--json", dest="format", action="store_const", const="json", help=argparse.SUPPRESS)


def _when(text: str | None, tz: str | None) -> datetime | None:
    """A ``--at`` / ``--since`` value, parsed as the report commands parse theirs (naive = ``--tz``)."""
    return None if text is None else parse_when(text, _queries.resolve_timezone(tz or "UTC"))


def _at(args: argparse.Namespace) -> datetime:
    # One instant for the whole command: `--at 12h` (or now) must not move between its queries.
    return _when(args.at, args.tz) or datetime.now(UTC)


def _load(args: argparse.Namespace) -> list[Budget]:
    if not args.budgets:
        raise BudgetConfigError("no budgets file: pass --budgets FILE or set OTEL_LLM_COST_BUDGETS")
    return load_budgets(args.budgets)


def _emit(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _bar(percent: Decimal) -> str:
    filled = min(_BAR_WIDTH, int(percent * _BAR_WIDTH / 100))
    return "#" * filled + "." * (_BAR_WIDTH - filled) + ("!" if percent >= 100 else " ")


def _local(value: datetime | None, zone: ZoneInfo) -> str:
    return "-" if value is None else value.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _forecast(status: BudgetStatus, zone: ZoneInfo) -> str:
    if status.forecast_at is None:
        return "over" if status.over else "-"
    return f"{_local(status.forecast_at, zone)} {zone.key}"


def _evaluate(
    args: argparse.Namespace, at: datetime | None = None
) -> tuple[list[Budget], list[BudgetStatus]]:
    budgets = _load(args)
    with contextlib.closing(_read_connection(args.db)) as connection:
        try:
            return budgets, evaluate_budgets(connection, budgets, at or _at(args))
        except StorageError as exc:
            raise StorageError(f"{args.db}: {exc}") from exc


_STATUS_FIELDS: Final = (
    "budget",
    "scope",
    "entity",
    "window",
    "window_start",
    "window_end",
    "spent_usd",
    "limit_usd",
    "percent",
    "calls",
    "unpriced_calls",
    "forecast_at",
    "over",
)
_STATUS_HEADERS: Final = (
    "budget",
    "entity",
    "window_from",
    "spent_usd",
    "limit_usd",
    "percent",
    "",
    "forecast",
    "unpriced_calls",
)


def _status(args: argparse.Namespace) -> int:
    budgets, statuses = _evaluate(args)
    if args.format == "json":
        _emit(_output.to_json([_status_record(s) for s in statuses]))
        return 0
    if args.format == "csv":
        _emit(
            _output.to_csv(_STATUS_FIELDS, ([_status_record(s)[f] for f in _STATUS_FIELDS] for s in statuses))
        )
        return 0
    display = _queries.resolve_timezone(args.tz) if args.tz else None
    rows: list[list[str]] = []
    notes: list[str] = []
    places = usd_places([amount for s in statuses for amount in (s.spent_usd, s.limit_usd)])
    for budget in budgets:
        zone = display or ZoneInfo(budget.tz)
        if budget.is_per_call:
            notes.append(
                f"{budget.name}: per-call limit {format_usd(budget.limit_usd)}, checked on each call"
            )
            continue
        mine = [s for s in statuses if s.budget is budget]
        if not mine:
            notes.append(f"{budget.name}: no spend in the current {budget.describe_window()} window")
        rows.extend(
            [
                budget.name,
                s.entity,
                "-" if s.window_start is None else f"{_local(s.window_start, zone)} {zone.key}",
                format_usd(s.spent_usd, places=places),
                format_usd(s.limit_usd, places=places),
                f"{s.percent}%",
                _bar(s.percent),
                _forecast(s, zone),
                format_int(s.unpriced_calls) if s.unpriced_calls else "",
            ]
            for s in mine
        )
    table = _output.render_table(
        _STATUS_HEADERS,
        rows,
        align="lllrrrllr",
        fancy=_output.use_color(sys.stdout),
        max_width=_output.terminal_width(sys.stdout),
    )
    _emit("\n".join([table, *(["", *notes] if notes else [])]))
    return 0


def _amounts(spent: Decimal, limit: Decimal) -> str:
    places = usd_places([spent, limit])
    return f"{format_usd(spent, places=places)} of {format_usd(limit, places=places)}"


def _status_record(s: BudgetStatus) -> dict[str, Any]:
    return {
        "budget": s.budget.name,
        "scope": s.budget.scope,
        "entity": s.entity,
        "window": s.budget.window,
        "window_start": s.window_start,
        "window_end": s.window_end,
        "spent_usd": s.spent_usd,
        "limit_usd": s.limit_usd,
        "percent": s.percent,
        "calls": s.calls,
        "unpriced_calls": s.unpriced_calls,
        "forecast_at": s.forecast_at,
        "over": s.over,
    }


def _check(args: argparse.Namespace) -> int:
    at = _at(args)
    # Read-only first: a missing or foreign file is refused before --fire opens it read-write, which
    # would create the file (a typo in --db) or add our tables to someone else's database.
    budgets, statuses = _evaluate(args, at)
    if args.fire:
        # The alerts are printed below; the webhook (if any) is the only other sink.
        sinks: list[AlertSink] = [WebhookSink(args.webhook)] if args.webhook else []
        engine = BudgetEngine(budgets, sinks)
        with _write_connection(args.db) as connection:
            fired = engine.evaluate(connection, at)
        engine.shutdown(timeout_s=30.0)
        for alert in fired:
            print(f"ALERT {alert.kind.value}: {alert.message}")
    over = [s for s in statuses if s.over]
    for s in over:
        print(
            f"OVER {s.budget.name} {s.budget.scope}={s.entity}: {_amounts(s.spent_usd, s.limit_usd)} "
            f"({s.percent}%)"
        )
    unpriced = sum(s.unpriced_calls for s in statuses)
    if unpriced:
        print(f"WARNING {unpriced} call(s) to unknown models are not counted in these totals")
    window_budgets = sum(1 for b in budgets if not b.is_per_call)
    if not over:
        print(f"OK {window_budgets} window budget(s), {len(statuses)} entities within limits")
        return 0
    return 1


def _read_connection(db: str) -> duckdb.DuckDBPyConnection:
    if is_lake_target(db):
        return open_lake(LakeTarget(db), create=False, read_only=True)
    return _storage.connect(db, read_only=True)


def _write_connection(db: str) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]:
    if is_lake_target(db):
        # A lake has no key on budget_alerts: under the writers' commit lock, the "fired yet?" check
        # sees every alert recorded before, by writers and by other checks, so each fires once.
        return locked_lake(LakeTarget(db), create=False)
    return contextlib.closing(_storage.connect(db))


def _alerts(args: argparse.Namespace) -> int:
    # A missing file is an error, as for `report`: "no alerts" would hide a mistyped --db.
    if not is_lake_target(args.db) and not Path(args.db).is_file():
        raise StorageError(f"DuckDB file {args.db!r} does not exist (nothing has been exported to it yet)")
    with CostStore(args.db) as store:
        history = store.alerts(
            budget=args.budget or None,
            kind=args.kind,
            since=_when(args.since, args.tz),
            limit=max(0, args.limit),
        )
    rows: list[dict[str, Any]] = [
        {name: _plain(name, getattr(alert, name)) for name in ALERT_FIELDS} for alert in history
    ]
    if args.format == "json":
        _emit(_output.to_json(rows))
        return 0
    if args.format == "csv":
        _emit(_output.to_csv(ALERT_FIELDS, ([row[f] for f in ALERT_FIELDS] for row in rows)))
        return 0
    if not rows:
        _emit("no alerts")
        return 0
    zone = _queries.resolve_timezone(args.tz or "UTC")
    table = [
        [_local(row["fired_at"], zone), row["kind"], row["budget"], row["entity"], row["message"]]
        for row in rows
    ]
    headers = ("fired_at", "kind", "budget", "entity", "message")
    width = _output.terminal_width(sys.stdout)
    _emit(
        _output.render_table(
            headers, table, align="lllll", fancy=_output.use_color(sys.stdout), max_width=width
        )
    )
    return 0


def _plain(name: str, value: object) -> object:
    if isinstance(value, Decimal) and name != "percent":
        return value.normalize()  # threshold 0.800000 -> 0.8, limit 100.000000000000 -> 100
    return value
