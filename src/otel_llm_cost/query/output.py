"""Rendering report rows for people and programs: terminal tables, JSON, CSV, sparklines, progress.

Terminal niceties (box-drawing rules, bold headers, a progress line) appear only when the stream is a
TTY; piped output is plain aligned text, so ``| grep`` and ``| column`` keep working.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from otel_llm_cost.query.store import Savings, SessionSummary, WhatIf

__all__ = [
    "Progress",
    "format_duration",
    "format_int",
    "format_pct",
    "format_savings",
    "format_session",
    "format_usd",
    "is_tty",
    "record",
    "render_table",
    "sparkline",
    "to_csv",
    "to_json",
]

_BARS = "▁▂▃▄▅▆▇█"
_CENT = Decimal("0.01")


def is_tty(stream: IO[str]) -> bool:
    """True when ``stream`` is an interactive terminal."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):  # closed or detached stream
        return False


def format_usd(value: Decimal | None, unpriced_calls: int = 0) -> str:
    """Money for people: cents from $0.01 up, six places below (LLM calls often cost fractions of a cent).

    ``None`` reads ``unpriced``; a partial sum says how many calls it leaves out.
    """
    if value is None:
        text = "unpriced"
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
    return f"{value * 100:.1f}%"


def format_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def sparkline(values: Sequence[Decimal | float | int | None]) -> str:
    """One block character per value, scaled to the largest (``None`` and 0 are the lowest bar)."""
    numbers = [float(v) if v is not None else 0.0 for v in values]
    top = max(numbers, default=0.0)
    if top <= 0:
        return _BARS[0] * len(numbers)
    return "".join(_BARS[min(len(_BARS) - 1, int(v / top * (len(_BARS) - 1) + 0.5))] for v in numbers)


def render_table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], *, align: str | None = None, fancy: bool = False
) -> str:
    """Aligned columns; ``align`` is one letter per column (``l`` or ``r``, default: first left, rest right).

    ``fancy`` (for a TTY) draws a box-drawing rule and bold headers; otherwise plain ASCII.
    """
    body = [list(row) for row in rows]
    alignment = align or "l" + "r" * (len(headers) - 1)
    widths = [len(h) for h in headers]
    for row in body:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.ljust(widths[i]) if alignment[i] == "l" else cell.rjust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    header = line(headers)
    rule = "  ".join(("─" if fancy else "-") * w for w in widths)
    if fancy:
        header = f"\033[1m{header}\033[0m"
    return "\n".join([header, rule, *(line(row) for row in body)])


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


def record(obj: Any) -> dict[str, Any]:
    """A result dataclass (or a dict) as a plain dict, without CostStore's internal source field."""
    if isinstance(obj, Mapping):
        return dict(obj)
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if not f.name.startswith("_")}


