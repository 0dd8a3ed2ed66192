"""Rendering report rows for people and programs: terminal tables, JSON, CSV, sparklines, progress.

The number and table formatting lives in :mod:`otel_llm_cost.query.text` and a session's text beside
:class:`~otel_llm_cost.query.session.SessionSummary`; both are importable from here too, the one
module the CLI renders with. Terminal niceties (box-drawing rules, bold headers, a progress line)
appear only when the stream is a TTY; piped output is plain aligned text, so ``| grep`` and
``| column`` keep working.
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
from decimal import Decimal
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Self

from otel_llm_cost._money import MONEY_SCALE, quantize_usd
from otel_llm_cost.query.session import format_session
from otel_llm_cost.query.text import (
    format_duration,
    format_int,
    format_pct,
    format_usd,
    is_tty,
    render_table,
    sparkline,
    terminal_width,
    usd_places,
    use_color,
)

if TYPE_CHECKING:
    from otel_llm_cost.query.results import Savings, WhatIf

__all__ = [
    "Progress",
    "format_duration",
    "format_int",
    "format_pct",
    "format_savings",
    "format_session",
    "format_usd",
    "is_tty",
    "plain_decimal",
    "record",
    "render_table",
    "sparkline",
    "terminal_width",
    "to_csv",
    "to_json",
    "usd_places",
    "use_color",
]


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return plain_decimal(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


def plain_decimal(value: Decimal) -> str:
    """A Decimal as a plain string, never in exponent form (``0E-12``): money keeps its fixed scale of
    12 places (the stored scale); a computed ratio with more digits is rounded to that scale."""
    if value.as_tuple().exponent < -MONEY_SCALE:  # type: ignore[operator]
        value = quantize_usd(value)
    return f"{value:f}"


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
