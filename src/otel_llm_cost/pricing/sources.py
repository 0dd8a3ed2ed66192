"""The price data a book starts from: genai-prices' bundled data, or a genai-prices data file.

A genai-prices data file (the JSON genai-prices publishes; ``OTEL_LLM_COST_PRICE_DATA`` or
``PriceBook(data_file=...)``) gives newer prices without upgrading the package. Either way a
:class:`PriceData` keeps its own reference to the provider list it loaded, so genai-prices'
process-wide ``UpdatePrices`` cannot change its prices behind its back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from otel_llm_cost._private_api import bundled_genai_providers, genai_providers_from_json
from otel_llm_cost.exceptions import PriceFileError
from otel_llm_cost.pricing.compiler import compile_schedule, compile_service_tiers
from otel_llm_cost.pricing.ids import model_ref_candidates, provider_id_for, provider_id_in

if TYPE_CHECKING:
    from genai_prices import types as gp_types

    from otel_llm_cost.pricing.corrections import Corrections
    from otel_llm_cost.pricing.rates import Schedule
    from otel_llm_cost.pricing.service_tiers import TierPrices

__all__ = ["Match", "PriceData", "genai_prices_version"]


@dataclass(frozen=True, slots=True)
class Match:
    """A priced entry found for a model: in the data, or through the user's price file."""

    schedule: Schedule | None
    free: bool
    model_id: str
    provider_id: str | None
    user: bool
    """The user's price file made or changed this price."""
    deployment: str | None = None
    service_tiers: Mapping[str, TierPrices] | None = None
    """Price tables by service tier (``flex``, ``priority``...); a tier not in it has no price.
    ``None``: ``schedule`` prices every tier (a price from the user's file)."""
    corrected: bool = False
    """Our corrections changed the data's price."""


