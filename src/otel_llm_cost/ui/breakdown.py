"""The Breakdown page: spend by any dimension under any filters, a chart beside a sortable table, and
the same rows as CSV or Parquet."""

from __future__ import annotations

import io
from collections.abc import Sequence
from decimal import Decimal
from typing import Final
from urllib.parse import quote

from otel_llm_cost.query.results import CostRow
from otel_llm_cost.query.tabular import Rows
from otel_llm_cost.ui.charts import Bar, horizontal_bars
from otel_llm_cost.ui.context import PageContext
from otel_llm_cost.ui.fmt import count, esc, money, pct
from otel_llm_cost.ui.layout import page, table, window_bar

__all__ = ["MAX_ROWS", "breakdown_rows", "download", "render_breakdown"]

MAX_ROWS: Final = 500
"""Groups a page shows (and a download holds), highest spend first; the page says when more exist."""
_CHART_BARS: Final = 20
# Dimensions with their own drill-down page.
_DRILL: Final = {"workflow": "/workflow/", "session": "/session/", "user": "/user/"}


def breakdown_rows(ctx: PageContext) -> tuple[Rows[CostRow], bool]:
    """The rows the page shows and whether more groups exist beyond :data:`MAX_ROWS`."""
    view = ctx.view
    rows = ctx.store.breakdown(view.dim, view.start, view.end, view.filter_map, limit=MAX_ROWS + 1)
    return rows, len(rows) > MAX_ROWS


def _key_cell(ctx: PageContext, key: str | None) -> str:
    view = ctx.view
    label = ctx.key_html(view.dim, key)
    next_dim = "feature" if view.dim == "model" else "model"
    kept = tuple((n, v) for n, v in view.filters if n != view.dim)
    narrow = ctx.link("/breakdown", view.query(filters=(*kept, (view.dim, key)), dim=next_dim))
    hint = f"filter on this {esc(view.dim)}, break down by {next_dim}"
    cell = f'<a href="{esc(narrow)}" title="{hint}">{label}</a>'
    if key is not None and view.dim in _DRILL:
        details = ctx.link(_DRILL[view.dim] + quote(key, safe=""), view.query())
        cell += f' <a class="note" href="{esc(details)}">details</a>'
    return cell


def _table(ctx: PageContext, rows: Sequence[CostRow]) -> str:
    known = sum((r.total_cost_usd for r in rows if r.total_cost_usd is not None), Decimal(0))
    body = [
        [
            _key_cell(ctx, r.key),
            money(r.total_cost_usd),
            pct(r.total_cost_usd, known),
            count(r.call_count),
            count(r.unpriced_calls),
            count(r.total_tokens),
        ]
        for r in rows
    ]
    foot = [
        "Total shown",
        money(known, sum(r.unpriced_calls for r in rows)),
        "100.0%" if known else "",
        count(sum(r.call_count for r in rows)),
        count(sum(r.unpriced_calls for r in rows)),
        count(sum(r.total_tokens for r in rows)),
    ]
    headers = [
        (ctx.view.dim, "text"),
        ("cost", "num"),
        ("share", "num"),
        ("calls", "num"),
        ("unpriced calls", "num"),
        ("tokens", "num"),
    ]
    return table(headers, body, cls="data breakdown", foot=foot)


def render_breakdown(ctx: PageContext) -> str:
    view = ctx.view
    rows, more = breakdown_rows(ctx)
    shown = list(rows)[:MAX_ROWS]
    chart = horizontal_bars(
        [Bar(ctx.key_text(view.dim, r.key), r.total_cost_usd) for r in shown[:_CHART_BARS]],
        title=f"Spend by {view.dim}",
    )
    more_note = (
        f'<p class="note">Showing the {MAX_ROWS} groups with the highest spend; narrow the filters'
        " for the rest.</p>"
        if more
        else ""
    )
    downloads = (
        '<p class="downloads">Download what is shown: '
        f'<a href="{esc(ctx.link("/breakdown.csv", view.query()))}" download>CSV</a>'
        f'<a href="{esc(ctx.link("/breakdown.parquet", view.query()))}" download>Parquet</a></p>'
    )
    body = (
        window_bar(view, ctx.shell, "/breakdown", with_dim=True, user_labels=ctx.user_labels)
        + f'<div class="split"><section class="panel"><h2>Top {min(len(shown), _CHART_BARS)} by'
        f" spend</h2>{chart}</section>"
        '<section class="panel"><h2>Spend by'
        f" {esc(view.dim)}</h2>{downloads}{more_note}{_table(ctx, shown)}</section></div>"
    )
    return page(
        f"Breakdown by {view.dim}", "breakdown", body, ctx.shell, refresh_s=view.refresh_s, query=view.query()
    )


def download(ctx: PageContext, kind: str) -> tuple[bytes, str]:
    """The shown rows as CSV or Parquet bytes, with their media type (the API's columns and types)."""
    import pyarrow.csv as pa_csv  # noqa: PLC0415 - pyarrow loads on first download
    import pyarrow.parquet as pq  # noqa: PLC0415

    rows, more = breakdown_rows(ctx)
    table_ = rows.arrow()
    if more:
        table_ = table_.slice(0, MAX_ROWS)
    sink = io.BytesIO()
    if kind == "csv":
        pa_csv.write_csv(table_, sink)
        return sink.getvalue(), "text/csv; charset=utf-8"
    pq.write_table(table_, sink)
    return sink.getvalue(), "application/vnd.apache.parquet"
