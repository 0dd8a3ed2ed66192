"""From a (model, provider) as a span names them to the price that applies, through the layers.

The user's price file is looked at first, then the price data (with the file's overrides and
discounts applied to what the data prices). The answer, a :class:`Resolved`, does not depend on the
call's token counts, so a price book computes it once per (model, provider) and caches it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from otel_llm_cost._money import MONEY_CONTEXT, MONEY_QUANTUM
from otel_llm_cost.pricing.rates import ZERO, Card, Schedule, per_million
from otel_llm_cost.pricing.results import CostBreakdown, CostStatus, PriceTier, UnitPrices
from otel_llm_cost.pricing.service_tiers import TierPrices
from otel_llm_cost.pricing.sources import Match, PriceData
from otel_llm_cost.pricing.user_layer import UserLayer

__all__ = ["CORRECTED_SUFFIX", "Resolved", "Resolver", "unit_prices_of"]

_logger = logging.getLogger("otel_llm_cost.pricing")

_LOGGED_UNPRICED_CAP: Final = 1024
_ZERO_MONEY: Final = MONEY_CONTEXT.quantize(ZERO, MONEY_QUANTUM)
CORRECTED_SUFFIX: Final = " + corrections"
"""Appended to the data's label in ``source`` when our corrections changed the model's price."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """Everything pricing a call needs for one (model, provider), computed once."""

    schedule: Schedule | None
    """``None`` when the outcome does not depend on usage (unpriced or free)."""
    outcome: CostBreakdown
    """Template: the fixed result (unpriced/free) or the labels (source, ids) of a priced one."""
    service_tiers: Mapping[str, TierPrices] | None = None
    """Price tables by service tier; ``None``: ``schedule`` prices every tier."""


class Resolver:
    """Resolves (model, provider) pairs against ``data`` and the optional ``user`` layer.

    Not thread-safe on its own (it memoises compiled prices and what it logged): the price book
    resolves under its lock.
    """

    __slots__ = ("_data", "_logged_unpriced", "_user")

    def __init__(self, data: PriceData, user: UserLayer | None) -> None:
        self._data = data
        self._user = user
        self._logged_unpriced: set[str] = set()

    def resolve(self, model_ref: str | None, provider_name: str | None) -> Resolved:
        """The price of ``model_ref`` served by ``provider_name``, or an unpriced outcome saying why."""
        if not model_ref:
            return self._unpriced(provider_name, "no model attribute on the span")
        match = self._match(model_ref, provider_name)
        if match is None or (match.schedule is None and not match.free):
            if match is None:
                where = self._data.label + (f" or {self._user.file.name}" if self._user is not None else "")
                reason = f"no price for model {model_ref!r} in {where}"
            else:
                reason = f"the price entry for {model_ref!r} has no token prices"
            self._log_unpriced(model_ref, provider_name)
            return self._unpriced(provider_name, reason)
        if match.user and self._user is not None:
            source = self._user.source
        else:
            source = self._data.label + (CORRECTED_SUFFIX if match.corrected else "")
        if match.free:
            zero = _ZERO_MONEY
            free = CostBreakdown(
                status=CostStatus.FREE,
                total_usd=zero,
                input_usd=zero,
                cache_read_usd=zero,
                cache_write_usd=zero,
                output_usd=zero,
                cache_saved_usd=zero,
                source=source,
                model_id=match.model_id,
                provider_id=match.provider_id,
                deployment=match.deployment,
                request_usd=zero,
            )
            return Resolved(None, free)
        labels = CostBreakdown(
            status=CostStatus.PRICED,
            total_usd=None,
            source=source,
            model_id=match.model_id,
            provider_id=match.provider_id,
            deployment=match.deployment,
        )
        return Resolved(match.schedule, labels, match.service_tiers)

    def _match(self, model_ref: str, provider_name: str | None) -> Match | None:
        provider_id = self._data.provider_id(provider_name)
        user = self._user
        if user is not None:
            entry = user.entry_for(model_ref, provider_id)
            if entry is not None:
                return user.resolve(entry, provider_id)
        match = self._data.find(model_ref, provider_id)
        if match is None or user is None:
            return match
        return user.over_data(match)

    def _unpriced(self, provider_name: str | None, reason: str) -> Resolved:
        return Resolved(
            None,
            CostBreakdown(
                status=CostStatus.UNPRICED,
                total_usd=None,
                provider_id=self._data.provider_id(provider_name),
                reason=reason,
            ),
        )

    def _log_unpriced(self, model_ref: str, provider_name: str | None) -> None:
        if model_ref in self._logged_unpriced or len(self._logged_unpriced) >= _LOGGED_UNPRICED_CAP:
            return
        self._logged_unpriced.add(model_ref)
        _logger.debug(
            "no price for model %r (provider %r): its calls are recorded as unpriced; add it to a price file "
            "(OTEL_LLM_COST_PRICES) to price them",
            model_ref,
            provider_name,
        )


def unit_prices_of(
    resolved: Resolved, model: str, at: datetime | None, data_label: str, *, card: Card | None = None
) -> UnitPrices:
    """What a resolved, priced or free model costs per 1M tokens of each kind at ``at``
    (``card``: a service tier's card in force then, instead of the standard one)."""
    outcome = resolved.outcome
    schedule = resolved.schedule
    if schedule is None:
        return UnitPrices(
            model_id=outcome.model_id or model,
            provider_id=outcome.provider_id,
            source=outcome.source or data_label,
            status=CostStatus.FREE,
            input_mtok=ZERO,
            cache_read_mtok=ZERO,
            cache_write_5m_mtok=ZERO,
            cache_write_1h_mtok=ZERO,
            output_mtok=ZERO,
            deployment=outcome.deployment,
        )
    valid_from, valid_until = schedule.validity(at) if card is None else (None, None)
    card = card or schedule.card_at(at)
    base = per_million(card.base)
    return UnitPrices(
        model_id=outcome.model_id or model,
        provider_id=outcome.provider_id,
        source=outcome.source or data_label,
        status=CostStatus.PRICED,
        input_mtok=base[0],
        cache_read_mtok=base[1],
        cache_write_5m_mtok=base[2],
        cache_write_1h_mtok=base[3],
        output_mtok=base[4],
        request_usd=card.base.request.normalize(),
        tiers=tuple(PriceTier(threshold, *per_million(rates)) for threshold, rates in reversed(card.tiers)),
        valid_from=valid_from,
        valid_until=valid_until,
        time_of_day_pricing=schedule.time_of_day,
        deployment=outcome.deployment,
    )
