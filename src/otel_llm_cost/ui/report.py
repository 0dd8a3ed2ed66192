"""``otel-llm-cost report --format html``: the overview and the breakdowns as one self-contained file.

Everything is inline (styles, the sorting script, SVG charts), so the file can be mailed to someone who
runs nothing; it holds no links back to a server. The figures come from the same CostStore questions
as the dashboard's pages, under the same filters (``--where``, ``--user``) for every figure; users are
shown by the operator's labels when ``--user-labels`` names them (the labels are only printed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final
from zoneinfo import ZoneInfo

from otel_llm_cost.query.sql import resolve_dimension
from otel_llm_cost.query.store import CostStore
from otel_llm_cost.ui.charts import stacked_days
from otel_llm_cost.ui.fmt import count, esc, key_label, money, pct, user_html
from otel_llm_cost.ui.layout import Shell, page, table
from otel_llm_cost.ui.overview import TOP_GROUPS, series_layers, summary_cards
from otel_llm_cost.ui.params import MAX_WINDOW_DAYS, View

__all__ = ["REPORT_DIMENSIONS", "render_report_for_window", "render_report_html"]

REPORT_DIMENSIONS: Final = ("model", "provider", "feature", "org", "user")
_ROWS: Final = 50


def _key(dimension: str, key: str | None, labels: Mapping[str, str]) -> str:
    return user_html(key, labels) if dimension == "user" else esc(key_label(key))


def _breakdown(store: CostStore, view: View, dimension: str, labels: Mapping[str, str]) -> str:
    rows = store.breakdown(dimension, view.start, view.end, view.filter_map, limit=_ROWS)
    known = sum((r.total_cost_usd for r in rows if r.total_cost_usd is not None), Decimal(0))
    body = [
        [
            _key(dimension, r.key, labels),
            money(r.total_cost_usd),
            pct(r.total_cost_usd, known),
            count(r.call_count),
            count(r.unpriced_calls),
            count(r.total_tokens),
        ]
        for r in rows
    ]
    headers = [
        (dimension, "text"),
        ("cost", "num"),
        ("share", "num"),
        ("calls", "num"),
        ("unpriced calls", "num"),
        ("tokens", "num"),
    ]
    note = f'<p class="note">The {_ROWS} groups with the highest spend.</p>' if len(rows) == _ROWS else ""
    return (
        f'<section class="panel" data-dimension="{esc(dimension)}"><h2>By {esc(dimension)}</h2>{note}'
        + table(headers, body, cls="data breakdown")
        + "</section>"
    )


def _movers(store: CostStore, view: View, labels: Mapping[str, str]) -> str:
    movers = store.movers(view.by, view.start, view.end, limit=8, filters=view.filter_map)
    rows = [
        [
            _key(view.by, m.key, labels),
            money(m.previous_cost_usd),
            money(m.cost_usd, m.unpriced_calls),
            money(m.change_usd),
        ]
        for m in movers
    ]
    headers = [(view.by, "text"), ("previous window", "num"), ("this window", "num"), ("change", "num")]
    return table(headers, rows, cls="data movers")


def render_report_for_window(
    store: CostStore,
    since: datetime | None,
    until: datetime | None,
    zone: ZoneInfo,
    dimensions: Sequence[str] = REPORT_DIMENSIONS,
    *,
    source: str = "",
    where: Mapping[str, str | None] | None = None,
    user_labels: Mapping[str, str] | None = None,
) -> str:
    """The report over whole local days covering ``[since, until)``; open ends take the first and last
    day of the calls ``where`` selects, and at most the last
    :data:`~otel_llm_cost.ui.params.MAX_WINDOW_DAYS` days. Every figure is under ``where``."""
    filters = {resolve_dimension(name).name: value for name, value in (where or {}).items()}
    if since is None or until is None:
        totals = store.summary(since, until, where=filters)
        first = totals.first_start or datetime.now(UTC)
        last = totals.last_end or first
    last_day = (until - timedelta(microseconds=1) if until else last).astimezone(zone).date()
    first_day = (since if since else first).astimezone(zone).date()
    first_day = max(first_day, last_day - timedelta(days=MAX_WINDOW_DAYS - 1))
    view = View(
        first_day=min(first_day, last_day), last_day=last_day, zone=zone, filters=tuple(filters.items())
    )
    return render_report_html(store, view, dimensions=dimensions, source=source, user_labels=user_labels)


def _filters_note(view: View, labels: Mapping[str, str]) -> str:
    if not view.filters:
        return ""
    shown = ", ".join(f"{esc(name)} = {_key(name, value, labels)}" for name, value in view.filters)
    return f'<p class="note filters">Only calls where {shown}.</p>'


def render_report_html(
    store: CostStore,
    view: View,
    *,
    dimensions: Sequence[str] = REPORT_DIMENSIONS,
    source: str = "",
    user_labels: Mapping[str, str] | None = None,
) -> str:
    """One HTML document under ``view.filters``: totals, spend per day by ``view.by``, movers and a
    table per dimension."""
    shell = Shell(inline_assets=True, source=source)
    labels = user_labels or {}
    where = view.filter_map
    summary = store.summary(view.start, view.end, where=where)
    points = store.spend_series(view.by, view.start, view.end, view.zone.key, top=TOP_GROUPS, filters=where)
    days = [view.first_day + timedelta(days=i) for i in range(view.days)]
    name = (lambda key: labels.get(key or "", key_label(key))) if view.by == "user" else key_label
    layers = series_layers(points, TOP_GROUPS, name)
    chart = stacked_days(days, layers, title=f"Spend per day by {view.by}")
    body = (
        f'<p class="note">Window {view.first_day} to {view.last_day} inclusive, days in'
        f" {esc(view.zone.key)}. "
        "Money to the millionth of a dollar; unpriced calls are counted, never shown as $0.</p>"
        + _filters_note(view, labels)
        + summary_cards(summary)
        + f'<section class="panel"><h2>Spend per day by {esc(view.by)}</h2>{chart}</section>'
        + f'<section class="panel"><h2>Biggest movers against the previous {view.days}'
        f" days</h2>{_movers(store, view, labels)}</section>"
        + "".join(_breakdown(store, view, d, labels) for d in dimensions)
    )
    html = page("LLM spend report", "", body, shell)
    # A report has no server behind it: drop the navigation.
    start, end = html.find("<nav>"), html.find("</nav>")
    return html[:start] + html[end + len("</nav>") :] if start >= 0 else html
