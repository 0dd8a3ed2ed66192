"""A session's totals and its provider and model breakdowns, summed from its calls: one query, not four.

``CostStore.session_summary`` lists the session's calls anyway, and those rows carry every figure the
totals and the breakdowns need, so they are summed here from the fetched rows; three more queries
each scanned the whole file's ``session_id`` column for the same rows. The rules are the SQL's
(:func:`~otel_llm_cost.query.sql.totals`, :func:`~otel_llm_cost.query.sql.cost_by`):

- money is summed exactly in ``Decimal`` (the money context holds 40 digits; DuckDB's sums are
  ``DECIMAL(38,12)``); a group's spend is the sum of its priced calls, $0 when it has no unpriced
  call either, and None when it has unpriced calls and no priced one;
- token sums count a missing figure as nothing (0 when there is none at all);
- breakdowns sort by spend (unknown last), then calls, then key (none last);
- the latency sum is ``math.fsum`` (correctly rounded); a DuckDB ``DOUBLE`` sum depends on the order
  its threads add the rows in, so the two agree exactly when durations are whole milliseconds and to
  the last bits otherwise.

Each result keeps a :class:`~otel_llm_cost.query.tabular.Source` with the column names and DuckDB
types the SQL gives, so ``.arrow()`` and ``.df()`` read as they did when the SQL produced them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from functools import reduce
from typing import Any, Final

import duckdb

from otel_llm_cost._money import MONEY_CONTEXT, MONEY_SCALE, SUM_PRECISION
from otel_llm_cost.query.columns import build_all
from otel_llm_cost.query.reader import typed_rows, utc
from otel_llm_cost.query.results import CallRow, CostRow, Summary
from otel_llm_cost.query.session import SessionSummary
from otel_llm_cost.query.sql import CALL_COLUMNS_OUT, TOKEN_KINDS, Query, billable_where
from otel_llm_cost.query.tabular import Rows, Source
from otel_llm_cost.storage.schema import CALLS_TABLE

__all__ = ["session_calls", "summarize_session"]

_SUM: Final = f"DECIMAL({SUM_PRECISION},{MONEY_SCALE})"
_ZERO_USD: Final = Decimal(0).scaleb(-MONEY_SCALE)  # a DECIMAL(38,12) zero, as DuckDB returns it
_EXTRA: Final = ("cache_saved_usd", "cache_hit")  # read for the totals only
# The type DuckDB gives a bare NULL column (the provider breakdown's ``NULL AS provider``): its own
# NULL type since duckdb 2.0, INTEGER before.
_NULL_TYPE: Final = '"NULL"' if int(duckdb.__version__.split(".", 1)[0]) >= 2 else "INTEGER"

_TOTALS_COLUMNS: Final = (
    ("call_count", "BIGINT"),
    ("unpriced_calls", "BIGINT"),
    ("cost_usd", _SUM),
    *((name, "HUGEINT") for name in (*TOKEN_KINDS, "total_tokens", "priced_tokens")),
    ("cache_saved_usd", _SUM),
    ("cache_hit_calls", "BIGINT"),
    ("from_cache_calls", "BIGINT"),
    ("latency_ms", "DOUBLE"),
    ("first_start", "TIMESTAMP WITH TIME ZONE"),
    ("last_end", "TIMESTAMP WITH TIME ZONE"),
    ("excluded_records", "INTEGER"),
)
"""The columns of ``sql.totals(session_id=...)`` (a test compares them with DuckDB's description)."""


def _group_columns(provider_type: str) -> tuple[tuple[str, str], ...]:
    """The columns of ``sql.cost_by(dimension, session_id=...)``."""
    return (
        ("key", "VARCHAR"),
        ("total_cost_usd", _SUM),
        ("total_tokens", "HUGEINT"),
        ("call_count", "BIGINT"),
        ("unpriced_calls", "BIGINT"),
        *((name, "HUGEINT") for name in TOKEN_KINDS),
        ("provider", provider_type),
    )


def session_calls(session_id: str) -> Query:
    """The session's billable calls in start order: the call columns, then what the totals need."""
    where, params = billable_where(None, None, (("session_id = ?", (session_id,)),))
    sql = (
        f"SELECT {CALL_COLUMNS_OUT}, {', '.join(_EXTRA)} FROM {CALLS_TABLE} WHERE {where} "
        "ORDER BY start_time, span_id"
    )
    return Query(sql, params)


def _money(values: Sequence[Decimal | None]) -> Decimal | None:
    present = [value for value in values if value is not None]
    return reduce(MONEY_CONTEXT.add, present) if present else None


def _count(flags: Sequence[bool | None]) -> int:
    return sum(1 for flag in flags if flag)


def _ints(values: Sequence[int | None]) -> int:
    return sum(value for value in values if value is not None)


def _figures(calls: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """What every group reports: calls, unpriced calls, known spend, token sums."""
    unpriced = sum(
        1
        for cost, cached in zip(calls["cost_usd"], calls["from_cache"], strict=True)
        if cost is None and cached is not True
    )
    spent = _money(calls["cost_usd"])
    return {
        "call_count": len(calls["span_id"]),
        "unpriced_calls": unpriced,
        "cost_usd": spent if spent is not None else (_ZERO_USD if unpriced == 0 else None),
        **{name: _ints(calls[name]) for name in (*TOKEN_KINDS, "total_tokens")},
    }


def _totals(calls: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    priced = [t for t, cost in zip(calls["total_tokens"], calls["cost_usd"], strict=True) if cost is not None]
    saved = _money(calls["cache_saved_usd"])
    starts = [value for value in calls["start_time"] if value is not None]
    ends = [value for value in calls["end_time"] if value is not None]
    return {
        **_figures(calls),
        "priced_tokens": _ints(priced),
        "cache_saved_usd": saved if saved is not None else _ZERO_USD,
        "cache_hit_calls": _count(calls["cache_hit"]),
        "from_cache_calls": _count(calls["from_cache"]),
        "latency_ms": math.fsum(value for value in calls["latency_ms"] if value is not None),
        "first_start": min(starts, default=None),
        "last_end": max(ends, default=None),
        "excluded_records": 0,
    }


def _order(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """Spend first (unknown last), then calls, then key (none last), as the SQL orders groups."""
    key, cost, _tokens, calls = row[:4]
    return (cost is None, -cost if cost is not None else 0, -calls, key is None, key or "")


def _breakdown(
    calls: Mapping[str, Sequence[Any]], key: str, providers: Callable[[list[Any]], str | None] | None
) -> list[tuple[Any, ...]]:
    """One row per value of ``key``: the columns of :func:`_group_columns`, in the SQL's order."""
    members: dict[Any, list[int]] = {}
    for i, value in enumerate(calls[key]):
        members.setdefault(value, []).append(i)
    rows = []
    for value, indexes in members.items():
        group = {name: [column[i] for i in indexes] for name, column in calls.items()}
        figures = _figures(group)
        rows.append(
            (
                value,
                figures["cost_usd"],
                figures["total_tokens"],
                figures["call_count"],
                figures["unpriced_calls"],
                *(figures[name] for name in TOKEN_KINDS),
                providers(group["provider"]) if providers is not None else None,
            )
        )
    return sorted(rows, key=_order)


def _providers(values: list[str | None]) -> str | None:
    """``string_agg(DISTINCT provider, ', ' ORDER BY provider)``."""
    present = sorted({value for value in values if value is not None})
    return ", ".join(present) if present else None


def _cost_rows(source: Source, rows: list[tuple[Any, ...]], provider_type: str) -> Rows[CostRow]:
    names, types = zip(*_group_columns(provider_type), strict=True)
    derived = Source(source.connection, source.query, names=names, types=types, rows=rows)
    return Rows(build_all(CostRow, derived.columns, derived), derived)


def summarize_session(session_id: str, source: Source) -> SessionSummary:
    """The session's report from the rows of :func:`session_calls`."""
    calls = dict(zip(source.names, source.columns, strict=True))
    own = [name for name in source.names if name not in _EXTRA]
    call_source = Source(
        source.connection,
        source.query,
        names=own,
        types=[t for name, t in zip(source.names, source.types, strict=True) if name not in _EXTRA],
        columns=[list(calls[name]) for name in own],
    )
    totals = _totals(calls)
    totals["first_start"], totals["last_end"] = utc(totals["first_start"]), utc(totals["last_end"])
    names, types = zip(*_TOTALS_COLUMNS, strict=True)
    totals_source = Source(
        source.connection, source.query, names=names, types=types, rows=[tuple(totals[n] for n in names)]
    )
    summary = Summary(start=None, end=None, **totals, _source=totals_source)
    by_provider = _cost_rows(source, _breakdown(calls, "provider", None), _NULL_TYPE)
    by_model = _cost_rows(source, _breakdown(calls, "model", _providers), "VARCHAR")
    return SessionSummary(session_id, summary, by_provider, by_model, typed_rows(CallRow, call_source))
