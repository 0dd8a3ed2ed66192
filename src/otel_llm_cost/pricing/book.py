"""Price normalised usage exactly: :class:`PriceBook`, a layered, cached price book over genai-prices data.

Layers, highest first:

1. a cost the provider itself reported (``reported_cost_usd``; status ``reported``);
2. the user price file (``OTEL_LLM_COST_PRICES`` or :meth:`PriceBook.from_file`): per-model and
   per-deployment prices, aliases, discounts and free models (:mod:`.user_layer`);
3. our corrections, a small dated file shipped with the package, each entry citing the provider's
   price page (:mod:`.corrections`);
4. the genai-prices data bundled with the installed ``genai-prices``, or a newer genai-prices data
   file the user points at with ``OTEL_LLM_COST_PRICE_DATA`` (:mod:`.sources`).

A call's OpenAI service tier picks the price table of that tier (:mod:`.service_tiers`).

genai-prices' ``calc_price`` costs ~100 us per call. On a span pipeline that is too much, so a
:class:`PriceBook` resolves each (model, provider) once (:mod:`.resolution`), with the entry's prices
compiled into per-token Decimal rates for every price period and long-context tier
(:mod:`.compiler`), and keeps the result in a bounded cache: pricing a call is then a dict lookup
and a handful of Decimal multiplications (:func:`.rates.charge`). The test suite proves the result
equals ``genai_prices.calc_price`` for real models.

A PriceBook is an immutable snapshot: it never re-reads its files and never fetches anything.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Final

from otel_llm_cost import _config
from otel_llm_cost._logging import log_once
from otel_llm_cost._money import MONEY_CONTEXT, MONEY_QUANTUM
from otel_llm_cost.exceptions import PriceFileError, UnknownModelError
from otel_llm_cost.pricing.corrections import Corrections, load_corrections
from otel_llm_cost.pricing.price_file import load_price_file
from otel_llm_cost.pricing.rates import charge, plain_pico
from otel_llm_cost.pricing.resolution import Resolved, Resolver, unit_prices_of
from otel_llm_cost.pricing.results import CostBreakdown, CostStatus, UnitPrices
from otel_llm_cost.pricing.service_tiers import STANDARD_TIERS
from otel_llm_cost.pricing.sources import PriceData
from otel_llm_cost.pricing.user_layer import UserLayer

if TYPE_CHECKING:
    from otel_llm_cost.conventions.usage import Usage
    from otel_llm_cost.pricing.rates import Card

# The result types and provider_id_for stay importable from here, where they were first defined.
__all__ = ["PriceBook"]

_logger = logging.getLogger("otel_llm_cost.pricing")

_DEFAULT_CACHE_SIZE: Final = 4096


class PriceBook:
    """Prices LLM calls from layered price data, with a bounded cache of resolved prices.

    Build one at configuration time and share it: it is immutable and thread-safe, and its cache
    is what makes pricing a call cheap.

    Example::

        book = PriceBook.default()
        cost = book.compute_cost(Usage(input_tokens=1000, output_tokens=500, request_model="gpt-4o"))
        cost.total_usd  # Decimal('0.007500000000')

    Args:
        price_file: A user price file (TOML, or JSON when the name ends in ``.json``) layered over
            the price data. ``None``: no user layer.
        data_file: A genai-prices JSON data file to use instead of the data bundled with the
            installed genai-prices (how to get newer prices without upgrading). ``None``: bundled.
        corrections_file: A corrections file to use instead of the one shipped with the package
            (JSON, the format of ``otel_llm_cost/pricing/corrections.json``). ``None``: shipped.
        cache_size: How many (model, provider) resolutions to keep (each holds a few Decimals).

    Raises:
        PriceFileError: A file cannot be read or is invalid; the message names the file, the entry
            and the field.
        ValueError: ``cache_size`` is not a positive integer.
    """

    def __init__(
        self,
        price_file: str | os.PathLike[str] | None = None,
        *,
        data_file: str | os.PathLike[str] | None = None,
        corrections_file: str | os.PathLike[str] | None = None,
        cache_size: int = _DEFAULT_CACHE_SIZE,
    ) -> None:
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size <= 0:
            raise ValueError(f"cache_size must be a positive integer, got {cache_size!r}")
        self._cache_size = cache_size
        corrections = load_corrections(corrections_file)
        self._data = (
            PriceData.from_file(Path(data_file), corrections)
            if data_file is not None
            else PriceData.bundled_data(corrections)
        )
        self._user = UserLayer(load_price_file(price_file), self._data) if price_file is not None else None
        self._resolver = Resolver(self._data, self._user)
        self._cache: dict[tuple[str, str | None], Resolved] = {}
        self._lock = threading.Lock()

    @classmethod
    def default(cls) -> PriceBook:
        """The bundled genai-prices data plus the user file named by ``OTEL_LLM_COST_PRICES``.

        ``OTEL_LLM_COST_PRICE_DATA`` may name a newer genai-prices data file to use instead of the
        bundled data.

        A file the environment names that is missing or invalid is a bad environment value: it is
        logged (ERROR, once per process, naming the variable, the file and the problem) and left
        out, and the rest is used (the bundled data when the data file is bad), so telemetry never
        stops an application from starting. Pass the file explicitly (:meth:`from_file`, or
        ``PriceBook(path, data_file=...)``) to have it raise instead.

        Returns:
            The price book.
        """
        price_file, data_file = _config.PRICES.get(), _config.PRICE_DATA.get()
        if data_file is not None:
            try:
                book = cls(data_file=data_file)
            except PriceFileError as exc:
                _log_ignored_file(_config.PRICE_DATA.name, exc)
                data_file = None
            else:
                if price_file is None:
                    return book
        if price_file is not None:
            try:
                return cls(price_file, data_file=data_file)
            except PriceFileError as exc:
                _log_ignored_file(_config.PRICES.name, exc)
        return cls(data_file=data_file)

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], *, data_file: str | os.PathLike[str] | None = None
    ) -> PriceBook:
        """The user price file at ``path`` layered over the bundled (or ``data_file``) prices.

        Raises:
            PriceFileError: The file is missing or invalid (the message names file, entry and field).
        """
        return cls(path, data_file=data_file)

    @property
    def data_source(self) -> str:
        """The lowest layer: ``genai-prices <version>`` or ``genai-prices data <file name>``."""
        return self._data.label

    @property
    def corrections(self) -> Corrections:
        """Our corrections layered over the data (see :mod:`otel_llm_cost.pricing.corrections`)."""
        corrections = self._data.corrections
        assert corrections is not None  # noqa: S101 - every book loads them
        return corrections

    @property
    def data(self) -> PriceData:
        """The lowest layer: genai-prices' data (with :attr:`corrections` applied to what it finds)."""
        return self._data

    @property
    def price_file(self) -> Path | None:
        """The user price file this book layers over the data, if any."""
        return self._user.file.path if self._user is not None else None

    def compute_cost(
        self,
        usage: Usage,
        *,
        at: datetime | None = None,
        reported_cost_usd: Decimal | None = None,
    ) -> CostBreakdown:
        """Price one call.

        Never raises for data problems: an unknown model, a missing model attribute or a span
        without token counts gives ``status=UNPRICED``, ``total_usd=None`` and a ``reason``.

        Args:
            usage: The normalised usage (``input_tokens`` includes cache reads and writes;
                reasoning is inside ``output_tokens`` and charged once).
            at: When the call started; picks the price in force then. Naive means UTC.
                ``None``: now.
            reported_cost_usd: What the provider itself reported the call cost. When given (finite,
                non-negative) it is the cost, with ``status=REPORTED`` and ``source="provider"``.

        Returns:
            The cost by token kind, quantized to :data:`MONEY_QUANTUM`.
        """
        return self._compute(usage, at, None, reported_cost_usd)

    def compute_cost_at_ns(
        self, usage: Usage, start_time_ns: int | None, reported_cost_usd: Decimal | None = None
    ) -> CostBreakdown:
        """:meth:`compute_cost` at a span's start time in epoch nanoseconds (``None``: now).

        The span path's entry: the start becomes a ``datetime`` only for a model whose price
        depends on the date (~0.5 us saved on the others, almost all of them).
        """
        if type(self) is not PriceBook and type(self).compute_cost is not PriceBook.compute_cost:
            # A subclass that prices differently: its compute_cost decides.
            at = None if start_time_ns is None else datetime.fromtimestamp(start_time_ns / 1e9, tz=UTC)
            return self.compute_cost(usage, at=at, reported_cost_usd=reported_cost_usd)
        return self._compute(usage, None, start_time_ns, reported_cost_usd)

    def plain_cost_pico(self, usage: Usage, start_ns: int | None) -> tuple[int, int, CostBreakdown] | None:
        """The span path's shortcut (:func:`.rates.plain_pico`) with the labels; ``None``: not plain."""
        if type(self) is not PriceBook or not usage.usage_reported:
            return None
        resolved = self._lookup(usage.response_model or usage.request_model, usage.provider)
        schedule = resolved.schedule
        tier = usage.service_tier
        if schedule is None or not (tier is None or tier in STANDARD_TIERS or resolved.service_tiers is None):
            return None
        card = schedule.fixed or schedule.card_at(_start(None, start_ns))
        amounts = plain_pico(usage, card)
        return None if amounts is None else (amounts[0], amounts[1], resolved.outcome)

    def _compute(
        self, usage: Usage, at: datetime | None, start_time_ns: int | None, reported_cost_usd: Decimal | None
    ) -> CostBreakdown:
        if reported_cost_usd is not None:
            reported = self._reported(usage, reported_cost_usd)
            if reported is not None:
                return reported
        if not getattr(usage, "usage_reported", True):
            return CostBreakdown(
                status=CostStatus.UNPRICED,
                total_usd=None,
                provider_id=self._lookup(usage.model, usage.provider).outcome.provider_id,
                reason="no usage reported",
            )
        resolved = self._lookup(usage.response_model or usage.request_model, usage.provider)
        schedule = resolved.schedule
        if schedule is None:
            return resolved.outcome
        tier = getattr(usage, "service_tier", None)
        card: Card | None
        if tier is None or tier in STANDARD_TIERS or resolved.service_tiers is None:
            card = schedule.fixed
            if card is None:
                card = schedule.card_at(_start(at, start_time_ns))
        else:
            card = _tier_card(resolved, tier, _start(at, start_time_ns))
            if card is None:
                return _unpriced_tier(resolved, tier)
        try:
            return charge(usage, resolved.outcome, card)
        except (ArithmeticError, TypeError, ValueError) as exc:
            # Token counts beyond any real call (Usage drops most invalid values): visible, not raised.
            log_once(_logger, "pricing.arithmetic", logging.WARNING, "cannot price %r: %r", usage, exc)
            return CostBreakdown(
                status=CostStatus.UNPRICED,
                total_usd=None,
                source=resolved.outcome.source,
                model_id=resolved.outcome.model_id,
                provider_id=resolved.outcome.provider_id,
                reason=f"cost out of range: {exc!r}",
            )

    def unit_prices(
        self,
        model: str,
        provider: str | None = None,
        at: datetime | None = None,
        *,
        service_tier: str | None = None,
    ) -> UnitPrices:
        """What ``model`` costs per 1M tokens of each kind at ``at``, and where the price comes from.

        Args:
            model: A model id as spans carry it (dated, Bedrock, Vertex, ``provider/model``, a
                deployment alias from the price file...).
            provider: A provider name (OTel, OpenInference or genai-prices id), or ``None``.
            at: The moment whose price to show; naive means UTC; ``None``: now.
            service_tier: An OpenAI service tier (``flex``, ``priority``, ``batch``...): show that
                tier's prices. ``None``, ``default``, ``auto``: the standard prices.

        Returns:
            The unit prices, their tiers and validity period.

        Raises:
            UnknownModelError: No layer prices ``model``, or not at ``service_tier``.
        """
        resolved = self._lookup(model, provider)
        if resolved.outcome.status is CostStatus.UNPRICED:
            raise UnknownModelError(resolved.outcome.reason or f"no price for model {model!r}")
        tier = service_tier.strip().lower() if service_tier else None
        if (
            resolved.schedule is None
            or tier is None
            or tier in STANDARD_TIERS
            or resolved.service_tiers is None
        ):
            return unit_prices_of(resolved, model, at, self._data.label)
        card = _tier_card(resolved, tier, at)
        if card is None:
            raise UnknownModelError(_unpriced_tier(resolved, tier).reason or f"no {tier} price for {model!r}")
        return unit_prices_of(resolved, model, at, self._data.label, card=card)

    def cache_info(self) -> tuple[int, int]:
        """``(entries, capacity)`` of the resolution cache (for diagnostics)."""
        return len(self._cache), self._cache_size

    def _reported(self, usage: Usage, reported_cost_usd: Decimal) -> CostBreakdown | None:
        try:
            reported = Decimal(reported_cost_usd)
            valid = reported.is_finite() and reported >= 0
        except (TypeError, ValueError, ArithmeticError):
            valid = False
        if not valid:
            _logger.debug(
                "ignoring an invalid provider-reported cost %r; pricing the call instead", reported_cost_usd
            )
            return None
        return CostBreakdown(
            status=CostStatus.REPORTED,
            total_usd=MONEY_CONTEXT.quantize(reported, MONEY_QUANTUM),
            source="provider",
            model_id=usage.model,
            provider_id=self._data.provider_id(usage.provider),
        )

    def _lookup(self, model_ref: str | None, provider_name: str | None) -> Resolved:
        key = (model_ref or "", provider_name)
        resolved = self._cache.get(key)
        if resolved is not None:
            return resolved
        with self._lock:
            resolved = self._cache.get(key)
            if resolved is None:
                resolved = self._resolve(model_ref, provider_name)
                if len(self._cache) >= self._cache_size:
                    # Evict the oldest insertion: a cheap bound that keeps the hot set warm.
                    self._cache.pop(next(iter(self._cache)), None)
                self._cache[key] = resolved
        return resolved

    def _resolve(self, model_ref: str | None, provider_name: str | None) -> Resolved:
        try:
            return self._resolver.resolve(model_ref, provider_name)
        except Exception as exc:  # the span path must never raise; an unpriced call is visible
            log_once(_logger, "pricing.resolve", logging.WARNING, "pricing %r failed: %r", model_ref, exc)
            return Resolved(
                None,
                CostBreakdown(status=CostStatus.UNPRICED, total_usd=None, reason=f"pricing failed: {exc!r}"),
            )


