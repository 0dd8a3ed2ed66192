"""The exploring reports every CostStore answers for the dashboard: breakdowns under filters, spend over
time by a dimension, biggest movers, one call in full, the calls matching a filter, cancelling a query.

Filters are ``{dimension: value}`` (the dimensions of ``cost_by``, custom tags as ``tag:<key>``; a
``None`` value matches calls without one) and combine with AND. Windows are half-open ``[start, end)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import partial

from otel_llm_cost.query import explore_sql as _sql
from otel_llm_cost.query import rollup_reports as _rolled
from otel_llm_cost.query import session_sql as _sessions
from otel_llm_cost.query import sql as _queries
from otel_llm_cost.query.columns import many_values
from otel_llm_cost.query.explore_results import CallDetail, Mover, SeriesPoint
from otel_llm_cost.query.filters import where_conditions
from otel_llm_cost.query.reader import Reader
from otel_llm_cost.query.results import CallRow, CostRow, DailyCost
from otel_llm_cost.query.sql import Query
from otel_llm_cost.query.tabular import Rows

__all__ = ["ExploreReports", "Filters"]

Filters = Mapping[str, str | None]
_NO_FILTERS: Filters = {}


class ExploreReports:
    """The exploring methods of :class:`~otel_llm_cost.query.store.CostStore` (see there)."""

    _reader: Reader

    def breakdown(
        self,
        dimension: str,
        start: datetime | None = None,
        end: datetime | None = None,
        filters: Filters = _NO_FILTERS,
        *,
        limit: int | None = None,
    ) -> Rows[CostRow]:
        """``cost_by(dimension, start, end)`` over the calls matching every filter, the first ``limit``.

        Without filters, a breakdown by session reads the session table (whole sessions as stored, raw
        rows only for those the window cuts); with filters it reads raw rows.

        Raises:
            UnknownDimensionError: the dimension or a filter's dimension is unknown.
            ValueError: a naive datetime, an empty window or ``limit < 1``.
        """
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        resolved = _queries.resolve_dimension(dimension)
        _queries.check_window(start, end)
        conditions = where_conditions(filters)
        query = _queries.cost_by(resolved, start, end, conditions=conditions)
        if limit is not None:
            query = Query(f"{query.sql} LIMIT ?", (*query.params, limit))
        if resolved.name == "session" and not conditions:
            planned = partial(_sessions.breakdown, start, end, limit)
            return self._reader.rows(CostRow, query, planned=planned)
        rolled = None if conditions else partial(_rolled.cost_by, resolved, start, end, limit=limit)
        return self._reader.rows(CostRow, query, rolled, columnar=many_values(resolved))

    def daily_cost_where(
        self, start: datetime, end: datetime, tz: str = "UTC", filters: Filters = _NO_FILTERS
    ) -> Rows[DailyCost]:
        """``daily_cost(start, end, tz)`` over the calls matching every filter (a user's days, say)."""
        _queries.check_window(start, end)
        zone = _queries.resolve_timezone(tz)
        where = where_conditions(filters)
        rolled = None if where else partial(_rolled.daily_cost, start, end, zone)
        return self._reader.rows(DailyCost, _queries.daily_cost(start, end, zone, where), rolled)

    def spend_series(
        self,
        dimension: str,
        start: datetime,
        end: datetime,
        tz: str = "UTC",
        *,
        top: int = 6,
        filters: Filters = _NO_FILTERS,
    ) -> Rows[SeriesPoint]:
        """Spend per local day in ``tz``, split by the ``top`` groups of ``dimension`` plus the rest.

        For each day the points add up to ``daily_cost`` of that day, and for each group over the
        window to its ``breakdown`` row. Days without calls have no point.

        Raises:
            UnknownDimensionError: an unknown dimension.
            ValueError: ``top < 1``, a naive datetime, an empty window or an unknown time zone.
        """
        if top < 1:
            raise ValueError(f"top must be at least 1, not {top}")
        resolved = _queries.resolve_dimension(dimension)
        _queries.check_window(start, end)
        zone = _queries.resolve_timezone(tz)
        where = where_conditions(filters)
        query = _sql.spend_series(resolved, start, end, zone, top=top, where=where)
        rolled = None if where else partial(_rolled.spend_series, resolved, start, end, zone, top)
        return self._reader.rows(SeriesPoint, query, rolled)

    def movers(
        self,
        dimension: str,
        start: datetime,
        end: datetime,
        *,
        limit: int = 5,
        filters: Filters = _NO_FILTERS,
    ) -> Rows[Mover]:
        """The groups whose spend changed most from the previous window of the same length to this one.

        Raises:
            UnknownDimensionError: an unknown dimension.
            ValueError: ``limit < 1``, a naive datetime or an empty window.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        resolved = _queries.resolve_dimension(dimension)
        _queries.check_window(start, end)
        where = where_conditions(filters)
        rolled = None if where else partial(_rolled.movers, resolved, start, end, limit)
        return self._reader.rows(Mover, _sql.movers(resolved, start, end, limit, where), rolled)

    def call_detail(self, span_id: str) -> CallDetail | None:
        """The stored record with ``span_id`` in full, or None when there is none."""
        rows = self._reader.rows(CallDetail, _sql.call_detail(span_id))
        return rows[0] if len(rows) else None

    def calls(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        filters: Filters = _NO_FILTERS,
        limit: int = 200,
    ) -> Rows[CallRow]:
        """The newest ``limit`` billable calls in ``[start, end)`` matching every filter, newest first.

        Raises:
            UnknownDimensionError: a filter's dimension is unknown.
            ValueError: ``limit < 1``, a naive datetime or an empty window.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        _queries.check_window(start, end)
        return self._reader.rows(CallRow, _sql.calls(start, end, limit, where_conditions(filters)))
