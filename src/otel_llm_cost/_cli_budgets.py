"""``otel-llm-cost budgets status|check`` and ``otel-llm-cost alerts`` (registered by ``cli``).

``budgets status`` prints where every entity stands; ``budgets check`` exits 1 when any window budget is
spent (for cron and CI; ``--fire`` also records and delivers alerts); ``alerts`` prints the history kept
in ``budget_alerts``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from otel_llm_cost import _config, _queries, _storage
from otel_llm_cost._cli_reports import parse_when
from otel_llm_cost._output import format_usd
from otel_llm_cost._schema import ALERTS_TABLE
from otel_llm_cost.budgets import (
    AlertSink,
    Budget,
    BudgetEngine,
    BudgetStatus,
    WebhookSink,
    evaluate_budgets,
    load_budgets,
)
from otel_llm_cost.exceptions import BudgetConfigError

_BAR_WIDTH = 20
_ENTITY_WIDTH = 28


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``budgets`` (with ``status`` and ``check``) and ``alerts``."""
    budgets = subparsers.add_parser("budgets", help="budget status and checks (see budgets.toml)")
    commands = budgets.add_subparsers(dest="budgets_command", metavar="{status,check}", required=True)

    status = commands.add_parser("status", help="spent, limit, percent and forecast per entity")
    _common(status)
    status.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
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
    alerts.add_argument("--json", action="store_true", help="one JSON object per line")
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
    parser.add_argument("--tz", default="UTC", help="IANA time zone of times without one (default UTC)")


def _when(text: str | None, tz: str) -> datetime | None:
    """A ``--at`` / ``--since`` value, parsed as the report commands parse theirs (naive = ``--tz``)."""
    return None if text is None else parse_when(text, _queries.resolve_timezone(tz))


def _at(args: argparse.Namespace) -> datetime:
    # One instant for the whole command: `--at 12h` (or now) must not move between its queries.
    return _when(args.at, args.tz) or datetime.now(UTC)


def _load(args: argparse.Namespace) -> list[Budget]:
    if not args.budgets:
        raise BudgetConfigError("no budgets file: pass --budgets FILE or set OTEL_LLM_COST_BUDGETS")
    return load_budgets(args.budgets)


def _bar(percent: Decimal) -> str:
    filled = min(_BAR_WIDTH, int(percent * _BAR_WIDTH / 100))
    return "#" * filled + "." * (_BAR_WIDTH - filled) + ("!" if percent >= 100 else " ")


def _short(entity: str) -> str:
    return entity if len(entity) <= _ENTITY_WIDTH else entity[: _ENTITY_WIDTH - 1] + "~"


def _local(value: datetime | None, tz: str) -> str:
    return "-" if value is None else value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


def _forecast(status: BudgetStatus) -> str:
    if status.forecast_at is None:
        return "over" if status.over else "-"
    return f"{_local(status.forecast_at, status.budget.tz)} {status.budget.tz}"


def _evaluate(args: argparse.Namespace) -> tuple[list[Budget], list[BudgetStatus]]:
    budgets = _load(args)
    with contextlib.closing(_storage.connect(args.db, read_only=True)) as connection:
        return budgets, evaluate_budgets(connection, budgets, _at(args))


def _status(args: argparse.Namespace) -> int:
    budgets, statuses = _evaluate(args)
    if args.json:
        for s in statuses:
            print(json.dumps(_status_dict(s)))
        return 0
    header = (
        f"{'BUDGET':<20} {'ENTITY':<{_ENTITY_WIDTH}} {'WINDOW FROM':<16} {'SPENT':>12} {'LIMIT':>12} "
        f"{'%':>8}  {'':<{_BAR_WIDTH + 1}} FORECAST"
    )
    print(header)
    for budget in budgets:
        rows = [s for s in statuses if s.budget is budget]
        if budget.is_per_call:
            print(f"{budget.name:<20} (per-call limit {format_usd(budget.limit_usd)}: checked on each call)")
            continue
        if not rows:
            print(f"{budget.name:<20} (no spend in the current {budget.describe_window()} window)")
            continue
        for s in rows:
            unpriced = f"  +{s.unpriced_calls} unpriced" if s.unpriced_calls else ""
            since = _local(s.window_start, budget.tz)
            print(
                f"{budget.name:<20} {_short(s.entity):<{_ENTITY_WIDTH}} {since:<16} "
                f"{format_usd(s.spent_usd):>12} {format_usd(s.limit_usd):>12} {s.percent:>7}%  "
                f"{_bar(s.percent)} "
                f"{_forecast(s)}{unpriced}"
            )
    return 0


