"""The user's price file as a layer over the price data.

A file entry prices a model or deployment by itself, or starts from another entry or the data's
price for its upstream ``model`` and changes it (written prices, a multiplier, tiers); an entry
named like a data model overrides that model for every id resolving to it (dated ids, Bedrock
ids...); ``[discounts]`` scale everything the data prices for a provider. Everything that needs the
data is checked when the layer is built, with errors naming the file, the entry and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from otel_llm_cost.pricing.overrides import EntryTransform, scale_card
from otel_llm_cost.pricing.price_file import PriceEntry, PriceFile
from otel_llm_cost.pricing.rates import Schedule
from otel_llm_cost.pricing.service_tiers import TierPrices
from otel_llm_cost.pricing.sources import Match, PriceData

__all__ = ["UserLayer"]


class _CycleError(Exception):
    pass


class UserLayer:
    """A user price file resolved against ``data``.

    Raises:
        PriceFileError: An entry names an unknown provider, an alias cycle, a model neither the data
            nor the file prices, or has no price to start from.
    """

    __slots__ = (
        "_attached_any",
        "_attached_by_provider",
        "_by_key",
        "_data",
        "_discounts",
        "_provider_of",
        "file",
    )

    def __init__(self, price_file: PriceFile, data: PriceData) -> None:
        self.file = price_file
        self._data = data
        self._by_key: dict[str, PriceEntry] = {}
        self._provider_of: dict[str, str | None] = {}
        """Entry key -> the provider id its ``provider`` field names."""
        self._discounts: dict[str, Decimal] = {}
        self._attached_any: dict[str, PriceEntry] = {}
        """Data model id -> the entry overriding it for every provider."""
        self._attached_by_provider: dict[tuple[str, str], PriceEntry] = {}
        for provider_name, multiplier in price_file.discounts:
            provider_id = data.provider_id(provider_name)
            if provider_id is None:
                raise price_file.error(
                    "discounts", provider_name, data.unknown_provider_message(provider_name)
                )
            self._discounts[provider_id] = multiplier
        for entry in price_file.entries:
            self._by_key[entry.key] = entry
            provider_id = None
            if entry.provider is not None:
                provider_id = data.provider_id(entry.provider)
                if provider_id is None:
                    raise price_file.error(
                        entry.where, "provider", data.unknown_provider_message(entry.provider)
                    )
            self._provider_of[entry.key] = provider_id
        # After every entry is known: resolving an entry's upstream may go through other entries.
        for entry in price_file.entries:
            self._validate_entry(entry)

    @property
    def source(self) -> str:
        """``user:<file name>``: the ``source`` of the prices this layer makes or changes."""
        return f"user:{self.file.name}"

    def entry_for(self, model_ref: str, provider_id: str | None) -> PriceEntry | None:
        """The file's entry for a model id as a span carries it, if the file has one for that provider."""
        key = model_ref.strip().lower()
        entry = self._by_key.get(key)
        if entry is None and "/" in key:
            # `resource/model`: a per-resource entry wins, else the entry for the upstream model.
            entry = self._by_key.get(key.rsplit("/", 1)[1])
        if entry is None:
            return None
        entry_provider = self._provider_of[entry.key]
        if entry_provider is not None and provider_id is not None and entry_provider != provider_id:
            return None
        return entry

    def resolve(self, entry: PriceEntry, provider_id: str | None, seen: tuple[str, ...] = ()) -> Match | None:
        """What ``entry`` prices a call of ``provider_id`` at, or ``None`` when it has no price."""
        if entry.key in seen:
            chain = " -> ".join((*seen, entry.key))
            raise _CycleError(f"aliases form a cycle: {chain}")
        entry_provider = self._provider_of[entry.key] or provider_id
        if entry.free:
            return Match(schedule=None, free=True, model_id=entry.name, provider_id=entry_provider, user=True)
        upstream = self._upstream(entry, provider_id, (*seen, entry.key))
        return self._apply(entry, upstream, entry_provider)

    def over_data(self, match: Match) -> Match | None:
        """The data's ``match`` with the file's entry for that model, or its provider discount, applied."""
        provider_id = match.provider_id or ""
        attached = self._attached_by_provider.get((provider_id, match.model_id)) or self._attached_any.get(
            match.model_id
        )
        if attached is not None:
            return self._apply(attached, match, match.provider_id)
        discount = self._discounts.get(provider_id)
        if discount is not None and match.schedule is not None:
            return Match(
                schedule=match.schedule.map(lambda card: scale_card(card, discount)),
                free=False,
                model_id=match.model_id,
                provider_id=match.provider_id,
                user=True,
                service_tiers=_scaled_tiers(match.service_tiers, discount),
            )
        return match

    def _validate_entry(self, entry: PriceEntry) -> None:
        provider_id = self._provider_of[entry.key]
        if entry.model is not None:
            try:
                match = self.resolve(entry, provider_id)
            except _CycleError as exc:
                raise self.file.error(entry.where, "model", str(exc)) from None
            if match is None:
                raise self.file.error(
                    entry.where,
                    "model",
                    f"{entry.model!r} is neither in {self._data.label} nor defined in this file",
                )
            return
        upstream = self._data.find(entry.name, provider_id)
        if upstream is not None and upstream.deployment is None:
            # The entry overrides that data entry for every id resolving to it (dated ids, Bedrock...).
            if provider_id is not None:
                self._attached_by_provider.setdefault((upstream.provider_id or "", upstream.model_id), entry)
            else:
                self._attached_any.setdefault(upstream.model_id, entry)
        if entry.free or (upstream is not None and upstream.schedule is not None):
            return
        missing = [name for name in ("input", "output") if getattr(entry.prices, name) is None]
        if missing:
            raise self.file.error(
                entry.where,
                missing[0],
                f"{entry.name!r} has no price in {self._data.label}: give at least input and output "
                '(USD per 1M tokens), `model = "..."` to reuse a known model\'s price, or `free = true`',
            )

    def _upstream(self, entry: PriceEntry, provider_id: str | None, seen: tuple[str, ...]) -> Match | None:
        """What an entry starts from: another entry it names, or the data's price for its model."""
        entry_provider = self._provider_of[entry.key] or provider_id
        if entry.model is not None:
            other = self.entry_for(entry.model, entry_provider)
            if other is not None and other.key != entry.key:
                return self.resolve(other, entry_provider, seen)
        return self._data.find(entry.model or entry.name, entry_provider)

    def _apply(self, entry: PriceEntry, upstream: Match | None, provider_id: str | None) -> Match | None:
        deployment = entry.name if entry.section in ("deployments", "aliases") else None
        if entry.free:
            return Match(schedule=None, free=True, model_id=entry.name, provider_id=provider_id, user=True)
        if upstream is not None and upstream.free:
            return Match(
                schedule=None,
                free=True,
                model_id=upstream.model_id,
                provider_id=upstream.provider_id,
                user=True,
                deployment=deployment or upstream.deployment,
            )
        has_own_prices = entry.prices.input is not None and entry.prices.output is not None
        if (upstream is None or upstream.schedule is None) and not has_own_prices:
            return None
        discount = None
        if upstream is not None and not upstream.user and entry.multiplier is None:
            discount = self._discounts.get(upstream.provider_id or "")
        transform = EntryTransform(entry, discount)
        if upstream is not None and upstream.schedule is not None:
            schedule = upstream.schedule.map(transform)
        else:
            schedule = Schedule(fixed=transform(None))
        model_id = upstream.model_id if (upstream is not None and deployment is not None) else entry.name
        # An entry that only names another model (an alias, a deployment) keeps that model's service
        # tiers; an entry that sets a price sets it for every tier.
        keeps_tiers = entry.prices.is_empty() and entry.multiplier is None and not entry.tiers
        tiers = None
        if keeps_tiers and upstream is not None:
            tiers = _scaled_tiers(upstream.service_tiers, discount)
        return Match(
            schedule=schedule,
            free=False,
            model_id=model_id,
            provider_id=upstream.provider_id if upstream is not None else provider_id,
            user=True,
            deployment=deployment or (upstream.deployment if upstream is not None else None),
            service_tiers=tiers,
        )


def _scaled_tiers(
    tiers: Mapping[str, TierPrices] | None, discount: Decimal | None
) -> Mapping[str, TierPrices] | None:
    if tiers is None or discount is None:
        return tiers
    return {name: prices.map(lambda card: scale_card(card, discount)) for name, prices in tiers.items()}