def to_json(data: Any) -> str:
    """JSON with exact money (Decimal as a string) and ISO-8601 dates."""

    def default(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return record(value)
        if isinstance(value, Sequence) and not isinstance(value, str):
            return list(value)
        converted = _plain(value)
        if converted is value:
            raise TypeError(f"cannot serialise {type(value).__name__}")
        return converted

    return json.dumps(data, default=default, indent=2)


def to_csv(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """RFC 4180 CSV with a header line; money printed exactly."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    for row in rows:
        writer.writerow(["" if v is None else _plain(v) for v in row])
    return buffer.getvalue()


class Progress:
    """A one-line ``label: done/total (pct)`` on stderr, redrawn at most 10 times a second, TTY only.

    Example::

        with Progress("pricing", total=len(rows)) as progress:
            for row in rows:
                ...
                progress.advance()
    """

    def __init__(self, label: str, total: int, stream: IO[str] | None = None) -> None:
        self.label = label
        self.total = max(total, 0)
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = is_tty(self._stream)
        self._last_draw = 0.0

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self._enabled and (now - self._last_draw >= 0.1 or self.done >= self.total):
            self._last_draw = now
            pct = f" ({self.done / self.total:.0%})" if self.total else ""
            self._stream.write(f"\r{self.label}: {self.done:,}/{self.total:,}{pct}")
            self._stream.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._enabled and self._last_draw:
            self._stream.write("\r\033[K")  # erase the progress line before the report prints
            self._stream.flush()


def _breakdown_rows(rows: Iterable[Any]) -> list[list[str]]:
    return [
        [
            row.key or "(none)",
            format_usd(row.total_cost_usd, row.unpriced_calls),
            format_int(row.call_count),
            format_int(row.total_tokens),
        ]
        for row in rows
    ]


def format_session(summary: SessionSummary, style: str, *, fancy: bool = False) -> str:
    """Text for ``SessionSummary.format`` (see there)."""
    totals = summary.totals
    cost = format_usd(totals.cost_usd, totals.unpriced_calls)
    per_call = format_usd(summary.avg_cost_per_call_usd)
    per_1k = format_usd(summary.cost_per_1k_tokens_usd)
    if style == "compact":
        return (
            f"session {summary.session_id}: {cost}, {totals.call_count} calls, "
            f"{totals.total_tokens:,} tokens, {format_duration(summary.duration)}, "
            f"{per_call}/call, {per_1k}/1k tokens"
        )
    if style == "table":
        fields = [
            ("session", summary.session_id),
            ("started", summary.started_at.isoformat() if summary.started_at else ""),
            ("duration", format_duration(summary.duration)),
            ("calls", format_int(totals.call_count)),
            ("unpriced calls", format_int(totals.unpriced_calls)),
            ("cost", cost),
            ("avg cost / call", per_call),
            ("cost / 1k tokens", per_1k),
            ("input tokens", format_int(totals.input_tokens)),
            ("output tokens", format_int(totals.output_tokens)),
            ("cache hit rate", format_pct(totals.cache_hit_rate)),
        ]
        return render_table(["field", "value"], fields, align="ll", fancy=fancy)
    if style != "detailed":
        raise ValueError(f"unknown style {style!r}; use detailed, compact or table")
    lines = [
        f"Session {summary.session_id}",
        f"  started   {summary.started_at.isoformat() if summary.started_at else '-'}",
        f"  duration  {format_duration(summary.duration)}",
        f"  calls     {totals.call_count:,} ({totals.unpriced_calls} unpriced)",
        f"  cost      {cost}",
        f"  per call  {per_call}    per 1k tokens  {per_1k}",
        f"  tokens    {totals.input_tokens:,} in ({totals.cache_read_tokens:,} from cache), "
        f"{totals.output_tokens:,} out",
        "",
        "By provider",
        render_table(
            ["provider", "cost", "calls", "tokens"], _breakdown_rows(summary.by_provider), fancy=fancy
        ),
        "",
        "By model",
        render_table(["model", "cost", "calls", "tokens"], _breakdown_rows(summary.by_model), fancy=fancy),
    ]
    return "\n".join(lines)


def format_savings(savings: Savings, what_if: WhatIf | None, *, fancy: bool = False) -> str:
    """Text for ``otel-llm-cost savings``."""
    lines = [
        "Prompt caching",
        f"  saved      {format_usd(savings.cache_saved_usd)} "
        f"on {savings.cache_read_tokens:,} cache-read tokens "
        f"({savings.cache_hit_calls:,} of {savings.call_count:,} calls hit the cache)",
        "Cheaper-model candidates (tagged by the app)",
        f"  calls      {savings.downgradable_calls:,}, costing {format_usd(savings.downgradable_cost_usd)}",
    ]
    if what_if is not None:
        rows = [
            ["calls", format_int(what_if.calls)],
            ["unpriced calls", format_int(what_if.unpriced_calls)],
            [f"actual cost on {what_if.from_model}", format_usd(what_if.actual_cost_usd)],
            [f"same calls on {what_if.to_model}", format_usd(what_if.projected_priced_cost_usd)],
            ["difference", format_usd(what_if.difference_usd)],
            ["tagged downgradable", format_int(what_if.downgradable_calls)],
        ]
        lines += [
            "",
            f"What if {what_if.from_model} -> {what_if.to_model}",
            render_table(["", "value"], rows, align="lr", fancy=fancy),
        ]
    return "\n".join(lines)
