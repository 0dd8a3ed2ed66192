"""The Budgets and alerts page: each budget's entities with spent / limit / forecast, and the"
" alert history."""

from __future__ import annotations

from collections.abc import Sequence

from otel_llm_cost.budgets.evaluation import BudgetStatus
from otel_llm_cost.query.results import AlertRow
from otel_llm_cost.query.tabular import Rows
from otel_llm_cost.ui.context import PageContext
from otel_llm_cost.ui.fmt import count, esc, money, user_html, when
from otel_llm_cost.ui.layout import page, table

__all__ = ["alerts_table", "render_budgets", "status_table"]


def _meter(status: BudgetStatus) -> str:
    width = min(float(status.percent), 100.0)
    over = " over" if status.over else ""
    return (
        f'<div class="meter{over}" title="{status.percent}%"><span style="width:{width:.1f}%"></span></div>'
    )


def status_table(ctx: PageContext, statuses: Sequence[BudgetStatus]) -> str:
    if not statuses:
        return '<p class="note">No spend under any budget in its current window.</p>'
    zone = ctx.view.zone
    rows = []
    for s in statuses:
        state = "status-over" if s.over else "status-warn" if s.forecast_at is not None else ""
        forecast = (
            f'<span class="{state}">reaches limit {when(s.forecast_at, zone)}</span>'
            if s.forecast_at is not None
            else ("over" if s.over else "not before window end" if s.window_end else "no forecast (lifetime)")
        )
        rows.append(
            [
                esc(s.budget.name),
                user_html(s.entity, ctx.user_labels),
                f"{when(s.window_start, zone)} → {when(s.window_end, zone)}"
                if s.window_start
                else "lifetime",
                money(s.spent_usd, s.unpriced_calls),
                money(s.limit_usd),
                f'<span class="num {state}" data-value="{s.percent}">{s.percent}%</span>{_meter(s)}',
                forecast,
            ]
        )
    headers = [
        ("budget", "text"),
        ("entity", "text"),
        ("window", "text"),
        ("spent", "num"),
        ("limit", "num"),
        ("used", "num"),
        ("forecast", "text"),
    ]
    return table(headers, rows, cls="data budgets")


def alerts_table(ctx: PageContext, alerts: Rows[AlertRow]) -> str:
    if not len(alerts):
        return '<p class="note">No alert has fired in this file.</p>'
    zone = ctx.view.zone
    rows = [
        [
            when(a.fired_at, zone),
            esc(a.budget),
            user_html(a.entity, ctx.user_labels),
            esc(a.kind),
            money(a.spent_usd, a.unpriced_calls or 0),
            money(a.limit_usd),
            esc(a.message or ""),
        ]
        for a in alerts
    ]
    headers = [
        ("fired", "text"),
        ("budget", "text"),
        ("entity", "text"),
        ("kind", "text"),
        ("spent", "num"),
        ("limit", "num"),
        ("message", "text"),
    ]
    return table(headers, rows, cls="data alerts")


def render_budgets(ctx: PageContext) -> str:
    statuses = ctx.store.check_budgets(ctx.budgets) if ctx.budgets else []
    alerts = ctx.store.alerts(limit=200)
    loaded = (
        f"{len(ctx.budgets)} budget(s) loaded: "
        + ", ".join(
            f"{esc(b.name)} ({esc(b.scope)}, {esc(b.window)}, limit {money(b.limit_usd)})"
            for b in ctx.budgets
        )
        if ctx.budgets
        else "No budgets loaded: start the dashboard with <code>--budgets FILE</code> "
        "(or set OTEL_LLM_COST_BUDGETS) to see spent / limit / forecast."
    )
    body = (
        '<section class="panel"><h2>Status now</h2><p'
        f' class="note">{loaded}</p>{status_table(ctx, statuses)}</section>'
        '<section class="panel"><h2>Alert history</h2><p class="note">Newest first,'
        f" {count(len(alerts))} shown.</p>"
        f"{alerts_table(ctx, alerts)}</section>"
    )
    return page(
        "Budgets & alerts", "budgets", body, ctx.shell, refresh_s=ctx.view.refresh_s, query=ctx.view.query()
    )
