"""What pricing answers: a call's :class:`CostBreakdown`, a model's :class:`UnitPrices`, and their parts."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Final, cast

__all__ = ["CostBreakdown", "CostStatus", "PriceTier", "UnitPrices", "new_priced"]

_ZERO: Final = Decimal(0)


class CostStatus(enum.StrEnum):
    """How a call's cost was established (written as ``llm.cost.status``)."""

    PRICED = "priced"
    """Computed from a price table (bundled or user file)."""
    UNPRICED = "unpriced"
    """No price known: the cost is NULL with a reason, never 0."""
    REPORTED = "reported"
    """The provider reported what the call cost; we trust it over our tables."""
    FREE = "free"
    """A model the user declared free (for example a local model): the cost is exactly 0."""
    INVALID = "invalid"
    """The span's figures break the stored-row rules (a negative or absurd token count, a cost out of
    range): no cost, the reason in ``llm.cost.reason``; reports count it with the unpriced calls."""


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    """What one call cost, by token kind, as exact Decimal USD (``None`` when unpriced)."""

    status: CostStatus
    total_usd: Decimal | None
    input_usd: Decimal | None = None
    """Uncached input only."""
    cache_read_usd: Decimal | None = None
    cache_write_usd: Decimal | None = None
    """5-minute and 1-hour cache writes together."""
    output_usd: Decimal | None = None
    """Output including reasoning."""
    cache_saved_usd: Decimal | None = None
    """What the cache reads would have cost at the full input price, minus what they cost."""
    source: str | None = None
    """Which layer priced it: ``provider``, ``user:<file>``, ``genai-prices <version>`` (with
    `` + corrections`` when our corrections changed the model's price)."""
    model_id: str | None = None
    """The price entry that matched (for example ``claude-sonnet-4-0``)."""
    provider_id: str | None = None
    reason: str | None = None
    """Why the call is unpriced (unknown model, missing model attribute...)."""
    deployment: str | None = None
    """The alias or deployment name from the user price file that mapped the call onto ``model_id``."""
    request_usd: Decimal | None = None
    """A fixed per-request fee, for the few models that charge one (for example Perplexity Sonar)."""


class _CostDraft:
    """A priced :class:`CostBreakdown` being built: the same slots, set by plain slot stores.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``; for 13 fields
    that measured ~7x slower than a plain dataclass and was half the cost of pricing a call, and the
    slot descriptors called one by one still cost ~0.8 us. The draft becomes a CostBreakdown by
    ``__class__`` assignment, which Python allows between classes with the same slot layout: an
    ordinary, immutable CostBreakdown (tests check it equals one built the normal way).
    """

    __slots__ = CostBreakdown.__slots__
    status: CostStatus
    total_usd: Decimal | None
    input_usd: Decimal | None
    cache_read_usd: Decimal | None
    cache_write_usd: Decimal | None
    output_usd: Decimal | None
    cache_saved_usd: Decimal | None
    source: str | None
    model_id: str | None
    provider_id: str | None
    reason: str | None
    deployment: str | None
    request_usd: Decimal | None


def new_priced(  # noqa: PLR0917 - positional on purpose: the per-call hot path
    total_usd: Decimal,
    input_usd: Decimal,
    cache_read_usd: Decimal,
    cache_write_usd: Decimal,
    output_usd: Decimal,
    cache_saved_usd: Decimal,
    request_usd: Decimal,
    labels: CostBreakdown,
) -> CostBreakdown:
    """A priced CostBreakdown of these amounts carrying the ids and source of ``labels``."""
    result = _CostDraft()
    result.status = CostStatus.PRICED
    result.total_usd = total_usd
    result.input_usd = input_usd
    result.cache_read_usd = cache_read_usd
    result.cache_write_usd = cache_write_usd
    result.output_usd = output_usd
    result.cache_saved_usd = cache_saved_usd
    result.source = labels.source
    result.model_id = labels.model_id
    result.provider_id = labels.provider_id
    result.reason = None
    result.deployment = labels.deployment
    result.request_usd = request_usd
    result.__class__ = CostBreakdown  # type: ignore[assignment]
    return cast(CostBreakdown, result)


@dataclass(frozen=True, slots=True)
class PriceTier:
    """Long-context prices: they apply to every token of a call whose total input exceeds
    ``above_input_tokens`` (the cliff model: 200,000 input tokens exactly stays on the base price)."""

    above_input_tokens: int
    input_mtok: Decimal
    cache_read_mtok: Decimal
    cache_write_5m_mtok: Decimal
    cache_write_1h_mtok: Decimal
    output_mtok: Decimal


@dataclass(frozen=True, slots=True)
class UnitPrices:
    """What a model costs per 1M tokens of each kind at one moment, and where that price came from.

    Kinds a model has no separate price for show the price actually charged for them (a model
    without a cache-read discount shows its input price as ``cache_read_mtok``).
    """

    model_id: str
    provider_id: str | None
    source: str
    status: CostStatus
    input_mtok: Decimal
    cache_read_mtok: Decimal
    cache_write_5m_mtok: Decimal
    cache_write_1h_mtok: Decimal
    output_mtok: Decimal
    request_usd: Decimal = _ZERO
    """Fixed fee per request (0 for almost every model)."""
    tiers: tuple[PriceTier, ...] = ()
    valid_from: date | None = None
    """First UTC day this price is in force (``None``: since the earliest price we know)."""
    valid_until: date | None = None
    """First UTC day it is no longer in force (``None``: still current)."""
    time_of_day_pricing: bool = False
    """The price depends on the UTC time of day (off-peak discounts)."""
    deployment: str | None = None
