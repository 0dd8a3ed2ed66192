"""What a dashboard URL asks for: window, zone, dimensions, filters, refresh; validated into a View.

Everything a page shows is in its URL (``?from=2026-11-01&to=2026-11-30&tz=Europe/Berlin&by=model
&f=feature=search``), so a view can be bookmarked and shared. ``from`` and ``to`` are calendar days in
the zone, both included; without them the window is the last ``days`` days (30) up to today. Bad
input raises :class:`BadRequest` with a message the page shows as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from otel_llm_cost.exceptions import UnknownDimensionError
from otel_llm_cost.query.sql import resolve_dimension, resolve_timezone

__all__ = ["MAX_WINDOW_DAYS", "BadRequest", "View", "check_id", "parse_view"]

MAX_WINDOW_DAYS: Final = 400
"""Longest window a page answers (a daily chart of more days is unreadable, and the scan grows with it)."""
_MAX_REFRESH_S: Final = 3600
_ID: Final = re.compile(r"^[\w.:@/+=-]{1,200}$")


class BadRequest(ValueError):
    """The URL asks for something the dashboard cannot answer; the message says what and how to fix it."""


@dataclass(frozen=True, slots=True)
class View:
    """The validated URL: a half-open window ``[start, end)`` of whole local days and the choices."""

    first_day: date
    last_day: date
    zone: ZoneInfo
    by: str = "model"
    dim: str = "model"
    filters: tuple[tuple[str, str | None], ...] = ()
    refresh_s: int = 0
    explicit_days: bool = field(default=False, compare=False)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_day, time(), self.zone)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last_day + timedelta(days=1), time(), self.zone)

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    @property
    def filter_map(self) -> dict[str, str | None]:
        return dict(self.filters)

    def query(self, **changes: object) -> str:
        """This view's URL query string, with ``changes`` applied (``f`` replaces the filters)."""
        view = replace(self, **changes)  # type: ignore[arg-type]
        pairs: list[tuple[str, str]] = [
            ("from", view.first_day.isoformat()),
            ("to", view.last_day.isoformat()),
            ("tz", view.zone.key),
            ("by", view.by),
            ("dim", view.dim),
        ]
        pairs += [("f", f"{name}={'' if value is None else value}") for name, value in view.filters]
        if view.refresh_s:
            pairs.append(("refresh", str(view.refresh_s)))
        return urlencode(pairs)

    def with_filter(self, name: str, value: str | None) -> str:
        kept = tuple((n, v) for n, v in self.filters if n != name)
        return self.query(filters=(*kept, (name, value)))

    def without_filter(self, name: str) -> str:
        return self.query(filters=tuple((n, v) for n, v in self.filters if n != name))


def _dimension(name: str, label: str) -> str:
    try:
        return resolve_dimension(name).name
    except UnknownDimensionError as exc:
        raise BadRequest(f"{label}: {exc}") from exc


def _day(text: str, label: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise BadRequest(f"{label}={text!r} is not a date; use YYYY-MM-DD, for example 2026-11-30") from None


def _int(text: str, label: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{label}={text!r} is not a whole number") from None
    if not low <= value <= high:
        raise BadRequest(f"{label} must be between {low} and {high}, not {value}")
    return value


def _filters(raw: Sequence[str], hash_user: Callable[[str], str]) -> tuple[tuple[str, str | None], ...]:
    filters: dict[str, str | None] = {}
    for item in raw:
        if not item.strip():
            continue  # the empty "add a filter" box of the form
        name, sep, value = item.partition("=")
        if not sep:
            raise BadRequest(f"filter {item!r} needs the form dimension=value, for example model=gpt-4o")
        dimension = _dimension(name, "filter")
        if value and dimension == "user":
            # A raw user id is stored only as its keyed hash: search for the hash.
            value = hash_user(value)
        filters[dimension] = value or None
    return tuple(filters.items())


def parse_view(
    params: Mapping[str, str],
    filters: Sequence[str],
    *,
    hash_user: Callable[[str], str],
    now: datetime | None = None,
) -> View:
    """The View a URL asks for (``now``, default the current time, picks the default window's last day).

    Raises:
        BadRequest: an unknown dimension or zone, a bad date, an empty or too long window.
    """
    try:
        zone = resolve_timezone(params.get("tz", "UTC") or "UTC")
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    explicit = "from" in params or "to" in params
    today = (now or datetime.now(UTC)).astimezone(zone).date()
    days = _int(params.get("days", "30"), "days", 1, MAX_WINDOW_DAYS)
    last = _day(params["to"], "to") if params.get("to") else today
    first = _day(params["from"], "from") if params.get("from") else last - timedelta(days=days - 1)
    if last < first:
        raise BadRequest(f"empty window: from={first} is after to={last}")
    if (last - first).days + 1 > MAX_WINDOW_DAYS:
        raise BadRequest(
            f"window of {(last - first).days + 1} days is too long: pages answer at most "
            f"{MAX_WINDOW_DAYS} days; narrow from/to"
        )
    return View(
        first_day=first,
        last_day=last,
        zone=zone,
        by=_dimension(params.get("by", "model") or "model", "by"),
        dim=_dimension(params.get("tag") or params.get("dim") or "model", "dim"),
        filters=_filters(filters, hash_user),
        refresh_s=_int(params.get("refresh", "0") or "0", "refresh", 0, _MAX_REFRESH_S),
        explicit_days=explicit,
    )


def check_id(value: str, label: str) -> str:
    """An id from a URL path (workflow, session, user, span): printable, bounded."""
    if not _ID.match(value):
        raise BadRequest(f"{label} {value[:80]!r} is not a valid id")
    return value
