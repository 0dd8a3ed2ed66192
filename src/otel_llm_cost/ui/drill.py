"""Drill-down pages: a workflow's steps as a timeline, a session's calls, a user's days, one call in full."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from urllib.parse import quote

from otel_llm_cost.exceptions import OtelLLMCostError
from otel_llm_cost.query.explore_results import CallDetail
from otel_llm_cost.query.results import CallRow
from otel_llm_cost.ui.context import PageContext
from otel_llm_cost.ui.fmt import count, esc, key_label, money, when
from otel_llm_cost.ui.layout import page, table
from otel_llm_cost.ui.params import BadRequest

__all__ = ["render_call", "render_session", "render_user", "render_workflow"]

CALL_LIMIT = 500


def _call_link(ctx: PageContext, span_id: str) -> str:
    href = ctx.link("/call/" + quote(span_id, safe=""), ctx.view.query())
    return f'<a class="mono" href="{esc(href)}">{esc(span_id)}</a>'


def calls_table(ctx: PageContext, calls: Sequence[CallRow], *, first: str = "started") -> str:
    zone = ctx.view.zone
    rows = [
        [
            esc(c.step or "") if first == "step" else when(c.start_time, zone),
            esc(key_label(c.model)),
            esc(key_label(c.feature)),
            count(c.input_tokens),
            count(c.output_tokens),
            count(c.cache_read_tokens),
            f"{c.latency_ms or 0:,.0f} ms",
            money(c.cost_usd) + (f' <span class="note">{esc(c.cost_reason)}</span>' if c.cost_reason else ""),
            _call_link(ctx, c.span_id),
        ]
        for c in calls
    ]
    headers = [
        (first, "text"),
        ("model", "text"),
        ("feature", "text"),
        ("input", "num"),
        ("output", "num"),
        ("cache read", "num"),
        ("latency", "num"),
        ("cost", "num"),
        ("call", "text"),
    ]
    return table(headers, rows, cls="data calls")


def _timeline(steps: Sequence[CallRow], origin: datetime, span_s: float) -> str:
    lines = []
    for c in steps:
        offset = (c.start_time - origin).total_seconds()
        length = (c.latency_ms or 0) / 1000
        left, width = 100 * offset / span_s, max(100 * length / span_s, 0.3)
        lines.append(
            f'<div class="step" data-span="{esc(c.span_id)}"><div>{esc(c.step or key_label(c.model))}</div>'
            f'<div class="track"><span style="left:{left:.2f}%;width:{width:.2f}%" '
            f'title="+{offset:.2f}s, {length:.2f}s"></span></div><div'
            f' class="num">{money(c.cost_usd)}</div></div>'
        )
    return '<div class="timeline">' + "".join(lines) + "</div>"


def render_workflow(ctx: PageContext, workflow_id: str) -> str:
    totals = ctx.store.workflow_totals(workflow_id)
    steps = ctx.store.steps_for_workflow(workflow_id)
    if totals.step_count == 0:
        raise BadRequest(f"no calls recorded for workflow {workflow_id!r}")
    origin = totals.started_at or steps[0].start_time
    end = totals.ended_at or origin
    span_s = max((end - origin).total_seconds(), 0.001)
    facts = [
        (
            "Cost",
            money(
                totals.cost_usd if totals.cost_usd is not None else totals.known_cost_usd,
                totals.unpriced_steps,
            ),
        ),
        ("Steps", count(totals.step_count)),
        ("Tokens", count(totals.total_tokens)),
        ("Started", when(totals.started_at, ctx.view.zone)),
        ("Duration", f"{span_s:,.2f} s"),
        ("Label", esc(steps[0].workflow_label or "")),
    ]
    body = (
        _facts(facts)
        + f'<section class="panel"><h2>Steps on a timeline</h2>{_timeline(steps, origin, span_s)}</section>'
        f'<section class="panel"><h2>Steps</h2>{calls_table(ctx, steps, first="step")}</section>'
    )
    return page(f"Workflow {workflow_id}", "", body, ctx.shell, query=ctx.view.query())


def _facts(facts: Sequence[tuple[str, str]]) -> str:
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card" data-card="{esc(label.lower())}"><div class="label">{esc(label)}</div>'
            f'<div class="value">{value}</div></div>'
            for label, value in facts
        )
        + "</div>"
    )


def render_session(ctx: PageContext, session_id: str) -> str:
    summary = ctx.store.session_summary(session_id)
    if summary.totals.call_count == 0:
        raise BadRequest(f"no calls recorded for session {session_id!r}")
    calls = ctx.store.calls(filters={"session": session_id}, limit=CALL_LIMIT)
    totals = summary.totals
    facts = [
        ("Cost", money(totals.cost_usd, totals.unpriced_calls)),
        ("Calls", count(totals.call_count)),
        ("Tokens", count(totals.total_tokens)),
        ("Started", when(summary.started_at, ctx.view.zone)),
        ("Duration", f"{summary.duration.total_seconds():,.1f} s"),
    ]
    body = (
        _facts(facts)
        + f'<section class="panel"><h2>Calls, newest first</h2>{calls_table(ctx, calls)}</section>'
    )
    return page(f"Session {session_id}", "", body, ctx.shell, query=ctx.view.query())


def render_user(ctx: PageContext, user: str) -> str:
    user_id = ctx.hash_user(user)
    view = ctx.view
    only = {"user": user_id}
    days = ctx.store.daily_cost_where(view.start, view.end, view.zone.key, only)
    models = ctx.store.breakdown("model", view.start, view.end, only)
    calls = ctx.store.calls(view.start, view.end, filters=only, limit=50)
    day_rows = [
        [
            d.day.isoformat(),
            money(d.total_cost_usd, d.unpriced_calls),
            count(d.call_count),
            count(d.total_tokens),
        ]
        for d in days
    ]
    total = sum((d.total_cost_usd for d in days if d.total_cost_usd is not None), Decimal(0))
    foot = [
        "Total",
        money(total, sum(d.unpriced_calls for d in days)),
        count(sum(d.call_count for d in days)),
        count(sum(d.total_tokens for d in days)),
    ]
    model_rows = [
        [esc(key_label(m.key)), money(m.total_cost_usd, m.unpriced_calls), count(m.call_count)]
        for m in models
    ]
    who = ctx.key_html("user", user_id) if user_id in ctx.user_labels else "this"
    body = (
        f'<p class="note">User ids are stored as keyed hashes; {who} is {esc(user_id)}. '
        f"Window {view.first_day} to {view.last_day} ({esc(view.zone.key)}).</p>"
        '<div class="split"><section class="panel"><h2>Days</h2>'
        + table(
            [("day", "text"), ("cost", "num"), ("calls", "num"), ("tokens", "num")],
            day_rows,
            cls="data days",
            foot=foot,
        )
        + '</section><section class="panel"><h2>By model</h2>'
        + table([("model", "text"), ("cost", "num"), ("calls", "num")], model_rows, cls="data models")
        + f'</section></div><section class="panel"><h2>Latest calls</h2>{calls_table(ctx, calls)}</section>'
    )
    return page(f"User {ctx.key_text('user', user_id)}", "", body, ctx.shell, query=view.query())


def _price_in_force(ctx: PageContext, call: CallDetail) -> str:
    model = call.upstream_model or call.model
    if model is None or call.cost_status != "priced":
        return "-"
    try:
        prices = ctx.pricebook().unit_prices(model, call.provider, at=call.start_time)
    except OtelLLMCostError:
        return "no price in the current price book"
    since = prices.valid_from.isoformat() if prices.valid_from else "the earliest known price"
    until = prices.valid_until.isoformat() if prices.valid_until else "now"
    return (
        f"{esc(prices.source)}: in force from {since} until {until}; per 1M tokens input "
        f"${prices.input_mtok}, cache read ${prices.cache_read_mtok}, output ${prices.output_mtok}"
    )


def _call_links(ctx: PageContext, call: CallDetail) -> str:
    links = []
    for label, value, path in (
        ("session", call.session_id, "/session/"),
        ("workflow", call.workflow_id, "/workflow/"),
        ("user", call.user_id, "/user/"),
    ):
        if value:
            links.append(
                f'<a href="{esc(ctx.link(path + quote(value, safe=""), ctx.view.query()))}">'
                f"{label} {ctx.key_html(label, value)}</a>"
            )
    return " · ".join(links)


def _attribution(call: CallDetail) -> str:
    named = (("feature", call.feature), ("agent", call.agent), ("org", call.org_id), ("step", call.step))
    pairs = [f"{k}={v}" for k, v in named if v] + [f"{k}={v}" for k, v in (call.tags or {}).items()]
    return esc(", ".join(pairs))


def _call_facts(ctx: PageContext, call: CallDetail) -> list[tuple[str, str]]:
    duplicate = f" (duplicate of {esc(call.duplicate_of)})" if call.duplicate_of else ""
    return [
        ("status", esc(call.cost_status)),
        ("unpriced because", esc(call.cost_reason or "-")),
        ("price source", esc(call.price_source or "-")),
        ("price in force", _price_in_force(ctx, call)),
        (
            "model",
            f"{esc(call.model)} (requested {esc(call.request_model)}, price entry"
            f" {esc(call.upstream_model)})",
        ),
        ("provider", esc(call.provider)),
        ("started", when(call.start_time, ctx.view.zone)),
        ("latency", f"{call.latency_ms or 0:,.0f} ms"),
        ("input tokens", count(call.input_tokens)),
        ("output tokens", f"{count(call.output_tokens)} (reasoning {call.reasoning_tokens or 0:,})"),
        ("cache read tokens", count(call.cache_read_tokens)),
        ("cache write tokens", count(call.cache_write_tokens)),
        ("cache saved", money(call.cache_saved_usd)),
        ("trace id", f'<span class="mono">{esc(call.trace_id)}</span>'),
        ("span id", f'<span class="mono">{esc(call.span_id)}</span>'),
        ("billable", esc(call.billable) + duplicate),
        ("attribution", _attribution(call)),
        ("service", esc(call.service_name)),
    ]


def render_call(ctx: PageContext, span_id: str) -> str:
    call = ctx.store.call_detail(span_id)
    if call is None:
        raise BadRequest(f"no call recorded with span id {span_id!r}")
    cost_rows = [
        ["input (uncached)", money(call.input_cost_usd)],
        ["cache read", money(call.cache_read_cost_usd)],
        ["cache write", money(call.cache_write_cost_usd)],
        ["output", money(call.output_cost_usd)],
        ["request", money(call.request_cost_usd)],
    ]
    facts = _call_facts(ctx, call)
    kv = (
        '<dl class="kv">'
        + "".join(f'<dt>{esc(k)}</dt><dd data-field="{esc(k)}">{v}</dd>' for k, v in facts)
        + "</dl>"
    )
    parts = table(
        [("part", "text"), ("cost", "num")],
        cost_rows,
        cls="data cost-parts",
        foot=["Total", money(call.cost_usd)],
    )
    body = (
        f'<p class="links">{_call_links(ctx, call)}</p>'
        f'<div class="split"><section class="panel"><h2>Cost</h2>{parts}</section>'
        f'<section class="panel"><h2>Details</h2>{kv}</section></div>'
    )
    return page(f"Call {span_id}", "", body, ctx.shell, query=ctx.view.query())
