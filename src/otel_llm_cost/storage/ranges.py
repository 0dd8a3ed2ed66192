"""The start-time range predicate that keeps the "already stored?" check proportional to the batch."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["in_start_range"]

# A re-exported span keeps its start time, so the lookup of stored spans only scans the start-time
# range of the batch: DuckDB's zone maps skip every other row group and the cost stays proportional
# to the batch, not to the table (measured: 512-row batches at ~17% below a plain insert; a full
# anti-join ~40% below; PRIMARY KEY + ON CONFLICT DO NOTHING halved throughput at 512 rows per batch
# and grew the file 55-85%).
_IN_RANGE = "t.start_time BETWEEN to_timestamp(?) AND to_timestamp(?)"


def in_start_range(rows: pa.Table) -> tuple[str, list[float]]:
    """The start-time predicate that prunes the stored rows to the batch's range, and its parameters.

    Epoch seconds widened by 1 ms: exact matching is the join's job, the range only prunes, and
    to_timestamp() is an absolute instant whatever the session time zone. A row stored without a start
    time (an invalid one: its time was out of range) is matched among the NULLs.
    """
    starts = rows["start_time"]
    low, high = pc.min_max(starts.cast(pa.int64())).values()
    if low.as_py() is None:
        return "t.start_time IS NULL", []
    unit_per_s = 1e9 if rows.schema.field("start_time").type.unit == "ns" else 1e6
    bounds = [low.as_py() / unit_per_s - 0.001, high.as_py() / unit_per_s + 0.001]
    if starts.null_count:
        return f"({_IN_RANGE} OR t.start_time IS NULL)", bounds
    return _IN_RANGE, bounds
