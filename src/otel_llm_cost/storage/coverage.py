"""What the derived tables (the hourly rollup, the session table) share: a watermark that proves them
exact.

A derived table covers exactly the ``llm_calls`` rows whose ``rowid`` is below its watermark; its state
also keeps how many rows lay below it when they were summed, so a delete under the watermark (the
counts then differ) makes the table unusable until its writer sums it again.
"""

from __future__ import annotations

import duckdb

from otel_llm_cost.storage.schema import CALLS_TABLE

__all__ = ["checked_watermark", "read_state", "rows_from"]


def read_state(con: duckdb.DuckDBPyConnection, state_table: str, layout: int) -> tuple[int, int] | None:
    """(watermark, rows covered) from a derived table's state table ((0, 0): nothing summed yet);
    None when the table was written in another layout than ``layout``."""
    row = con.execute(
        f"SELECT max(covered_rowid), max(covered_rows), max(layout) FROM {state_table}"
    ).fetchone()
    if row is None or row[0] is None:
        return 0, 0
    return (int(row[0]), int(row[1])) if row[2] == layout else None


def checked_watermark(con: duckdb.DuckDBPyConnection, state: tuple[int, int] | None) -> int | None:
    """A derived table's watermark from its ``state`` (watermark, rows below it when it was summed):
    None when ``state`` is None or rows below the watermark were deleted since (the counts differ)."""
    if state is None:
        return None
    mark, rows = state
    if mark == 0:
        return 0
    row = con.execute(
        f"SELECT (SELECT count(*) FROM {CALLS_TABLE}) "
        f"- (SELECT count(*) FROM {CALLS_TABLE} WHERE rowid >= ?)",
        [mark],
    ).fetchone()
    return mark if row is not None and row[0] == rows else None


def rows_from(con: duckdb.DuckDBPyConnection, mark: int) -> int:
    """How many ``llm_calls`` rows lie at or above the rowid ``mark``."""
    row = con.execute(f"SELECT count(*) FROM {CALLS_TABLE} WHERE rowid >= ?", [mark]).fetchone()
    return int(row[0]) if row else 0
