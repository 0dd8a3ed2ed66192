"""How the dashboard writes numbers: money to the millionth of a dollar, counts with separators, escaped text.

Every figure is written as a ``<span>`` whose ``data-value`` holds the exact value the query API
returned (the full Decimal), so a reader can check any figure and the tests compare the page with
``CostStore`` exactly. Money is shown with six decimals everywhere: LLM calls cost fractions of a cent,
and with one precision for all parts and totals a column visibly adds up. Unknown spend reads
"unpriced", never $0.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Final
from zoneinfo import ZoneInfo

__all__ = [
    "MONEY_PLACES",
    "attr",
    "count",
    "esc",
    "key_label",
    "money",
    "money_text",
    "pct",
    "user_html",
    "when",
]

MONEY_PLACES: Final = 6
_QUANTUM: Final = Decimal(1).scaleb(-MONEY_PLACES)
NONE_LABEL: Final = "(none)"


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def attr(value: object) -> str:
    """An attribute value, quoted."""
    return f'"{esc(value)}"'


def money_text(value: Decimal | None) -> str:
    """``$1,234.567891``, or ``unpriced`` for None (never $0)."""
    if value is None:
        return "unpriced"
    return f"${value.quantize(_QUANTUM, ROUND_HALF_UP):,.{MONEY_PLACES}f}"


def money(value: Decimal | None, unpriced_calls: int = 0, *, cls: str = "money") -> str:
    """Money as HTML: the figure, its exact value in ``data-value``, and any unpriced calls beside it."""
    if value is None:
        text = f'<span class="{cls} unpriced" data-value="">unpriced</span>'
    else:
        text = f'<span class="{cls}" data-value="{value}" title="${value:f}">{money_text(value)}</span>'
    if unpriced_calls and value is not None:
        hint = "calls with no known price, not in this sum"
        text += f' <span class="badge" title="{hint}">+{unpriced_calls:,} unpriced</span>'
    return text


def count(value: int | None, *, cls: str = "num") -> str:
    if value is None:
        return f'<span class="{cls}" data-value="">-</span>'
    return f'<span class="{cls}" data-value="{value}">{value:,}</span>'


def pct(part: Decimal | int | None, whole: Decimal | int | None) -> str:
    """A share to one decimal place; blank when the whole is zero or unknown."""
    if part is None or not whole:
        return ""
    return f"{Decimal(part) * 100 / Decimal(whole):.1f}%"


def key_label(key: str | None) -> str:
    return NONE_LABEL if key is None else key


def user_html(key: str | None, labels: Mapping[str, str]) -> str:
    """A stored user id as HTML: the operator's label for it (the hash as its tooltip), else the hash."""
    if key is not None and key in labels:
        return f'<span class="user-label" data-user={attr(key)} title={attr(key)}>{esc(labels[key])}</span>'
    return esc(key_label(key))


def when(value: datetime | date | None, zone: ZoneInfo) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
    return value.isoformat()
