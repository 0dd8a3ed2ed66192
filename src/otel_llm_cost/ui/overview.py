"""The Overview page: the window's totals, spend over time stacked by a dimension, the biggest movers
against the previous window, budget status with forecasts and the latest alerts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, timedelta

from otel_llm_cost.query.explore_results import Mover, SeriesPoint
from otel_llm_cost.query.results import Summary
from otel_llm_cost.ui.budgets_page import alerts_table, status_table
from otel_llm_cost.ui.charts import Series, stacked_days
from otel_llm_cost.ui.context import PageContext
from otel_llm_cost.ui.fmt import count, esc, key_label, money, pct
from otel_llm_cost.ui.layout import page, table, window_bar

__all__ = ["OTHER_LABEL", "TOP_GROUPS", "render_overview", "series_layers", "summary_cards"]

TOP_GROUPS = 6
OTHER_LABEL = "(other)"


def summary_cards(summary: Summary) -> str:
    unpriced_share = pct(summary.unpriced_calls, summary.call_count) or "0.0%"
    cards = [
        ("Total spend", money(summary.cost_usd, summary.unpriced_calls), "priced calls only", "spend"),
        (
            "Calls",
            count(summary.call_count),
            f"{summary.excluded_records:,} duplicate records not counted",
            "calls",
        ),
        (
            "Tokens",
            count(summary.total_tokens),
            f"{summary.input_tokens:,} in · {summary.output_tokens:,} out",
            "tokens",
        ),
        (
            "Cache savings",
            money(summary.cache_saved_usd),
            f"{summary.cache_hit_calls:,} calls read the cache",
            "savings",
        ),
        (
            "Unpriced calls",
            count(summary.unpriced_calls),
            f"{unpriced_share} of calls, not in the spend",
            "unpriced",
        ),
    ]
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card" data-card="{key}"><div class="label">{label}</div><div'
            f' class="value">{value}</div>'
            f'<div class="sub">{esc(sub)}</div></div>'
            for label, value, sub, key in cards
        )
        + "</div>"
    )


def series_layers(
    points: Sequence[SeriesPoint], top: int, label: Callable[[str | None], str] = key_label
) -> list[Series]:
    """Chart layers by rank, named by ``label``; the groups beyond ``top`` are one '(other)' layer."""
    layers: dict[int, Series] = {}
    for point in points:
        name = OTHER_LABEL if point.rank > top else label(point.key)
        layer = layers.setdefault(point.rank, Series(name, {}))
        if point.total_cost_usd is not None:
            layer.values[point.day] = point.total_cost_usd
    return [layers[rank] for rank in sorted(layers)]


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def movers_table(ctx: PageContext, movers: Sequence[Mover]) -> str:
    rows = []
    for m in movers:
        change = m.change_usd
        arrow = "up" if change > 0 else "down" if change < 0 else ""
        href = ctx.link("/breakdown", ctx.view.with_filter(ctx.view.by, m.key))
        rows.append(
            [
                f'<a href="{esc(href)}">{ctx.key_html(ctx.view.by, m.key)}</a>',
                money(m.previous_cost_usd),
                money(m.cost_usd, m.unpriced_calls),
                f'<span class="{arrow}">{"+" if change > 0 else ""}</span>{money(change)}',
                pct(change, m.previous_cost_usd) if m.previous_cost_usd else "new",
            ]
        )
    headers = [
        (ctx.view.by, "text"),
        ("previous window", "num"),
        ("this window", "num"),
        ("change", "num"),
        ("%", "num"),
    ]
    return (
        table(headers, rows, cls="data movers") if rows else '<p class="note">No spend in either window.</p>'
    )


def render_overview(ctx: PageContext) -> str:
    view, store = ctx.view, ctx.store
    summary = store.summary(view.start, view.end)
    points = store.spend_series(view.by, view.start, view.end, view.zone.key, top=TOP_GROUPS)
    movers = store.movers(view.by, view.start, view.end, limit=8)
    statuses = store.check_budgets(ctx.budgets) if ctx.budgets else []
    alerts = store.alerts(limit=10)
    chart = stacked_days(
        _days(view.first_day, view.last_day),
        series_layers(points, TOP_GROUPS, lambda key: ctx.key_text(view.by, key)),
        title=f"Spend per day by {view.by}",
    )
    previous = f"{view.first_day - timedelta(days=view.days)} to {view.first_day - timedelta(days=1)}"
    budgets = (
        status_table(ctx, statuses)
        if ctx.budgets
        else '<p class="note">No budgets loaded (start with <code>--budgets FILE</code>).</p>'
    )
    body = (
        window_bar(view, ctx.shell, "/", with_dim=False, user_labels=ctx.user_labels)
        + summary_cards(summary)
        + f'<section class="panel"><h2>Spend per day by {esc(view.by)} ({esc(view.zone.key)})</h2>{chart}'
        '<p class="note">Days in the chosen zone; unpriced calls are not in the bars but counted'
        " above.</p></section>"
        f'<div class="grid2"><section class="panel"><h2>Biggest movers by {esc(view.by)}</h2>'
        f'<p class="note">Against the previous {view.days} days'
        f" ({previous}).</p>{movers_table(ctx, movers)}</section>"
        f'<section class="panel"><h2>Budgets now</h2>{budgets}</section></div>'
        f'<section class="panel"><h2>Recent alerts</h2>{alerts_table(ctx, alerts)}</section>'
    )
    return page("Overview", "overview", body, ctx.shell, refresh_s=view.refresh_s, query=view.query())
