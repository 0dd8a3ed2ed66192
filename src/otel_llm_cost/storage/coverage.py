"""What the derived tables (the hourly rollup, the session table) share: a watermark that proves them
exact.

A derived table covers exactly the ``llm_calls`` rows whose ``rowid`` is below its watermark; its state
also keeps how many rows lay below it when they were summed, so a delete under the watermark (the
counts then differ) makes the table unusable until its writer sums it again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import duckdb

from otel_llm_cost.storage.schema import CALLS_TABLE

__all__ = ["CHUNK_ROWS", "catch_up", "checked_watermark", "read_state", "rows_between", "rows_from"]

CHUNK_ROWS: Final = 262_144
"""Rows a catch-up sums per transaction (about 0.5 s for the rollup on one core)."""


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


def rows_between(con: duckdb.DuckDBPyConnection, low: int, high: int) -> int:
    """How many ``llm_calls`` rows have ``low <= rowid < high``."""
    row = con.execute(
        f"SELECT count(*) FROM {CALLS_TABLE} WHERE rowid >= ? AND rowid < ?", [low, high]
    ).fetchone()
    return int(row[0]) if row else 0


def catch_up(
    con: duckdb.DuckDBPyConnection,
    *,
    state_table: str,
    layout: int,
    reset: Callable[[duckdb.DuckDBPyConnection], None],
    add_rows: Callable[[duckdb.DuckDBPyConnection, int, int], int],
    max_rows: int | None,
) -> int:
    """Sum the next ``llm_calls`` rows a derived table does not cover (at most ``max_rows``; None: all)
    into it, one transaction per chunk of :data:`CHUNK_ROWS`, and return how many rowids were covered.

    Run by the writer that appends ``llm_calls`` rows, under its commit lock (no other append of this
    process runs meanwhile).

    Args:
        con: A read-write connection.
        state_table: The table's state table (watermark, rows covered, layout).
        layout: The layout this code writes; a table in another layout is summed again from the start.
        reset: Empties the derived table, when rows under its watermark were deleted or its layout
            differs.
        add_rows: Adds the rows ``low <= rowid < high`` to the table and returns how many there are.
        max_rows: The most rowids to cover in this call.
    """
    done = 0
    while max_rows is None or done < max_rows:
        chunk = CHUNK_ROWS if max_rows is None else min(CHUNK_ROWS, max_rows - done)
        con.execute("BEGIN TRANSACTION")
        try:
            state = read_state(con, state_table, layout)
            low = checked_watermark(con, state)
            if low is None:  # rows deleted under the table, or another layout: start again
                reset(con)
                low = 0
            covered = state[1] if state is not None and low else 0
            row = con.execute(f"SELECT max(rowid) FROM {CALLS_TABLE} WHERE rowid >= ?", [low]).fetchone()
            top = None if row is None or row[0] is None else int(row[0]) + 1
            if top is None:
                con.execute("COMMIT")
                return done
            high = min(top, low + chunk)
            counted = add_rows(con, low, high)
            con.execute(f"DELETE FROM {state_table}")
            con.execute(f"INSERT INTO {state_table} VALUES (?, ?, ?)", [high, covered + counted, layout])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        done += high - low
        if high == top:
            return done
    return done
