"""Inline SVG charts drawn in Python: no JavaScript library, every bar carries its exact figure.

Each bar is a ``<rect>`` with ``data-value`` (the exact Decimal), ``data-key`` and ``data-day``, and a
``<title>`` a browser shows on hover, so the chart can be read, tested and printed offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Final

from otel_llm_cost.ui.fmt import attr, esc, money_text

__all__ = ["PALETTE", "Bar", "Series", "horizontal_bars", "stacked_days"]

# Colour-blind-safe qualitative palette (Okabe-Ito), then grey for "other".
PALETTE: Final = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999")
_W: Final = 880
_H: Final = 260
_LEFT: Final = 80
_BOTTOM: Final = 28
_TOP: Final = 10


@dataclass(frozen=True, slots=True)
class Series:
    """One stacked layer: a label and its spend per day (None: nothing priced that day)."""

    label: str
    values: dict[date, Decimal]


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: Decimal | None
    href: str | None = None


def _nice_max(value: Decimal) -> Decimal:
    """A round axis maximum at or above ``value``: 1, 2 or 5 times a power of ten."""
    if value <= 0:
        return Decimal(1)
    exponent = value.adjusted()
    for step in (1, 2, 5, 10):
        candidate = Decimal(step).scaleb(exponent)
        if candidate >= value:
            return candidate
    return Decimal(10).scaleb(exponent)


def _axis_label(value: Decimal, top: Decimal) -> str:
    # Enough places to tell the quarter steps apart, at least cents.
    places = max(2, min(6, 1 - (top / 4).adjusted()))
    return f"${value:,.{places}f}"


def stacked_days(days: Sequence[date], series: Sequence[Series], *, title: str) -> str:
    """A stacked bar per day; the layers in the order given, bottom up."""
    totals = [sum((s.values.get(d, Decimal(0)) for s in series), Decimal(0)) for d in days]
    top = _nice_max(max(totals, default=Decimal(0)))
    plot_w, plot_h = _W - _LEFT - 10, _H - _BOTTOM - _TOP
    slot = plot_w / max(len(days), 1)
    width = max(1.0, slot * 0.8)
    parts = [
        f'<svg class="chart" viewBox="0 0 {_W} {_H + 30}" role="img" aria-label={attr(title)} '
        f'xmlns="http://www.w3.org/2000/svg">'
    ]
    for i in range(5):
        value = top * i / 4
        y = _TOP + plot_h - plot_h * i / 4
        parts.append(f'<line class="grid" x1="{_LEFT}" x2="{_W - 10}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="axis" x="{_LEFT - 6}" y="{y + 4:.1f}"'
            f' text-anchor="end">{_axis_label(value, top)}</text>'
        )
    label_every = max(1, len(days) // 10)
    for index, day in enumerate(days):
        x = _LEFT + slot * index + (slot - width) / 2
        y = _TOP + plot_h
        for layer, s in enumerate(series):
            amount = s.values.get(day)
            if not amount:
                continue
            height = float(amount / top) * plot_h
            y -= height
            colour = PALETTE[min(layer, len(PALETTE) - 1)]
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.2f}" width="{width:.1f}" height="{height:.2f}" '
                f'fill="{colour}" data-day="{day.isoformat()}" data-key={attr(s.label)} '
                f'data-value="{amount}">'
                f"<title>{day.isoformat()} {esc(s.label)}: {money_text(amount)}</title></rect>"
            )
        if index % label_every == 0:
            parts.append(
                f'<text class="axis" x="{x + width / 2:.1f}" y="{_TOP + plot_h + 16}" text-anchor="middle">'
                f"{day.strftime('%b %d')}</text>"
            )
    legend_x, legend_y = _LEFT, _H + 12
    for layer, s in enumerate(series):
        colour = PALETTE[min(layer, len(PALETTE) - 1)]
        label = s.label if len(s.label) <= 28 else s.label[:27] + "…"
        step = 20 + 7 * len(label)
        if legend_x + step > _W and legend_x > _LEFT:
            legend_x, legend_y = _LEFT, legend_y + 18
        parts.append(f'<rect x="{legend_x}" y="{legend_y}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text class="legend" x="{legend_x + 14}" y="{legend_y + 9}">{esc(label)}</text>')
        legend_x += step
    parts[0] = parts[0].replace(f'viewBox="0 0 {_W} {_H + 30}"', f'viewBox="0 0 {_W} {legend_y + 18}"')
    parts.append("</svg>")
    return "".join(parts)


def horizontal_bars(bars: Sequence[Bar], *, title: str) -> str:
    """One bar per group, longest first as given; unpriced groups are drawn as a hatched stub."""
    known = [b.value for b in bars if b.value is not None]
    top = max(known, default=Decimal(0)) or Decimal(1)
    row, label_w, width = 24, 170, 260
    height = row * len(bars) + 8
    parts = [
        f'<svg class="chart hbars" viewBox="0 0 {label_w + width + 120} {height}" role="img" '
        f'aria-label={attr(title)} xmlns="http://www.w3.org/2000/svg">'
    ]
    for index, bar in enumerate(bars):
        y = 4 + index * row
        label = bar.label if len(bar.label) <= 30 else bar.label[:29] + "…"
        parts.append(
            f'<text class="axis" x="{label_w - 8}" y="{y + 15}" text-anchor="end">{esc(label)}</text>'
        )
        if bar.value is None:
            parts.append(
                f'<rect class="bar unpriced" x="{label_w}" y="{y + 3}" width="6" height="16" '
                f'data-key={attr(bar.label)} data-value=""><title>{esc(bar.label)}: unpriced</title></rect>'
            )
            parts.append(f'<text class="axis" x="{label_w + 12}" y="{y + 15}">unpriced</text>')
            continue
        length = float(bar.value / top) * width
        parts.append(
            f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{max(length, 1):.1f}" height="16" '
            f'fill="{PALETTE[0]}" data-key={attr(bar.label)} data-value="{bar.value}">'
            f"<title>{esc(bar.label)}: {money_text(bar.value)}</title></rect>"
        )
        parts.append(
            f'<text class="axis" x="{label_w + length + 6:.1f}" y="{y + 15}">{money_text(bar.value)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
