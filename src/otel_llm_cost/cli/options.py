"""What the report commands share: time windows, the store, output, and the common options.

A ``--since``/``--until`` value, the ``--db`` path and the parent parsers for ``--db``/``--tz``,
``--since``/``--until`` and ``--format`` are read the same way by every command module.
"""

from __future__ import annotations

import argparse
import os
import pydoc
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from otel_llm_cost import _config
from otel_llm_cost.enrich.attribution import hash_user_id
from otel_llm_cost.exceptions import StorageError
from otel_llm_cost.query import CostStore
from otel_llm_cost.query import output as _output
from otel_llm_cost.query import sql as _queries
from otel_llm_cost.query.filters import parse_where
from otel_llm_cost.storage.lake import is_lake_target

__all__ = [
    "add_command",
    "db_path",
    "describe_window",
    "emit",
    "fancy",
    "format_options",
    "open_store",
    "parse_when",
    "positive_int",
    "store_options",
    "window",
    "window_options",
]

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


def db_path(args: argparse.Namespace) -> Path:
    return Path(args.db if args.db else _config.DUCKDB_PATH.get())


def open_store(args: argparse.Namespace, *, read_only: bool = True) -> CostStore:
    target = args.db if args.db else _config.DUCKDB_PATH.get()
    if is_lake_target(target):
        # A lake (`--db ducklake:postgres:...`): credentials from libpq's env.
        return CostStore(target, read_only=read_only)
    path = db_path(args)
    # Checked here so that reporting on a missing file never creates one.
    if not path.is_file():
        raise StorageError(
            f"no DuckDB file at {path} (pass --db PATH or set {_config.DUCKDB_PATH.name}; "
            "`otel-llm-cost demo` writes a sample one)"
        )
    return CostStore(path, read_only=read_only)


def window(args: argparse.Namespace) -> tuple[datetime | None, datetime | None, ZoneInfo]:
    zone = _queries.resolve_timezone(args.tz)
    now = datetime.now(UTC)
    since = parse_when(args.since, zone, now=now) if args.since else None
    until = parse_when(args.until, zone, now=now) if args.until else None
    _queries.check_window(since, until)
    return since, until, zone


def fancy() -> bool:
    """Bold headers and box-drawing rules: on a TTY, unless ``NO_COLOR`` is set."""
    return _output.use_color(sys.stdout)


def emit(text: str) -> None:
    """Print a command's output; through ``$PAGER`` (default ``less``) when it is taller than an
    interactive terminal, as git does. ``PAGER=cat`` turns paging off."""
    text = text if text.endswith("\n") else text + "\n"
    interactive = _output.is_tty(sys.stdout) and _output.is_tty(sys.stdin)
    if interactive and text.count("\n") >= shutil.get_terminal_size().lines:
        # less: keep the bold headers (-R), leave the text on screen (-X), quit if it fits after all (-F).
        os.environ.setdefault("LESS", "FRX")
        pydoc.pager(text)
        return
    sys.stdout.write(text)


def describe_window(since: datetime | None, until: datetime | None, zone: ZoneInfo) -> str:
    def show(value: datetime | None, fallback: str) -> str:
        return value.astimezone(zone).isoformat(sep=" ", timespec="minutes") if value else fallback

    return f"{show(since, 'first call')} -> {show(until, 'now')} ({zone.key})"


def describe_where(where: dict[str, str | None]) -> str:
    """``"  where feature=search, user=h:…"`` for a report's title; empty without filters."""
    if not where:
        return ""
    return "  where " + ", ".join(f"{k}={'(none)' if v is None else v}" for k, v in where.items())


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


# -- the options every report command shares ----------------------------------------------------------


def store_options() -> argparse.ArgumentParser:
    """A parent parser with ``--db`` and ``--tz``."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(
        "--db", metavar="PATH", help=f"DuckDB file (default: ${_config.DUCKDB_PATH.name} or llm_costs.duckdb)"
    )
    parser.add_argument("--tz", default="UTC", help="IANA time zone for dates and day buckets (default UTC)")
    return parser


def window_options() -> argparse.ArgumentParser:
    """A parent parser with ``--since`` and ``--until`` (a half-open window)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--since", help="start, inclusive: 2025-01-31, 2025-01-31T09:00+01:00 or 7d, 12h")
    parser.add_argument("--until", help="end, exclusive (same forms as --since; default: now)")
    return parser


def filter_options() -> argparse.ArgumentParser:
    """A parent parser with ``--where DIMENSION=VALUE`` (repeatable), ``--user RAW`` and ``--user-labels``."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(
        "--where",
        action="append",
        metavar="DIMENSION=VALUE",
        help="only calls with this value (repeatable, all must hold): feature=search, model=gpt-4o, "
        "tag:team=growth; DIMENSION= matches calls without one",
    )
    parser.add_argument(
        "--user",
        metavar="RAW_ID",
        help="only this user: the raw id as the application knows it, hashed with this installation's key",
    )
    parser.add_argument(
        "--user-labels",
        metavar="CSV",
        help="show display names beside hashed user ids, from a CSV of user,label rows "
        f"(default: ${_config.USER_LABELS.name})",
    )
    return parser


def filters(args: argparse.Namespace) -> dict[str, str | None]:
    """The ``where=`` mapping of ``--where`` and ``--user``."""
    where = parse_where(args.where)
    if args.user:
        where["user"] = hash_user_id(args.user)
    return where


def format_options(*more: str) -> argparse.ArgumentParser:
    """A parent parser with ``--format table|json|csv`` (and the formats in ``more``)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--format", choices=("table", "json", "csv", *more), default="table")
    return parser


def add_command(
    subparsers: argparse._SubParsersAction[Any],
    name: str,
    handler: Callable[[argparse.Namespace], int],
    help_text: str,
    parents: Sequence[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add subcommand ``name``, whose ``handler(args) -> int`` runs it (set with ``set_defaults``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, parents=list(parents), help=help_text, description=help_text
    )
    parser.set_defaults(handler=handler)
    return parser
