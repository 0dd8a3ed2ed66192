"""The reports' SQL when the file has a rollup (:mod:`otel_llm_cost.storage.rollup`): same answers, read
from the rollup's whole buckets plus the raw rows the rollup cannot answer.

Pure, as :mod:`~otel_llm_cost.query.sql`. Each builder takes the rollup's watermark and returns a
:class:`~otel_llm_cost.query.sql.Query`, or None when the rollup cannot answer the question (filters,
a dimension that is not rolled up, local days that cut through its buckets); the report then runs its
raw SQL. The window ``[start, end)`` splits into the whole buckets inside it, read from the rollup rows
that cover rows below the watermark, and raw rows: the ragged edges (below the watermark) and every row
at or above it. Both sides give *partial* rows with the rollup's columns; the reports combine them as
they combine raw rows, so every figure is the raw answer (a Hypothesis test compares them).
"""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime, timedelta
from typing import Final

from otel_llm_cost._money import EPOCH
from otel_llm_cost.query.dimensions import TAG_PREFIX, TAG_VALUE, Dimension
from otel_llm_cost.query.sql import BILLABLE, Query, day_range
from otel_llm_cost.storage import rollup as _rollup
from otel_llm_cost.storage.schema import CALLS_TABLE

__all__ = ["Partials", "grain_of", "partials", "rollup_name", "zone_aligned"]

_US: Final = timedelta(microseconds=1)
# Raw rows summed per 15 minutes when local days are asked for: every UTC offset since 1900 is a
# multiple of 15 minutes, so no such bucket straddles a local midnight.
RAW_BUCKET_US: Final = 15 * 60 * 1_000_000
_EXTRA_AGGREGATES: Final = {
    "excluded_records": None,  # counted from the non-billable rows, see partials()
    "downgradable_calls": f"count(*) FILTER (WHERE {_rollup.DOWNGRADABLE_SQL})",
    "downgradable_cost_usd": f"sum(cost_usd) FILTER (WHERE {_rollup.DOWNGRADABLE_SQL})",
}
_TYPES: Final = {name: typ for name, typ, _ in _rollup.PARTIAL_COLUMNS} | {
    "excluded_records": "BIGINT",
    "downgradable_calls": "BIGINT",
    "downgradable_cost_usd": "DECIMAL(38,12)",
}
_NEGATABLE: Final = frozenset(_rollup.DIMENSION_COLUMNS)


def rollup_name(dimension: Dimension | None) -> str | None:
    """The rollup's name for ``dimension`` (``""``: the totals), or None when it is not rolled up."""
    if dimension is None:
        return ""
    if dimension.expression == TAG_VALUE:
        return f"{TAG_PREFIX}{dimension.params[0]}"
    return dimension.name if dimension.name in _rollup.ROLLUP_DIMENSIONS else None


def grain_of(name: str) -> int:
    """Bucket width (microseconds) of a rolled-up dimension."""
    if name.startswith(TAG_PREFIX):
        return _rollup.TAG_GRAIN_US
    return _rollup.ROLLUP_DIMENSIONS[name][1]


def _us(moment: datetime) -> int:
    return (moment - EPOCH) // _US


def zone_aligned(start: datetime, end: datetime, tz: zoneinfo.ZoneInfo, grain_us: int) -> bool:
    """Whether every local midnight of ``tz`` in the window falls on a bucket boundary."""
    first, n_days = day_range(start, end, tz)
    for i in range(n_days + 1):
        midnight = datetime.combine(first + timedelta(days=i), datetime.min.time(), tz)
        if _us(midnight) % grain_us:
            return False
    return True


