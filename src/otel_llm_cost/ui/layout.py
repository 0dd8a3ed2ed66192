"""The page shell: header, navigation, the window and filter bar, refresh controls, and the assets.

Served pages link ``static/dashboard.css`` and ``static/dashboard.js`` (shipped in the wheel); the
self-contained HTML report inlines both instead, so it opens anywhere with nothing beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Final

from otel_llm_cost.query.sql import DIMENSIONS
from otel_llm_cost.ui.fmt import attr, esc, key_label, user_html
from otel_llm_cost.ui.params import View

__all__ = ["NAV", "Shell", "asset_text", "message_page", "page"]

NAV: Final = (
    ("overview", "Overview", "/"),
    ("breakdown", "Breakdown", "/breakdown"),
    ("budgets", "Budgets & alerts", "/budgets"),
    ("prices", "Prices", "/prices"),
)


def asset_text(name: str) -> str:
    return resources.files("otel_llm_cost.ui").joinpath("static", name).read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class Shell:
    """How a page reaches its assets and links: ``base`` is the mount path ('' or '/ui')."""

    base: str = ""
    inline_assets: bool = False
    source: str = ""

    def head(self, title: str) -> str:
        if self.inline_assets:
            assets = (
                f"<style>{asset_text('dashboard.css')}</style><script>{asset_text('dashboard.js')}</script>"
            )
        else:
            assets = (
                f'<link rel="stylesheet" href="{self.base}/static/dashboard.css">'
                f'<script src="{self.base}/static/dashboard.js" defer></script>'
            )
        return (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            # No favicon request: the pages fetch nothing but their own two assets.
            '<link rel="icon" href="data:,">'
            f"<title>{esc(title)} · otel-llm-cost</title>{assets}</head>"
        )


def _dimension_options(selected: str) -> str:
    names = [*DIMENSIONS]
    if selected not in names:
        names.append(selected)
    return "".join(
        f"<option value={attr(n)}{' selected' if n == selected else ''}>{esc(n)}</option>" for n in names
    )


def window_bar(
    view: View, shell: Shell, action: str, *, with_dim: bool, user_labels: Mapping[str, str] | None = None
) -> str:
    """The form that sets window, zone and dimension (a GET form: the choices land in the URL)."""
    hidden = "".join(
        f'<input type="hidden" name="f" value={attr(n + "=" + (v or ""))}>' for n, v in view.filters
    )
    dim = (
        f'<label>Dimension <select name="dim">{_dimension_options(view.dim)}</select></label>'
        f'<label>or tag <input name="tag" placeholder="tag:team" size="9"></label>'
        if with_dim
        else f'<label>Stack by <select name="by">{_dimension_options(view.by)}</select></label>'
    )
    keep = (
        f'<input type="hidden" name="by" value={attr(view.by)}>'
        if with_dim
        else f'<input type="hidden" name="dim" value={attr(view.dim)}>'
    )
    chips = "".join(
        f'<a class="chip" href="{shell.base}{action}?{esc(view.without_filter(n))}" title="remove'
        ' this filter">'
        f"{esc(n)} = {user_html(v, user_labels or {}) if n == 'user' else esc(key_label(v))} ✕</a>"
        for n, v in view.filters
    )
    return (
        f'<form class="bar" method="get" action="{shell.base}{action}">'
        f'<label>From <input type="date" name="from" value="{view.first_day.isoformat()}"></label>'
        f'<label>To <input type="date" name="to" value="{view.last_day.isoformat()}"></label>'
        f'<label>Zone <input name="tz" value={attr(view.zone.key)} size="14"></label>'
        f"{dim}{keep}{hidden}"
        f'<label>Filter <input name="f" placeholder="feature=search" size="16"></label>'
        f'<label>Auto-refresh <select name="refresh">'
        + "".join(
            f'<option value="{s}"{" selected" if s == view.refresh_s else ""}>{label}</option>'
            for s, label in ((0, "off"), (10, "10 s"), (30, "30 s"), (60, "1 min"), (300, "5 min"))
        )
        + '</select></label><button type="submit">Apply</button>'
        '<button type="button" class="secondary" data-action="refresh">Refresh now</button>'
        f'</form><div class="chips">{chips}</div>'
    )


def page(title: str, active: str, body: str, shell: Shell, *, refresh_s: int = 0, query: str = "") -> str:
    """A whole HTML page around ``body``."""
    suffix = f"?{esc(query)}" if query else ""
    nav = "".join(
        f'<a href="{shell.base}{path}{suffix}"{" class=active" if key == active else ""}>{label}</a>'
        for key, label, path in NAV
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        f'{shell.head(title)}<body data-refresh="{refresh_s}">'
        f'<header><div class="brand">otel-llm-cost</div><nav>{nav}</nav>'
        f'<div class="meta">{esc(shell.source)} · read-only · as of {stamp}</div></header>'
        f"<main><h1>{esc(title)}</h1>{body}</main></body></html>"
    )


def message_page(title: str, message: str, shell: Shell) -> str:
    """A clear message instead of a page (bad URL input, a query cut off)."""
    return page(
        title,
        "",
        f'<div class="message" role="alert"><p>{esc(message)}</p>'
        f'<p><a href="{shell.base}/">Back to the overview</a></p></div>',
        shell,
    )


def table(
    headers: list[tuple[str, str]], rows: list[list[str]], *, cls: str = "data", foot: list[str] | None = None
) -> str:
    """A sortable table: headers are (label, kind) with kind 'text' or 'num' (right-aligned)."""
    head = "".join(f'<th class="{kind}" data-sort="{kind}">{esc(label)}</th>' for label, kind in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="{headers[i][1]}">{cell}</td>' for i, cell in enumerate(row)) + "</tr>"
        for row in rows
    )
    tfoot = ""
    if foot is not None:
        tfoot = (
            "<tfoot><tr>"
            + "".join(f'<td class="{headers[i][1]}">{cell}</td>' for i, cell in enumerate(foot))
            + "</tr></tfoot>"
        )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody>{tfoot}</table>'