def _status_dict(s: BudgetStatus) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    return {
        "budget": s.budget.name,
        "scope": s.budget.scope,
        "entity": s.entity,
        "window": s.budget.window,
        "window_start": iso(s.window_start),
        "window_end": iso(s.window_end),
        "spent_usd": str(s.spent_usd),
        "limit_usd": str(s.limit_usd),
        "percent": str(s.percent),
        "calls": s.calls,
        "unpriced_calls": s.unpriced_calls,
        "forecast_at": iso(s.forecast_at),
        "over": s.over,
    }


def _check(args: argparse.Namespace) -> int:
    if args.fire:
        budgets = _load(args)
        at = _at(args)
        # The alerts are printed below; the webhook (if any) is the only other sink.
        sinks: list[AlertSink] = [WebhookSink(args.webhook)] if args.webhook else []
        engine = BudgetEngine(budgets, sinks)
        with contextlib.closing(_storage.connect(args.db)) as connection:
            fired = engine.evaluate(connection, at)
            statuses = evaluate_budgets(connection, budgets, at)
        engine.shutdown(timeout_s=30.0)
        for alert in fired:
            print(f"ALERT {alert.kind.value}: {alert.message}")
    else:
        budgets, statuses = _evaluate(args)
    over = [s for s in statuses if s.over]
    for s in over:
        print(
            f"OVER {s.budget.name} {s.budget.scope}={s.entity}: {format_usd(s.spent_usd)} of "
            f"{format_usd(s.limit_usd)} ({s.percent}%)"
        )
    unpriced = sum(s.unpriced_calls for s in statuses)
    if unpriced:
        print(f"WARNING {unpriced} call(s) to unknown models are not counted in these totals")
    window_budgets = sum(1 for b in budgets if not b.is_per_call)
    if not over:
        print(f"OK {window_budgets} window budget(s), {len(statuses)} entities within limits")
        return 0
    return 1


def _alerts(args: argparse.Namespace) -> int:
    if not os.path.exists(args.db):
        print(f"no alerts ({args.db} does not exist)")
        return 0
    with contextlib.closing(_storage.connect(args.db, read_only=True)) as connection:
        rows = _alert_rows(connection, args)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    if not rows:
        print("no alerts")
        return 0
    for row in rows:
        print(f"{row['fired_at'][:19].replace('T', ' ')}  {row['kind']:<9} {row['budget']}: {row['message']}")
    return 0


def _alert_rows(connection: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    [(exists,)] = connection.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [ALERTS_TABLE]
    ).fetchall()
    if not exists:
        return []
    where: list[str] = []
    params: list[object] = []
    if args.budget:
        where.append("budget = ?")
        params.append(args.budget)
    if args.kind:
        where.append("kind = ?")
        params.append(args.kind)
    since = _when(args.since, args.tz)
    if since is not None:
        where.append("fired_at >= ?")
        params.append(since)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    # Timestamps leave DuckDB as epoch microseconds: its Python conversion of TIMESTAMPTZ needs pytz.
    cursor = connection.execute(
        "SELECT budget, scope, entity, kind, threshold, spent_usd, limit_usd, percent, unpriced_calls, "
        "epoch_us(window_start), epoch_us(window_end), epoch_us(forecast_at), epoch_us(fired_at), "
        f"trace_id, span_id, message FROM {ALERTS_TABLE} {clause}"
        " ORDER BY fired_at DESC, budget, entity, kind, threshold DESC LIMIT ?",
        [*params, max(0, args.limit)],
    )
    names = [d[0] for d in cursor.description]
    result = []
    for values in cursor.fetchall():
        row = dict(zip(names, values, strict=True))
        record: dict[str, Any] = {}
        for name, value in row.items():
            key = name.removeprefix("epoch_us(").removesuffix(")")
            if name.startswith("epoch_us("):
                record[key] = None if value is None else datetime.fromtimestamp(value / 1e6, UTC).isoformat()
            elif isinstance(value, Decimal):
                record[key] = f"{value.normalize():f}" if key != "percent" else str(value)
            else:
                record[key] = value
        result.append(record)
    return result
