"""Text for people: money, counts, percentages, durations, aligned tables and sparklines.

The formatting every report shares, at the bottom of the query package so that result types (a session
prints itself) and the report renderers can both use it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import IO

__all__ = [
    "format_duration",
    "format_int",
    "format_pct",
    "format_usd",
    "is_tty",
    "render_table",
    "sparkline",
    "terminal_width",
    "usd_places",
    "use_color",
]

_BARS = "▁▂▃▄▅▆▇█"
_CENT = Decimal("0.01")
_MIN_PLACES = 2
_MAX_PLACES = 6


def is_tty(stream: IO[str]) -> bool:
    """True when ``stream`` is an interactive terminal."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):  # closed or detached stream
        return False


def usd_places(values: Iterable[Decimal | None]) -> int:
    """The one number of decimal places for every amount of an output: enough that each non-zero amount
    shows two significant digits, or all its digits if fewer (so parts visibly add up to their
    total), from 2 (cents) to 6.

    Example: ``usd_places([Decimal("3.36"), Decimal("0.000026")])`` is 6: ``$3.360000``, ``$0.000026``.
    """
    places = _MIN_PLACES
    for value in values:
        if value:
            exact = -int(value.normalize().as_tuple().exponent)  # $0.02 needs 2, not $0.020
            places = max(places, min(_MAX_PLACES, 1 - value.adjusted(), exact))
    return places


def format_usd(value: Decimal | None, unpriced_calls: int = 0, places: int | None = None) -> str:
    """Money for people, with ``places`` decimals (one :func:`usd_places` per output).

    Without ``places``: cents from $0.01 up, six places below (LLM calls often cost fractions of a
    cent). ``None`` reads ``unpriced``; a partial sum says how many calls it leaves out.
    """
    if value is None:
        text = "unpriced"
    elif places is not None:
        text = f"${value.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP):,}"
    elif value == 0 or abs(value) >= _CENT:
        text = f"${value.quantize(_CENT, ROUND_HALF_UP):,}"
    else:
        text = f"${value.quantize(Decimal('0.000001'), ROUND_HALF_UP):f}"
    if unpriced_calls and value is not None:
        text += f" (+{unpriced_calls:,} unpriced)"
    return text


def format_int(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def format_pct(value: float) -> str:
    """A share or rate as a percentage; a non-zero share too small for one decimal reads ``<0.1%``."""
    if 0 < value < 0.0005:
        return "<0.1%"
    return f"{value * 100:.1f}%"


def format_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


_MIN_CUT_WIDTH = 8


def _fit(widths: list[int], alignment: str, headers: Sequence[str], max_width: int) -> list[int]:
    """Column widths that fit ``max_width``, narrowing the widest left-aligned column one step at a time."""
    fitted = list(widths)
    while sum(fitted) + 2 * (len(fitted) - 1) > max_width:
        text_columns = [i for i, a in enumerate(alignment) if a == "l" and fitted[i] > _MIN_CUT_WIDTH]
        if not text_columns:
            break  # nothing left to cut: the terminal wraps what remains
        widest = max(text_columns, key=lambda i: fitted[i])
        fitted[widest] -= 1
    return fitted


def _cut(cell: str, width: int) -> str:
    return cell if len(cell) <= width else cell[: width - 1] + "…"


def terminal_width(stream: IO[str]) -> int | None:
    """The width tables must fit: the terminal's (or ``COLUMNS``) for a TTY, None (no limit) for a pipe."""
    if not is_tty(stream) and "COLUMNS" not in os.environ:
        return None
    return shutil.get_terminal_size().columns


def use_color(stream: IO[str]) -> bool:
    """Bold headers and box-drawing only on a TTY, and never when ``NO_COLOR`` is set (no-color.org)."""
    return is_tty(stream) and not os.environ.get("NO_COLOR")


def sparkline(values: Sequence[Decimal | float | int | None]) -> str:
    """One block character per value, scaled to the largest (``None`` and 0 are the lowest bar)."""
    numbers = [float(v) if v is not None else 0.0 for v in values]
    top = max(numbers, default=0.0)
    if top <= 0:
        return _BARS[0] * len(numbers)
    return "".join(_BARS[min(len(_BARS) - 1, int(v / top * (len(_BARS) - 1) + 0.5))] for v in numbers)


def render_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    align: str | None = None,
    fancy: bool = False,
    max_width: int | None = None,
) -> str:
    """Aligned columns; ``align`` is one letter per column (``l`` or ``r``, default: first left, rest right;
    ``L``: left-aligned and never cut, for ids that are useless when shortened).

    ``fancy`` (for a TTY) draws a box-drawing rule and bold headers; otherwise plain ASCII. With
    ``max_width`` (the terminal's width), the widest left-aligned text columns are cut, with ``…``,
    until the table fits; numbers are never cut.
    """
    body = [list(row) for row in rows]
    alignment = align or "l" + "r" * (len(headers) - 1)
    widths = [len(h) for h in headers]
    for row in body:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    if max_width is not None:
        widths = _fit(widths, alignment, headers, max_width)
        body = [[_cut(cell, widths[i]) for i, cell in enumerate(row)] for row in body]
        headers = [_cut(h, widths[i]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.ljust(widths[i]) if alignment[i] in "lL" else cell.rjust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    header = line(headers)
    rule = "  ".join(("─" if fancy else "-") * w for w in widths)
    if fancy:
        header = f"\033[1m{header}\033[0m"
    return "\n".join([header, rule, *(line(row) for row in body)])
