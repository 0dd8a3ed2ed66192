"""The Prices page: what we would charge for a model and a usage, and which price layer says so."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Final

from otel_llm_cost.conventions.usage import Usage
from otel_llm_cost.exceptions import OtelLLMCostError
from otel_llm_cost.ui.context import PageContext
from otel_llm_cost.ui.fmt import attr, esc, key_label, money
from otel_llm_cost.ui.layout import page, table
from otel_llm_cost.ui.params import BadRequest

__all__ = ["render_prices"]

_TOKEN_FIELDS: Final = (
    ("input", "input tokens (all, cache included)"),
    ("cache_read", "of which cache reads"),
    ("cache_write", "of which cache writes"),
    ("output", "output tokens"),
)
_MAX_TOKENS: Final = 10**12


def _tokens(params: dict[str, str], name: str) -> int:
    text = params.get(name, "") or "0"
    try:
        value = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise BadRequest(f"{name}={text!r} is not a whole number of tokens") from None
    if not 0 <= value <= _MAX_TOKENS:
        raise BadRequest(f"{name} must be between 0 and {_MAX_TOKENS:,}")
    return value


def _form(ctx: PageContext, model: str, provider: str, at: str, counts: dict[str, int]) -> str:
    inputs = "".join(
        f'<label>{esc(label)} <input name="{name}" value="{counts[name]}" size="10"'
        ' inputmode="numeric"></label>'
        for name, label in _TOKEN_FIELDS
    )
    return (
        f'<form class="bar" method="get" action="{ctx.shell.base}/prices">'
        f'<label>Model <input name="model" value={attr(model)} placeholder="gpt-4o" size="26"></label>'
        f'<label>Provider <input name="provider" value={attr(provider)} placeholder="openai"'
        ' size="10"></label>'
        f'<label>At (UTC day) <input type="date" name="at" value={attr(at)}></label>{inputs}'
        '<button type="submit">Price it</button></form>'
    )


def _quote(ctx: PageContext, model: str, provider: str, at: str, counts: dict[str, int]) -> str:
    if counts["cache_read"] + counts["cache_write"] > counts["input"]:
        raise BadRequest(
            "cache reads and writes are part of the input tokens: input must be at least their sum"
        )
    try:
        moment = (
            datetime.combine(datetime.fromisoformat(at).date(), time(12), UTC) if at else datetime.now(UTC)
        )
    except ValueError:
        raise BadRequest(f"at={at!r} is not a date; use YYYY-MM-DD") from None
    usage = Usage(
        input_tokens=counts["input"],
        output_tokens=counts["output"],
        cache_read_tokens=counts["cache_read"],
        cache_write_tokens=counts["cache_write"],
        request_model=model,
        provider=provider or None,
    )
    book = ctx.pricebook()
    cost = book.compute_cost(usage, at=moment)
    rows = [
        ["input (uncached)", money(cost.input_usd)],
        ["cache read", money(cost.cache_read_usd)],
        ["cache write", money(cost.cache_write_usd)],
        ["output", money(cost.output_usd)],
        ["request", money(cost.request_usd)],
    ]
    breakdown = table(
        [("part", "text"), ("cost", "num")], rows, cls="data quote", foot=["Total", money(cost.total_usd)]
    )
    facts = (
        f"<p>Status <b>{esc(cost.status.value)}</b>; price layer <b>{esc(cost.source or '-')}</b>; "
        f"matched {esc(key_label(cost.model_id))} ({esc(key_label(cost.provider_id))})"
    )
    if cost.reason:
        facts += f"; unpriced because: <b>{esc(cost.reason)}</b>"
    facts += ".</p>"
    try:
        unit = book.unit_prices(model, provider or None, at=moment)
    except OtelLLMCostError:
        return facts + breakdown
    since = unit.valid_from.isoformat() if unit.valid_from else "the earliest known price"
    until = unit.valid_until.isoformat() if unit.valid_until else "now"
    rates = table(
        [("per 1M tokens", "text"), ("USD", "num")],
        [
            ["input", f"${unit.input_mtok}"],
            ["cache read", f"${unit.cache_read_mtok}"],
            ["cache write (5 min)", f"${unit.cache_write_5m_mtok}"],
            ["cache write (1 h)", f"${unit.cache_write_1h_mtok}"],
            ["output", f"${unit.output_mtok}"],
            ["per request", f"${unit.request_usd}"],
        ],
        cls="data rates",
    )
    return (
        facts + f'<div class="split"><div>{breakdown}</div><div>{rates}'
        f'<p class="note">In force from {since} until {until}; source {esc(unit.source)}.</p></div></div>'
    )


def render_prices(ctx: PageContext) -> str:
    params = ctx.params
    model = params.get("model", "").strip()
    provider = params.get("provider", "").strip()
    at = params.get("at", "").strip()
    counts = {name: _tokens(params, name) for name, _ in _TOKEN_FIELDS}
    if not any(counts.values()):
        counts = {"input": 1_000_000, "cache_read": 0, "cache_write": 0, "output": 1_000_000}
    result = (
        f'<section class="panel"><h2>{esc(model)}</h2>{_quote(ctx, model, provider, at, counts)}</section>'
        if model
        else '<p class="note">Enter a model id as spans carry it (dated, Bedrock, Vertex,'
        " provider/model...).</p>"
    )
    book = ctx.pricebook()
    body = (
        _form(ctx, model, provider, at, counts)
        + f'<p class="note">Prices: {esc(book.data_source)}'
        + (f", user price file {esc(book.price_file)}" if book.price_file else "")
        + ".</p>"
        + result
    )
    return page("Prices", "prices", body, ctx.shell, query=ctx.view.query())