def _start(at: datetime | None, start_time_ns: int | None) -> datetime | None:
    """When the call started: ``at``, else the span's start in epoch nanoseconds (``None``: now)."""
    if start_time_ns is None:
        return at
    return datetime.fromtimestamp(start_time_ns / 1e9, tz=UTC)


def _tier_card(resolved: Resolved, tier: str, at: datetime | None) -> Card | None:
    tiers = resolved.service_tiers
    prices = tiers.get(tier) if tiers is not None else None
    return prices.card_at(at) if prices is not None else None


def _unpriced_tier(resolved: Resolved, tier: str) -> CostBreakdown:
    # Never the standard price: flex costs half of it, priority up to twice.
    labels = resolved.outcome
    prices = resolved.service_tiers.get(tier) if resolved.service_tiers is not None else None
    since = prices.first_priced() if prices is not None else None
    if since is not None:
        reason = f"no {tier!r} service-tier price for {labels.model_id} before {since} in {labels.source}"
    else:
        reason = f"unknown service tier {tier!r}: {labels.source} has no {tier} price for {labels.model_id}"
    return CostBreakdown(
        status=CostStatus.UNPRICED,
        total_usd=None,
        source=labels.source,
        model_id=labels.model_id,
        provider_id=labels.provider_id,
        deployment=labels.deployment,
        reason=reason,
    )


def _log_ignored_file(variable: str, exc: PriceFileError) -> None:
    log_once(
        _logger,
        f"pricing.env.{variable}",
        logging.ERROR,
        "ignoring %s: %s; pricing without it (set the variable to a valid file, or unset it)",
        variable,
        exc,
    )