class PriceData:
    """One genai-prices data set and the lookups a price book makes in it.

    Compiled schedules are memoised per (provider, model) entry. Not thread-safe on its own: the
    price book resolves under its lock.
    """

    __slots__ = ("_by_id", "_schedules", "bundled", "corrections", "label", "providers")

    def __init__(
        self,
        providers: list[gp_types.Provider],
        *,
        label: str,
        bundled: bool,
        corrections: Corrections | None = None,
    ) -> None:
        self.providers = providers
        self.corrections = corrections
        """Our corrections, applied to every price found (``None``: the data as published)."""
        self.label = label
        """``genai-prices <version>`` or ``genai-prices data <file name>``: the ``source`` of its prices."""
        self.bundled = bundled
        self._by_id = {provider.id: provider for provider in providers}
        self._schedules: dict[tuple[str, str], tuple[Schedule | None, Mapping[str, TierPrices], bool]] = {}

    @classmethod
    def bundled_data(cls, corrections: Corrections | None = None) -> PriceData:
        """The data bundled with the installed genai-prices."""
        label = f"genai-prices {genai_prices_version()}"
        return cls(bundled_genai_providers(), label=label, bundled=True, corrections=corrections)

    @classmethod
    def from_file(cls, path: Path, corrections: Corrections | None = None) -> PriceData:
        """The providers of a genai-prices JSON data file.

        Raises:
            PriceFileError: The file cannot be read or is not genai-prices data this version reads.
        """
        label = f"genai-prices data {path.name}"
        return cls(_load_data_file(path), label=label, bundled=False, corrections=corrections)

    def uncorrected(
        self, provider_id: str, model_id: str
    ) -> tuple[Schedule | None, dict[str, TierPrices]] | None:
        """The data's own prices for a genai-prices (provider, model) id pair, before corrections;
        ``None`` when the data has no such entry."""
        provider = self._by_id.get(provider_id)
        model = next((m for m in provider.models if m.id == model_id), None) if provider is not None else None
        if model is None:
            return None
        return compile_schedule(model), compile_service_tiers(model)

    def provider_id(self, name: str | None) -> str | None:
        """The provider id in this data for a provider name as spans carry it (see ``provider_id_for``)."""
        if self.bundled:
            return provider_id_for(name)
        return provider_id_in(self.providers, name)

    def unknown_provider_message(self, name: str) -> str:
        known = ", ".join(sorted(self._by_id))
        return f"unknown provider {name!r}; use an OTel provider name or a genai-prices id ({known})"

    def find(self, model_ref: str, provider_id: str | None) -> Match | None:
        """The data's price for a model id as a span carries it, trying the id forms real spans use."""
        ref = model_ref.strip().lower()
        if not ref:
            return None
        for candidate, candidate_provider in model_ref_candidates(ref, provider_id, self.provider_id):
            found = self._find_in(candidate, candidate_provider)
            if found is not None:
                return self._match(found, self._resource_of(ref, candidate))
        if provider_id is None:
            # No provider named, and no provider claims the id by its naming pattern: an id that
            # exactly one first-party provider prices (text-embedding-3-small is OpenAI's) is theirs.
            owners = [
                (provider, model)
                for provider in self.providers
                if provider.model_match is not None
                and (model := provider.find_model(ref, all_providers=self.providers)) is not None
            ]
            if len(owners) == 1:
                return self._match(owners[0], None)
        return None

    def _match(self, found: tuple[gp_types.Provider, gp_types.ModelInfo], deployment: str | None) -> Match:
        provider, model = found
        schedule, tiers, corrected = self._schedule_for(provider, model)
        return Match(
            schedule=schedule,
            free=False,
            model_id=model.id,
            provider_id=provider.id,
            user=False,
            deployment=deployment,
            service_tiers=tiers,
            corrected=corrected,
        )

    def _resource_of(self, ref: str, candidate: str) -> str | None:
        """``myres`` when ``myres/gpt-4o`` was priced as ``gpt-4o``: the resource (deployment) it names.

        Not for ``provider/model`` ids (``openai/gpt-4o``, OpenRouter vendors) nor Vertex / Fireworks
        ``.../models/...`` paths: their prefix names a provider or a catalogue, not a deployment."""
        if candidate == ref or "/" not in ref:
            return None
        resource, _, tail = ref.rpartition("/")
        if tail != candidate or "models" in resource.split("/"):
            return None
        if self.provider_id(resource.split("/", 1)[0]) is not None or self._find_in(ref, "openrouter"):
            return None
        return resource

    def _find_in(
        self, model_ref: str, provider_id: str | None
    ) -> tuple[gp_types.Provider, gp_types.ModelInfo] | None:
        """genai-prices' own lookup (provider by id, else by model_match), on this data."""
        if provider_id is not None:
            provider = self._by_id.get(provider_id)
            if provider is None:
                return None
            model = provider.find_model(model_ref, all_providers=self.providers)
            return (provider, model) if model is not None else None
        for provider in self.providers:
            if provider.model_match is not None and provider.model_match.is_match(model_ref):
                model = provider.find_model(model_ref, all_providers=self.providers)
                return (provider, model) if model is not None else None
        return None

    def _schedule_for(
        self, provider: gp_types.Provider, model: gp_types.ModelInfo
    ) -> tuple[Schedule | None, Mapping[str, TierPrices], bool]:
        key = (provider.id, model.id)
        try:
            return self._schedules[key]
        except KeyError:
            schedule, tiers = compile_schedule(model), compile_service_tiers(model)
            corrected = False
            if self.corrections is not None:
                schedule, tiers, corrected = self.corrections.apply(provider.id, model.id, schedule, tiers)
            compiled = (schedule, tiers, corrected)
            self._schedules[key] = compiled
            return compiled


def genai_prices_version() -> str:
    """The installed genai-prices version."""
    from genai_prices import __version__  # noqa: PLC0415 - lazy: importing genai-prices costs ~0.5 s

    return str(__version__)


def _load_data_file(path: Path) -> list[gp_types.Provider]:
    try:
        raw = json.loads(path.read_bytes())
    except OSError as exc:
        raise PriceFileError(
            f"genai-prices data file {str(path)!r}: cannot be read: {exc.strerror or exc}"
        ) from exc
    except ValueError as exc:
        raise PriceFileError(f"genai-prices data file {str(path)!r}: invalid JSON: {exc}") from exc
    if not isinstance(raw, list):
        raise PriceFileError(f"genai-prices data file {str(path)!r}: expected a JSON array of providers")
    try:
        return genai_providers_from_json(raw)
    except Exception as exc:  # pydantic's ValidationError and whatever a future schema raises
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PriceFileError(
            f"genai-prices data file {str(path)!r}: not in the format genai-prices "
            f"{genai_prices_version()} reads: {first_line}"
        ) from exc