class Partials:
    """A window's partial rows: ``bucket_us, key, provider`` and the asked columns.

    Args:
        name: the rollup's dimension name (``""``: totals).
        dimension: the dimension (None: totals), for the raw rows' key.
        columns: the partial columns to produce.
        watermark: rows with a lower rowid are in the rollup.
        bucketed: keep time buckets (local days are made of them); otherwise one bucket, 0.
    """

    def __init__(
        self,
        name: str,
        dimension: Dimension | None,
        columns: tuple[str, ...],
        watermark: int,
        *,
        bucketed: bool = False,
    ) -> None:
        self.name = name
        self.dimension = dimension
        self.columns = columns
        self.watermark = watermark
        self.bucketed = bucketed
        self.grain = grain_of(name)

    def sql(self, start: datetime | None, end: datetime | None) -> tuple[str, tuple[object, ...]]:
        """SELECT of the partial rows of ``[start, end)``, and its parameters."""
        low = None if start is None else -(-_us(start) // self.grain) * self.grain
        high = None if end is None else _us(end) // self.grain * self.grain
        if low is not None and high is not None and low >= high:
            return self._raw([(start, end, None)])  # no whole bucket inside: every row of it is raw
        pieces: list[tuple[datetime | None, datetime | None, str | None]] = [(start, end, "rowid >= ?")]
        if start is not None:
            pieces.append((start, EPOCH + low * _US, "rowid < ?"))  # type: ignore[operator]
        if end is not None:
            pieces.append((EPOCH + high * _US, end, "rowid < ?"))  # type: ignore[operator]
        raw_sql, raw_params = self._raw(pieces)
        rolled_sql, rolled_params = self._rolled(low, high)
        return f"{rolled_sql} UNION ALL {raw_sql}", (*rolled_params, *raw_params)

    def _rolled(self, low: int | None, high: int | None) -> tuple[str, tuple[object, ...]]:
        coarse = None if self.bucketed else _rollup.COARSE.get(self.name)
        if coarse is not None:
            name, width = coarse
            inner_low = None if low is None else -(-low // width) * width
            inner_high = None if high is None else high // width * width
            if inner_low is None or inner_high is None or inner_low < inner_high:
                # Whole weeks from the week rows, the days beside them from the day rows.
                ranges = [(name, inner_low, inner_high)]
                if low is not None:
                    ranges.append((self.name, low, inner_low))
                if high is not None:
                    ranges.append((self.name, inner_high, high))
                selects = [self._select(*r) for r in ranges]
                return " UNION ALL ".join(s for s, _ in selects), tuple(p for _, ps in selects for p in ps)
        return self._select(self.name, low, high)

    def _select(self, name: str, low: int | None, high: int | None) -> tuple[str, tuple[object, ...]]:
        """The rollup rows of ``name`` with buckets in ``[low, high)`` (calls without a tag: derived)."""
        bucket = f"bucket_us // {self.grain} * {self.grain}" if self.bucketed else "0"
        where = ["upto_rowid <= ?"]
        params: list[object] = [self.watermark]
        if low is not None:
            where.append("bucket_us >= ?")
            params.append(low)
        if high is not None:
            where.append("bucket_us < ?")
            params.append(high)
        scope = " AND ".join(where)
        columns = ", ".join(self.columns)
        if self.name == "" and "excluded_records" not in self.columns:
            scope += " AND call_count > 0"
        own = (
            f"SELECT {bucket} AS bucket_us, key, provider, {columns} FROM {_rollup.ROLLUP_TABLE} "
            f"WHERE dimension = ? AND {scope}"
        )
        if not name.startswith(TAG_PREFIX):
            return own, (name, *params)
        # Calls without the tag: the totals minus the calls with it (counts and sums are additive).
        negated = ", ".join(f"-{column}" for column in self.columns)
        if not set(self.columns) <= _NEGATABLE:
            raise ValueError(f"only counts and sums can be subtracted, not {self.columns}")
        without = (
            f"SELECT {bucket}, NULL, NULL, {columns} FROM {_rollup.ROLLUP_TABLE} "
            f"WHERE dimension = '' AND {scope} AND call_count > 0 UNION ALL "
            f"SELECT {bucket}, NULL, NULL, {negated} FROM {_rollup.ROLLUP_TABLE} "
            f"WHERE dimension = ? AND {scope}"
        )
        return f"{own} UNION ALL {without}", (name, *params, *params, name, *params)

    def _raw(
        self, pieces: list[tuple[datetime | None, datetime | None, str | None]]
    ) -> tuple[str, tuple[object, ...]]:
        """The raw rows of each piece (time range, rowid condition), summed into partial rows."""
        selects, params = [], []
        for low, high, rowid in pieces:
            where: list[str] = []
            piece_params: list[object] = []
            if rowid is not None:
                where.append(rowid)
                piece_params.append(self.watermark)
            if low is not None:
                where.append("start_time >= ?")
                piece_params.append(low)
            if high is not None:
                where.append("start_time < ?")
                piece_params.append(high)
            selects.append(f"SELECT * FROM {CALLS_TABLE} WHERE {' AND '.join(where) or 'true'}")
            params.extend(piece_params)
        rows = " UNION ALL ".join(selects)
        bucket = f"epoch_us(start_time) // {RAW_BUCKET_US} * {RAW_BUCKET_US}" if self.bucketed else "0"
        key = "NULL" if self.dimension is None else self.dimension.expression
        key_params = () if self.dimension is None else self.dimension.params
        with_provider = self.name in _rollup.ROLLUP_DIMENSIONS and _rollup.ROLLUP_DIMENSIONS[self.name][2]
        aggregates = ", ".join(
            f"{_EXTRA_AGGREGATES[c] if c in _EXTRA_AGGREGATES else _aggregate(c)} AS {c}"
            if c != "excluded_records"
            else "0 AS excluded_records"
            for c in self.columns
        )
        sql = (
            f"SELECT {bucket} AS bucket_us, {key} AS key, "
            f"{'provider' if with_provider else 'NULL'} AS provider, "
            f"{aggregates} FROM ({rows}) WHERE {BILLABLE} GROUP BY ALL"
        )
        all_params: tuple[object, ...] = (*key_params, *params)
        if "excluded_records" in self.columns:
            zeros = ", ".join(
                "count(*)" if c == "excluded_records" else f"CAST(NULL AS {_TYPES[c]})" for c in self.columns
            )
            sql += (
                f" UNION ALL SELECT {bucket}, NULL, NULL, {zeros} FROM ({rows}) "
                "WHERE billable = false GROUP BY 1"
            )
            all_params = (*all_params, *params)
        return sql, all_params


def _aggregate(column: str) -> str:
    return next(aggregate for name, _, aggregate in _rollup.PARTIAL_COLUMNS if name == column)


def partials(
    dimension: Dimension | None,
    columns: tuple[str, ...],
    watermark: int | None,
    *,
    bucketed: bool = False,
) -> Partials | None:
    """The partial rows' builder, or None when there is no rollup or it has not got ``dimension``."""
    name = rollup_name(dimension)
    if watermark is None or watermark <= 0 or name is None:
        return None
    return Partials(name, dimension, columns, watermark, bucketed=bucketed)


def local_day(tz: zoneinfo.ZoneInfo) -> tuple[str, tuple[object, ...]]:
    """SQL of the local calendar day of a bucket start (``bucket_us``) in ``tz``, and its parameter."""
    return "CAST(timezone(?, timezone('UTC', make_timestamp(bucket_us))) AS DATE)", (tz.key,)


def first_local_day(start: datetime, tz: zoneinfo.ZoneInfo) -> date:
    return start.astimezone(tz).date()


_ = Query  # re-exported type for the builders in rollup_reports
