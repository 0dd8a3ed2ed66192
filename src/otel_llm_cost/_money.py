"""How money is represented, defined once: the DECIMAL scale, its quantum, its Arrow type, time constants.

Money is ``Decimal`` end to end and DuckDB ``DECIMAL(18,12)`` on disk: sums are exact (``DOUBLE`` sums of
the same rows came out differently from run to run), and 12 places hold a fraction of a per-token price.
18 digits leave six for dollars: a single call costs well below $1M. Aggregates widen to
``DECIMAL(38,12)`` so that no report can overflow.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Context, Decimal
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "EPOCH",
    "MONEY_CONTEXT",
    "MONEY_PRECISION",
    "MONEY_QUANTUM",
    "MONEY_SCALE",
    "MONEY_SQL_TYPE",
    "NANOS_PER_SECOND",
    "SUM_PRECISION",
    "TOKENS_PER_MILLION",
    "money_arrow_type",
    "quantize_usd",
]

MONEY_PRECISION: Final = 18
MONEY_SCALE: Final = 12
SUM_PRECISION: Final = 38
MONEY_SQL_TYPE: Final = f"DECIMAL({MONEY_PRECISION},{MONEY_SCALE})"
MONEY_QUANTUM: Final = Decimal(1).scaleb(-MONEY_SCALE)
"""Every amount is quantized to 12 decimal places."""

MONEY_CONTEXT: Final = Context(prec=40)
"""Our own decimal context: an application that lowers its thread's precision must not change what we
charge. 40 digits hold any realistic price x token count exactly; quantize rounds half-even."""

TOKENS_PER_MILLION: Final = Decimal(1_000_000)
"""Prices are quoted per million tokens."""

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
NANOS_PER_SECOND: Final = 1_000_000_000


def quantize_usd(amount: Decimal) -> Decimal:
    """``amount`` rounded half-even to :data:`MONEY_QUANTUM`, independent of the thread's context."""
    return MONEY_CONTEXT.quantize(amount, MONEY_QUANTUM)


def money_arrow_type(precision: int = MONEY_PRECISION) -> pa.DataType:
    """The Arrow type of a money column (pyarrow is imported here, on first use)."""
    import pyarrow as pa  # noqa: PLC0415 - heavy; the processor never needs it

    return pa.decimal128(precision, MONEY_SCALE)
