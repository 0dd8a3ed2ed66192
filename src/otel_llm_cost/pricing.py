"""Price normalised usage exactly: a layered, cached PriceBook over genai-prices data.

CONTRACT STUB written by the integrator; the pricing work (issue 3) replaces the body.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal

__all__ = ["MONEY_QUANTUM", "CostBreakdown", "CostStatus"]

MONEY_QUANTUM = Decimal("1e-12")
"""Every amount is quantized to 12 decimal places (DuckDB DECIMAL(18,12)); costs are below $1M a call."""


class CostStatus(enum.StrEnum):
    PRICED = "priced"
    UNPRICED = "unpriced"
    REPORTED = "reported"
    FREE = "free"


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    """What one call cost, by token kind, as exact Decimal USD (``None`` when unpriced)."""

    status: CostStatus
    total_usd: Decimal | None
    input_usd: Decimal | None = None
    """Uncached input only."""
    cache_read_usd: Decimal | None = None
    cache_write_usd: Decimal | None = None
    output_usd: Decimal | None = None
    """Output including reasoning."""
    cache_saved_usd: Decimal | None = None
    """What the cache reads would have cost at the full input price, minus what they cost."""
    source: str | None = None
    """Which layer priced it: ``provider``, ``user:<file>``, ``genai-prices <version>``."""
    model_id: str | None = None
    """The price entry that matched (for example ``claude-sonnet-4-0``)."""
    provider_id: str | None = None
    reason: str | None = None
    """Why the call is unpriced (unknown model, missing model attribute...)."""
