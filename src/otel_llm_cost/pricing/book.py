"""Price normalised usage exactly: a layered, cached PriceBook over genai-prices data.

Layers, highest first:

1. a cost the provider itself reported (``reported_cost_usd``; status ``reported``);
2. the user price file (``OTEL_LLM_COST_PRICES`` or :meth:`PriceBook.from_file`): per-model and
   per-deployment prices, aliases, discounts and free models;
3. the genai-prices data bundled with the installed ``genai-prices`` (or a newer genai-prices data
   file the user points at with ``OTEL_LLM_COST_PRICE_DATA``).

genai-prices' ``calc_price`` costs ~100 us per call. On a span pipeline that is too much, so a
:class:`PriceBook` resolves each (model, provider) once, turns the entry's prices into per-token
Decimal rates for every price period (start date) and long-context tier, and keeps them in a
bounded cache: pricing a call is then a dict lookup and a handful of Decimal multiplications. The
test suite proves the result equals ``genai_prices.calc_price`` for real models.

A PriceBook is an immutable snapshot: it never re-reads its files and never fetches anything, and
it keeps its own reference to the data it loaded, so genai-prices' process-wide ``UpdatePrices``
cannot change its prices behind its back.
"""

from __future__ import annotations

import bisect
import dataclasses
import enum
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from otel_llm_cost import _config
from otel_llm_cost._logging import log_once
from otel_llm_cost._money import MONEY_CONTEXT, MONEY_QUANTUM, TOKENS_PER_MILLION
from otel_llm_cost.exceptions import PriceFileError, UnknownModelError
from otel_llm_cost.pricing.price_file import PriceEntry, PriceFile, PriceOverrides, load_price_file

if TYPE_CHECKING:
    from genai_prices import types as gp_types

    from otel_llm_cost.conventions.usage import Usage

__all__ = [
    "MONEY_QUANTUM",
    "CostBreakdown",
    "CostStatus",
    "PriceBook",
    "PriceTier",
    "UnitPrices",
    "provider_id_for",
]

_logger = logging.getLogger("otel_llm_cost.pricing")


_CTX: Final = MONEY_CONTEXT
_ZERO: Final = Decimal(0)
_ZERO_MONEY: Final = _CTX.quantize(_ZERO, MONEY_QUANTUM)
"""What a zero token count costs once quantized (``0E-12``), as the general path computes it."""
_MILLION: Final = TOKENS_PER_MILLION
_DEFAULT_CACHE_SIZE: Final = 4096
_LOGGED_UNPRICED_CAP: Final = 1024


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
    """Which layer priced it: ``provider``, ``user:<file>``, ``genai-prices <version>``."""
    model_id: str | None = None
    """The price entry that matched (for example ``claude-sonnet-4-0``)."""
    provider_id: str | None = None
    reason: str | None = None
    """Why the call is unpriced (unknown model, missing model attribute...)."""
    deployment: str | None = None
    """The alias or deployment name from the user price file that mapped the call onto ``model_id``."""
    request_usd: Decimal | None = None
    """A fixed per-request fee, for the few models that charge one (for example Perplexity Sonar)."""


def _priced_breakdown_builder() -> Callable[..., CostBreakdown]:
    """A constructor for priced results that fills the slots directly.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``; for 13 fields
    that measured ~7x slower than a plain dataclass and was half the cost of pricing a call. Slot
    descriptors set the same fields without the detour; the result is an ordinary, immutable
    CostBreakdown (tests check it equals one built the normal way).
    """
    (
        set_status,
        set_total,
        set_input,
        set_cache_read,
        set_cache_write,
        set_output,
        set_saved,
        set_source,
        set_model_id,
        set_provider_id,
        set_reason,
        set_deployment,
        set_request,
    ) = (getattr(CostBreakdown, f.name).__set__ for f in dataclasses.fields(CostBreakdown))
    new = object.__new__
    priced = CostStatus.PRICED

    def build(  # noqa: PLR0917 - positional on purpose: the per-call hot path
        total_usd: Decimal,
        input_usd: Decimal,
        cache_read_usd: Decimal,
        cache_write_usd: Decimal,
        output_usd: Decimal,
        cache_saved_usd: Decimal,
        request_usd: Decimal,
        labels: CostBreakdown,
    ) -> CostBreakdown:
        result: CostBreakdown = new(CostBreakdown)
        set_status(result, priced)
        set_total(result, total_usd)
        set_input(result, input_usd)
        set_cache_read(result, cache_read_usd)
        set_cache_write(result, cache_write_usd)
        set_output(result, output_usd)
        set_saved(result, cache_saved_usd)
        set_source(result, labels.source)
        set_model_id(result, labels.model_id)
        set_provider_id(result, labels.provider_id)
        set_reason(result, None)
        set_deployment(result, labels.deployment)
        set_request(result, request_usd)
        return result

    return build


_new_priced = _priced_breakdown_builder()


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


# --------------------------------------------------------------------------------------------
# Provider names

# OTel GenAI `gen_ai.provider.name` values, the older `gen_ai.system` values (including
# OpenLLMetry's capitalised ones, compared lower-cased), and OpenInference `llm.provider` /
# `llm.system` values, onto genai-prices provider ids. `None` means "known, but genai-prices has
# no such provider": the model alone decides the price.
_PROVIDER_ALIASES: Final[dict[str, str | None]] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "aws.bedrock": "aws",
    "aws": "aws",
    "bedrock": "aws",
    "amazon": "aws",
    "amazon.bedrock": "aws",
    "aws_bedrock": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.openai": "azure",
    "az.ai.inference": "azure",
    "azure": "azure",
    "azure_openai": "azure",
    "azureopenai": "azure",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "vertex": "google",
    "gemini": "google",
    "google": "google",
    "google_genai": "google",
    "google.genai": "google",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "mistral": "mistral",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "x-ai": "x-ai",
    "deepseek": "deepseek",
    "groq": "groq",
    "cohere": "cohere",
    "perplexity": "perplexity",
    "openrouter": "openrouter",
    "together": "together",
    "together_ai": "together",
    "togetherai": "together",
    "fireworks": "fireworks",
    "fireworks_ai": "fireworks",
    "ibm.watsonx.ai": None,
    "watsonx": None,
    "ollama": None,
    "vllm": None,
    "lmstudio": None,
    "litellm": None,
}


def _normalise_provider_name(name: str) -> str:
    return name.strip().lower().replace(" ", "_")


def _provider_id_in(providers: Sequence[gp_types.Provider], name: str | None) -> str | None:
    if not name:
        return None
    key = _normalise_provider_name(name)
    if key in _PROVIDER_ALIASES:
        return _PROVIDER_ALIASES[key]
    from genai_prices.data_snapshot import find_provider_by_id  # noqa: PLC0415 - lazy: importing genai-prices costs ~0.5 s

    provider = find_provider_by_id(list(providers), key)
    return provider.id if provider is not None else None


@lru_cache(maxsize=256)
def provider_id_for(otel_provider_name: str | None) -> str | None:
    """The genai-prices provider id for a provider name as spans carry it.

    Understands OTel GenAI ``gen_ai.provider.name`` values (``aws.bedrock``, ``azure.ai.openai``,
    ``gcp.vertex_ai``, ``x_ai``...), legacy ``gen_ai.system`` values in any case (``Anthropic``,
    ``Bedrock``, ``AWS``, ``az.ai.inference``), OpenInference ``llm.provider`` / ``llm.system``
    values (``mistralai``, ``xai``, ``vertexai``) and genai-prices' own ids.

    Args:
        otel_provider_name: The attribute value, or ``None``.

    Returns:
        A genai-prices provider id (``openai``, ``aws``, ``google``...), or ``None`` when the name is
        missing or names a provider genai-prices has no prices for (the model alone then decides).
    """
    return _provider_id_in(_bundled_providers(), otel_provider_name)


# --------------------------------------------------------------------------------------------
# Rates: the resolved prices of one entry in one price period


class _Rates(NamedTuple):
    """USD per token (per request for ``request``) actually charged for each kind."""

    input: Decimal
    cache_read: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    output: Decimal
    request: Decimal

    def scaled(self, multiplier: Decimal) -> _Rates:
        return _Rates(*(_CTX.multiply(rate, multiplier) for rate in self))


@dataclass(frozen=True, slots=True)
class _Card:
    """The rates of one price period: base rates plus long-context tiers."""

    base: _Rates
    tiers: tuple[tuple[int, _Rates], ...] = ()
    """``(threshold, rates)`` in DECREASING threshold order: the first with input > threshold wins."""

    def rates_for(self, input_tokens: int) -> _Rates:
        for threshold, rates in self.tiers:
            if input_tokens > threshold:
                return rates
        return self.base

    def map(self, transform: Callable[[_Rates], _Rates]) -> _Card:
        return _Card(transform(self.base), tuple((t, transform(r)) for t, r in self.tiers))


class _Schedule:
    """Which card is in force when: fixed, by UTC start date (bisect), or by genai-prices' own
    constraint objects (time-of-day off-peak prices)."""

    __slots__ = ("_bounds", "_cards", "_conditions", "_dates", "fixed")

    def __init__(
        self,
        *,
        fixed: _Card | None = None,
        dates: tuple[date, ...] = (),
        cards: tuple[_Card, ...] = (),
        conditions: tuple[tuple[Any, _Card], ...] = (),
    ) -> None:
        self.fixed = fixed
        self._dates = dates
        self._bounds = tuple(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() for d in dates)
        self._cards = cards
        self._conditions = conditions

    def card_at(self, at: datetime | None) -> _Card:
        if self.fixed is not None:
            return self.fixed
        if self._conditions:
            return self._card_by_condition(at or datetime.now(tz=UTC))
        ts = time.time() if at is None else _timestamp(at)
        return self._cards[bisect.bisect_right(self._bounds, ts)]

    def _card_by_condition(self, at: datetime) -> _Card:
        # Same rule as genai-prices ModelInfo.get_prices: the last active price wins, else the first.
        for constraint, card in reversed(self._conditions):
            if constraint is None or constraint.active(at):
                found: _Card = card
                return found
        return self._conditions[0][1]

    def validity(self, at: datetime | None) -> tuple[date | None, date | None]:
        if self.fixed is not None or self._conditions:
            return None, None
        ts = time.time() if at is None else _timestamp(at)
        index = bisect.bisect_right(self._bounds, ts)
        valid_from = self._dates[index - 1] if index > 0 else None
        valid_until = self._dates[index] if index < len(self._dates) else None
        return valid_from, valid_until

    @property
    def time_of_day(self) -> bool:
        return bool(self._conditions)

    def map(self, transform: Callable[[_Card], _Card]) -> _Schedule:
        return _Schedule(
            fixed=transform(self.fixed) if self.fixed is not None else None,
            dates=self._dates,
            cards=tuple(transform(card) for card in self._cards),
            conditions=tuple((constraint, transform(card)) for constraint, card in self._conditions),
        )


def _timestamp(at: datetime) -> float:
    # genai-prices treats a naive timestamp as UTC; so do we (datetime.timestamp() would use local time).
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.timestamp()


def _per_token(price_mtok: Decimal) -> Decimal:
    return _CTX.divide(price_mtok, _MILLION)


def _card_from_model_price(model_price: gp_types.ModelPrice) -> _Card | None:
    """Turn one genai-prices ModelPrice into rates for the kinds a normalised Usage carries.

    genai-prices charges a token at the most specific unit the model prices (its "leaf" rule):
    cache reads fall back to the input price when the model has no cache-read price, 1-hour cache
    writes to the cache-write price, cache writes to the input price. Units our Usage never
    reports (audio, images, web searches) are 0 there too. Returns ``None`` for an entry with no
    token price at all, so it is reported unpriced instead of costing a silent 0.
    """
    from genai_prices.types import TieredPrices  # noqa: PLC0415 - lazy: importing genai-prices costs ~0.5 s

    def get(key: str) -> Decimal | TieredPrices | None:
        value = model_price.__dict__.get(key)
        return value if isinstance(value, Decimal | TieredPrices) else None

    input_price = get("input_mtok")
    output_price = get("output_mtok")
    if input_price is None and output_price is None:
        return None
    cache_read = _first(get("cache_read_mtok"), input_price)
    cache_write = _first(get("cache_write_mtok"), input_price)
    # genai-prices only uses a 5m-specific price when usage reports 5m tokens separately; no
    # bundled model has one today, and when one does it is the right price for the 5m part.
    cache_write_5m = _first(get("cache_write_5m_mtok"), cache_write)
    cache_write_1h = _first(get("cache_write_1h_mtok"), cache_write)
    by_kind = (input_price, cache_read, cache_write_5m, cache_write_1h, output_price)
    request_k = get("requests_kcount")
    request = _CTX.divide(request_k, Decimal(1000)) if isinstance(request_k, Decimal) else _ZERO

    thresholds = sorted(
        {tier.start for price in by_kind if isinstance(price, TieredPrices) for tier in price.tiers}
    )

    def price_at(price: Decimal | TieredPrices | None, threshold: int | None) -> Decimal:
        if price is None:
            return _ZERO
        if isinstance(price, TieredPrices):
            applicable = price.base
            if threshold is not None:
                for tier in price.tiers:
                    if tier.start <= threshold:
                        applicable = tier.price
            return _per_token(applicable)
        return _per_token(price)

    def rates_at(threshold: int | None) -> _Rates:
        return _Rates(
            input=price_at(input_price, threshold),
            cache_read=price_at(cache_read, threshold),
            cache_write_5m=price_at(cache_write_5m, threshold),
            cache_write_1h=price_at(cache_write_1h, threshold),
            output=price_at(output_price, threshold),
            request=request,
        )

    tiers = tuple((threshold, rates_at(threshold)) for threshold in reversed(thresholds))
    return _Card(rates_at(None), tiers)


def _first(
    value: Decimal | gp_types.TieredPrices | None, fallback: Decimal | gp_types.TieredPrices | None
) -> Decimal | gp_types.TieredPrices | None:
    # Not `or`: a price of exactly 0 (free cache reads) is a price, not a missing one.
    return value if value is not None else fallback


def _schedule_from_model(model: gp_types.ModelInfo) -> _Schedule | None:
    from genai_prices.types import ModelPrice, StartDateConstraint  # noqa: PLC0415 - lazy: importing genai-prices costs ~0.5 s

    if isinstance(model.prices, ModelPrice):
        card = _card_from_model_price(model.prices)
        return _Schedule(fixed=card) if card is not None else None
    conditional = list(model.prices)
    if not conditional:
        return None
    cards = [_card_from_model_price(c.prices) for c in conditional]
    if any(card is None for card in cards):
        return None
    checked = [card for card in cards if card is not None]
    if all(c.constraint is None or isinstance(c.constraint, StartDateConstraint) for c in conditional):
        dates = tuple(
            sorted(
                {
                    c.constraint.start_date
                    for c in conditional
                    if isinstance(c.constraint, StartDateConstraint)
                }
            )
        )
        # Evaluate genai-prices' own rule once per interval between start dates.
        probes = [datetime(1970, 1, 1, tzinfo=UTC)] + [
            datetime(d.year, d.month, d.day, tzinfo=UTC) for d in dates
        ]
        segment_cards = tuple(checked[_active_index(conditional, probe)] for probe in probes)
        if len(dates) == 0:
            return _Schedule(fixed=segment_cards[0])
        return _Schedule(dates=dates, cards=segment_cards)
    return _Schedule(
        conditions=tuple((c.constraint, card) for c, card in zip(conditional, checked, strict=True))
    )


def _active_index(conditional: Sequence[gp_types.ConditionalPrice], at: datetime) -> int:
    for index in range(len(conditional) - 1, -1, -1):
        constraint = conditional[index].constraint
        if constraint is None or constraint.active(at):
            return index
    return 0


# --------------------------------------------------------------------------------------------
# Bundled / data-file provider lists


def _bundled_providers() -> list[gp_types.Provider]:
    # Imported on first use: the bundled data module takes ~0.5 s to import.
    from genai_prices.data import providers  # noqa: PLC0415 - lazy: importing genai-prices costs ~0.5 s

    return providers


def _genai_prices_version() -> str:
    from genai_prices import __version__  # noqa: PLC0415 - lazy: importing genai-prices costs ~0.5 s

    return str(__version__)


def _log_ignored_file(variable: str, exc: PriceFileError) -> None:
    log_once(
        _logger,
        f"pricing.env.{variable}",
        logging.ERROR,
        "ignoring %s: %s; pricing without it (set the variable to a valid file, or unset it)",
        variable,
        exc,
    )


def _load_data_file(path: Path) -> list[gp_types.Provider]:
    """Providers from a genai-prices JSON data file (the file genai-prices publishes)."""
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
        # The loader genai-prices' own UpdatePrices.fetch uses for the same published file.
        from genai_prices.types import _providers_from_raw  # noqa: PLC0415 - lazy: importing genai-prices costs ~0.5 s

        providers: list[gp_types.Provider] = _providers_from_raw(raw)
    except Exception as exc:  # pydantic's ValidationError and whatever a future schema raises
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PriceFileError(
            f"genai-prices data file {str(path)!r}: not in the format genai-prices "
            f"{_genai_prices_version()} reads: {first_line}"
        ) from exc
    return providers


# --------------------------------------------------------------------------------------------
# Resolution


_BEDROCK_ID: Final = re.compile(r"^(?:arn:aws:bedrock:|(?:[a-z]{2,6}\.)?[a-z0-9-]+\.[a-z])")


@dataclass(frozen=True, slots=True)
class _Resolved:
    """Everything compute_cost needs for one (model, provider), computed once."""

    schedule: _Schedule | None
    """``None`` when the outcome does not depend on usage (unpriced or free)."""
    outcome: CostBreakdown
    """Template: the fixed result (unpriced/free) or the labels (source, ids) of a priced one."""


@dataclass(frozen=True, slots=True)
class _Match:
    """A priced entry found by resolution, before any user override is applied."""

    schedule: _Schedule | None
    free: bool
    model_id: str
    provider_id: str | None
    user: bool
    deployment: str | None = None


@dataclass(slots=True)
class _UserLayer:
    file: PriceFile
    by_key: dict[str, PriceEntry] = field(default_factory=dict)
    provider_of: dict[str, str | None] = field(default_factory=dict)
    """Entry key -> the genai-prices provider id its ``provider`` field names."""
    discounts: dict[str, Decimal] = field(default_factory=dict)
    attached_any: dict[str, PriceEntry] = field(default_factory=dict)
    """Bundled model id -> the entry overriding it for every provider."""
    attached_by_provider: dict[tuple[str, str], PriceEntry] = field(default_factory=dict)


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
        cache_size: int = _DEFAULT_CACHE_SIZE,
    ) -> None:
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size <= 0:
            raise ValueError(f"cache_size must be a positive integer, got {cache_size!r}")
        self._cache_size = cache_size
        if data_file is not None:
            data_path = Path(data_file)
            self._providers = _load_data_file(data_path)
            self._bundled = False
            self._data_source = f"genai-prices data {data_path.name}"
        else:
            self._providers = _bundled_providers()
            self._bundled = True
            self._data_source = f"genai-prices {_genai_prices_version()}"
        self._providers_by_id = {provider.id: provider for provider in self._providers}
        self._model_schedules: dict[tuple[str, str], _Schedule | None] = {}
        self._cache: dict[tuple[str, str | None], _Resolved] = {}
        self._logged_unpriced: set[str] = set()
        self._lock = threading.Lock()
        self._user: _UserLayer | None = None
        if price_file is not None:
            self._user = self._build_user_layer(load_price_file(price_file))

    # -- construction -------------------------------------------------------------------------

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
        return self._data_source

    @property
    def price_file(self) -> Path | None:
        """The user price file this book layers over the data, if any."""
        return self._user.file.path if self._user is not None else None

    def _build_user_layer(self, price_file: PriceFile) -> _UserLayer:
        layer = _UserLayer(file=price_file)
        for provider_name, multiplier in price_file.discounts:
            provider_id = self._provider_id(provider_name)
            if provider_id is None:
                raise price_file.error(
                    "discounts", provider_name, self._unknown_provider_message(provider_name)
                )
            layer.discounts[provider_id] = multiplier
        for entry in price_file.entries:
            layer.by_key[entry.key] = entry
            if entry.provider is not None:
                provider_id = self._provider_id(entry.provider)
                if provider_id is None:
                    raise price_file.error(
                        entry.where, "provider", self._unknown_provider_message(entry.provider)
                    )
                layer.provider_of[entry.key] = provider_id
            else:
                layer.provider_of[entry.key] = None
        # Install before validating: resolving an entry's upstream may go through other entries.
        self._user = layer
        for entry in price_file.entries:
            self._validate_entry(layer, entry)
        return layer

    def _unknown_provider_message(self, name: str) -> str:
        known = ", ".join(sorted(self._providers_by_id))
        return f"unknown provider {name!r}; use an OTel provider name or a genai-prices id ({known})"

    def _validate_entry(self, layer: _UserLayer, entry: PriceEntry) -> None:
        provider_id = layer.provider_of[entry.key]
        if entry.model is not None:
            try:
                match = self._resolve_user(entry, provider_id, seen=())
            except _CycleError as exc:
                raise layer.file.error(entry.where, "model", str(exc)) from None
            if match is None:
                raise layer.file.error(
                    entry.where,
                    "model",
                    f"{entry.model!r} is neither in {self._data_source} nor defined in this file",
                )
            return
        bundled = self._find_bundled(entry.name, provider_id)
        upstream_schedule = None
        if bundled is not None:
            # The entry overrides that data entry for every id resolving to it (dated ids, Bedrock...).
            provider, model = bundled
            if provider_id is not None:
                layer.attached_by_provider.setdefault((provider.id, model.id), entry)
            else:
                layer.attached_any.setdefault(model.id, entry)
            upstream_schedule = self._schedule_for(provider, model)
        if entry.free or upstream_schedule is not None:
            return
        missing = [name for name in ("input", "output") if getattr(entry.prices, name) is None]
        if missing:
            raise layer.file.error(
                entry.where,
                missing[0],
                f"{entry.name!r} has no price in {self._data_source}: give at least input and output "
                '(USD per 1M tokens), `model = "..."` to reuse a known model\'s price, or `free = true`',
            )

    # -- provider and model lookup ------------------------------------------------------------

    def _provider_id(self, name: str | None) -> str | None:
        if self._bundled:
            return provider_id_for(name)
        return _provider_id_in(self._providers, name)

    def _find_in(
        self, model_ref: str, provider_id: str | None
    ) -> tuple[gp_types.Provider, gp_types.ModelInfo] | None:
        """genai-prices' own lookup (provider by id, else by model_match), on this book's data."""
        if provider_id is not None:
            provider = self._providers_by_id.get(provider_id)
            if provider is None:
                return None
            model = provider.find_model(model_ref, all_providers=self._providers)
            return (provider, model) if model is not None else None
        for provider in self._providers:
            if provider.model_match is not None and provider.model_match.is_match(model_ref):
                model = provider.find_model(model_ref, all_providers=self._providers)
                return (provider, model) if model is not None else None
        return None

    def _find_bundled(
        self, model_ref: str, provider_id: str | None
    ) -> tuple[gp_types.Provider, gp_types.ModelInfo] | None:
        """Find a model in the data, trying the id forms seen in real spans.

        genai-prices already matches dated ids (``gpt-4o-2024-08-06``, ``claude-3-5-sonnet-20241022``),
        Vertex ids (``claude-3-5-sonnet-v2@20241022``) and Bedrock ids (when told the provider is
        ``aws``). What it misses, handled here: a provider hint that does not carry the model
        (an OpenAI-compatible proxy serving Claude), Bedrock ids without a provider hint,
        ``provider/model`` ids (OpenRouter, LiteLLM, Vertex ``publishers/.../models/...``) and
        ``resource/model`` ids.
        """
        ref = model_ref.strip().lower()
        if not ref:
            return None
        attempts: list[tuple[str, str | None]] = []
        if provider_id is not None:
            attempts.append((ref, provider_id))
        attempts.append((ref, None))
        if _BEDROCK_ID.match(ref):
            attempts.append((ref, "aws"))
        if "/" in ref:
            prefix, _, rest = ref.partition("/")
            tail = ref.rsplit("/", 1)[1]
            prefix_provider = self._provider_id(prefix)
            if prefix_provider is not None:
                attempts.append((rest, prefix_provider))
            # OpenRouter ids are `vendor/model`; they often arrive with provider `openai` because
            # OpenRouter is called through the OpenAI SDK.
            attempts.append((ref, "openrouter"))
            if provider_id is not None:
                attempts.append((tail, provider_id))
            attempts.append((tail, None))
            if _BEDROCK_ID.match(tail):
                attempts.append((tail, "aws"))
        for candidate, candidate_provider in attempts:
            found = self._find_in(candidate, candidate_provider)
            if found is not None:
                return found
        return None

    def _schedule_for(self, provider: gp_types.Provider, model: gp_types.ModelInfo) -> _Schedule | None:
        key = (provider.id, model.id)
        try:
            return self._model_schedules[key]
        except KeyError:
            schedule = _schedule_from_model(model)
            self._model_schedules[key] = schedule
            return schedule

    # -- user layer ---------------------------------------------------------------------------

    def _require_user(self) -> _UserLayer:
        if self._user is None:  # pragma: no cover - only reachable through a user entry
            raise RuntimeError("no user price layer")
        return self._user

    def _user_entry_for(self, model_ref: str, provider_id: str | None) -> PriceEntry | None:
        layer = self._user
        if layer is None:
            return None
        key = model_ref.strip().lower()
        entry = layer.by_key.get(key)
        if entry is None and "/" in key:
            # `resource/model`: a per-resource entry wins, else the entry for the upstream model.
            entry = layer.by_key.get(key.rsplit("/", 1)[1])
        if entry is None:
            return None
        entry_provider = layer.provider_of[entry.key]
        if entry_provider is not None and provider_id is not None and entry_provider != provider_id:
            return None
        return entry

    def _user_upstream(
        self, entry: PriceEntry, provider_id: str | None, seen: tuple[str, ...]
    ) -> _Match | None:
        """What an entry starts from: another entry it names, or the data's price for its model."""
        entry_provider = self._require_user().provider_of[entry.key] or provider_id
        target = entry.model or entry.name
        if entry.model is not None:
            other = self._user_entry_for(entry.model, entry_provider)
            if other is not None and other.key != entry.key:
                return self._resolve_user(other, entry_provider, seen)
        bundled = self._find_bundled(target, entry_provider)
        if bundled is None:
            return None
        provider, model = bundled
        return _Match(
            schedule=self._schedule_for(provider, model),
            free=False,
            model_id=model.id,
            provider_id=provider.id,
            user=False,
        )

    def _resolve_user(
        self, entry: PriceEntry, provider_id: str | None, seen: tuple[str, ...]
    ) -> _Match | None:
        if entry.key in seen:
            chain = " -> ".join((*seen, entry.key))
            raise _CycleError(f"aliases form a cycle: {chain}")
        entry_provider = self._require_user().provider_of[entry.key] or provider_id
        if entry.free:
            return _Match(
                schedule=None, free=True, model_id=entry.name, provider_id=entry_provider, user=True
            )
        upstream = self._user_upstream(entry, provider_id, (*seen, entry.key))
        return self._apply_entry(entry, upstream, entry_provider)

    def _apply_entry(
        self, entry: PriceEntry, upstream: _Match | None, provider_id: str | None
    ) -> _Match | None:
        layer = self._require_user()
        deployment = entry.name if entry.section in ("deployments", "aliases") else None
        if entry.free:
            return _Match(schedule=None, free=True, model_id=entry.name, provider_id=provider_id, user=True)
        if upstream is not None and upstream.free:
            return _Match(
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
            discount = layer.discounts.get(upstream.provider_id or "")
        transform = _EntryTransform(entry, discount)
        if upstream is not None and upstream.schedule is not None:
            schedule = upstream.schedule.map(transform)
        else:
            schedule = _Schedule(fixed=transform(None))
        model_id = upstream.model_id if (upstream is not None and deployment is not None) else entry.name
        return _Match(
            schedule=schedule,
            free=False,
            model_id=model_id,
            provider_id=upstream.provider_id if upstream is not None else provider_id,
            user=True,
            deployment=deployment or (upstream.deployment if upstream is not None else None),
        )

    # -- resolution ---------------------------------------------------------------------------

    def _match(self, model_ref: str, provider_name: str | None) -> _Match | None:
        provider_id = self._provider_id(provider_name)
        entry = self._user_entry_for(model_ref, provider_id)
        if entry is not None:
            return self._resolve_user(entry, provider_id, seen=())
        bundled = self._find_bundled(model_ref, provider_id)
        if bundled is None:
            return None
        provider, model = bundled
        upstream = _Match(
            schedule=self._schedule_for(provider, model),
            free=False,
            model_id=model.id,
            provider_id=provider.id,
            user=False,
        )
        layer = self._user
        if layer is None:
            return upstream
        attached = layer.attached_by_provider.get((provider.id, model.id)) or layer.attached_any.get(model.id)
        if attached is not None:
            return self._apply_entry(attached, upstream, provider.id)
        discount = layer.discounts.get(provider.id)
        if discount is not None and upstream.schedule is not None:
            return _Match(
                schedule=upstream.schedule.map(lambda card: card.map(lambda rates: rates.scaled(discount))),
                free=False,
                model_id=model.id,
                provider_id=provider.id,
                user=True,
            )
        return upstream

    def _resolve(self, model_ref: str | None, provider_name: str | None) -> _Resolved:
        if not model_ref:
            return _Resolved(
                None,
                CostBreakdown(
                    status=CostStatus.UNPRICED,
                    total_usd=None,
                    provider_id=self._provider_id(provider_name),
                    reason="no model attribute on the span",
                ),
            )
        match = self._match(model_ref, provider_name)
        user_source = f"user:{self._user.file.name}" if self._user is not None else None
        if match is None or (match.schedule is None and not match.free):
            if match is None:
                where = self._data_source + (f" or {self._user.file.name}" if self._user is not None else "")
                reason = f"no price for model {model_ref!r} in {where}"
            else:
                reason = f"the price entry for {model_ref!r} has no token prices"
            self._log_unpriced(model_ref, provider_name)
            return _Resolved(
                None,
                CostBreakdown(
                    status=CostStatus.UNPRICED,
                    total_usd=None,
                    provider_id=self._provider_id(provider_name),
                    reason=reason,
                ),
            )
        source = user_source if (match.user and user_source is not None) else self._data_source
        if match.free:
            zero = _ZERO.quantize(MONEY_QUANTUM)
            return _Resolved(
                None,
                CostBreakdown(
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
                ),
            )
        return _Resolved(
            match.schedule,
            CostBreakdown(
                status=CostStatus.PRICED,
                total_usd=None,
                source=source,
                model_id=match.model_id,
                provider_id=match.provider_id,
                deployment=match.deployment,
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

    def _lookup(self, model_ref: str | None, provider_name: str | None) -> _Resolved:
        key = (model_ref or "", provider_name)
        resolved = self._cache.get(key)
        if resolved is not None:
            return resolved
        with self._lock:
            resolved = self._cache.get(key)
            if resolved is None:
                try:
                    resolved = self._resolve(model_ref, provider_name)
                except Exception as exc:  # the span path must never raise; an unpriced call is visible
                    log_once(
                        _logger, "pricing.resolve", logging.WARNING, "pricing %r failed: %r", model_ref, exc
                    )
                    resolved = _Resolved(
                        None,
                        CostBreakdown(
                            status=CostStatus.UNPRICED, total_usd=None, reason=f"pricing failed: {exc!r}"
                        ),
                    )
                if len(self._cache) >= self._cache_size:
                    # Evict the oldest insertion: a cheap bound that keeps the hot set warm.
                    self._cache.pop(next(iter(self._cache)), None)
                self._cache[key] = resolved
        return resolved

    # -- public API ---------------------------------------------------------------------------

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
        try:
            return self._priced(usage, resolved.outcome, schedule.fixed or schedule.card_at(at))
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

    def _priced(self, usage: Usage, outcome: CostBreakdown, card: _Card) -> CostBreakdown:
        input_tokens = usage.input_tokens
        rates = card.rates_for(input_tokens) if card.tiers else card.base

        cache_read = usage.cache_read_tokens
        cache_write = usage.cache_write_tokens
        cache_write_1h = usage.cache_write_1h_tokens
        output_tokens = usage.output_tokens
        if (input_tokens | cache_read | cache_write | cache_write_1h | output_tokens) < 0:
            raise ValueError("negative token count")
        uncached = input_tokens - cache_read - cache_write
        uncached = max(uncached, 0)  # Usage guarantees >= 0; never charge negative tokens anyway
        mul = _CTX.multiply
        quantize = _CTX.quantize
        q = MONEY_QUANTUM
        input_usd = mul(rates.input, uncached)
        output_usd = mul(rates.output, output_tokens)
        request = rates.request
        if not (cache_read or cache_write or request):
            # The common call (no cache tokens, no per-request fee): skip the Decimal operations
            # that would only add zeros, ~1.3 us of ~3.5. The quantized figures are the same.
            return _new_priced(
                quantize(_CTX.add(input_usd, output_usd), q),
                quantize(input_usd, q),
                _ZERO_MONEY,
                _ZERO_MONEY,
                quantize(output_usd, q),
                _ZERO_MONEY,
                _ZERO_MONEY,
                outcome,
            )
        cache_read_usd = mul(rates.cache_read, cache_read)
        if cache_write_1h:
            cache_write_usd = _CTX.add(
                mul(rates.cache_write_5m, cache_write - cache_write_1h),
                mul(rates.cache_write_1h, cache_write_1h),
            )
        else:
            cache_write_usd = mul(rates.cache_write_5m, cache_write)
        add = _CTX.add
        total = add(add(add(input_usd, cache_read_usd), add(cache_write_usd, output_usd)), request)
        return _new_priced(
            quantize(total, q),
            quantize(input_usd, q),
            quantize(cache_read_usd, q),
            quantize(cache_write_usd, q),
            quantize(output_usd, q),
            quantize(mul(_CTX.subtract(rates.input, rates.cache_read), cache_read), q),
            quantize(request, q),
            outcome,
        )

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
            total_usd=_CTX.quantize(reported, MONEY_QUANTUM),
            source="provider",
            model_id=usage.model,
            provider_id=self._provider_id(usage.provider),
        )

    def unit_prices(self, model: str, provider: str | None = None, at: datetime | None = None) -> UnitPrices:
        """What ``model`` costs per 1M tokens of each kind at ``at``, and where the price comes from.

        Args:
            model: A model id as spans carry it (dated, Bedrock, Vertex, ``provider/model``, a
                deployment alias from the price file...).
            provider: A provider name (OTel, OpenInference or genai-prices id), or ``None``.
            at: The moment whose price to show; naive means UTC; ``None``: now.

        Returns:
            The unit prices, their tiers and validity period.

        Raises:
            UnknownModelError: No layer prices ``model``.
        """
        resolved = self._lookup(model, provider)
        outcome = resolved.outcome
        if outcome.status is CostStatus.UNPRICED:
            raise UnknownModelError(outcome.reason or f"no price for model {model!r}")
        if resolved.schedule is None:
            return UnitPrices(
                model_id=outcome.model_id or model,
                provider_id=outcome.provider_id,
                source=outcome.source or self._data_source,
                status=CostStatus.FREE,
                input_mtok=_ZERO,
                cache_read_mtok=_ZERO,
                cache_write_5m_mtok=_ZERO,
                cache_write_1h_mtok=_ZERO,
                output_mtok=_ZERO,
                deployment=outcome.deployment,
            )
        schedule = resolved.schedule
        card = schedule.card_at(at)
        valid_from, valid_until = schedule.validity(at)
        base = _per_million(card.base)
        return UnitPrices(
            model_id=outcome.model_id or model,
            provider_id=outcome.provider_id,
            source=outcome.source or self._data_source,
            status=CostStatus.PRICED,
            input_mtok=base[0],
            cache_read_mtok=base[1],
            cache_write_5m_mtok=base[2],
            cache_write_1h_mtok=base[3],
            output_mtok=base[4],
            request_usd=card.base.request.normalize(),
            tiers=tuple(
                PriceTier(threshold, *_per_million(rates)) for threshold, rates in reversed(card.tiers)
            ),
            valid_from=valid_from,
            valid_until=valid_until,
            time_of_day_pricing=schedule.time_of_day,
            deployment=outcome.deployment,
        )

    def cache_info(self) -> tuple[int, int]:
        """``(entries, capacity)`` of the resolution cache (for diagnostics)."""
        return len(self._cache), self._cache_size


def _per_million(rates: _Rates) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal]:
    def mtok(rate: Decimal) -> Decimal:
        value = _CTX.multiply(rate, _MILLION).normalize(_CTX)
        # normalize() writes 10 as 1E+1; show plain digits.
        return value.quantize(Decimal(1)) if value == value.to_integral_value() else value

    return (
        mtok(rates.input),
        mtok(rates.cache_read),
        mtok(rates.cache_write_5m),
        mtok(rates.cache_write_1h),
        mtok(rates.output),
    )


class _CycleError(Exception):
    pass


class _EntryTransform:
    """Applies one price-file entry to a card: written prices replace inherited ones, the
    provider discount scales inherited ones, the entry's multiplier scales everything."""

    __slots__ = ("_discount", "_entry")

    def __init__(self, entry: PriceEntry, discount: Decimal | None) -> None:
        self._entry = entry
        self._discount = discount

    def __call__(self, card: _Card | None) -> _Card:
        entry = self._entry
        if card is None:
            prices = entry.prices
            if prices.input is None or prices.output is None:  # pragma: no cover - validated at load
                raise RuntimeError(f"{entry.where} needs input and output prices")
            input_rate = _per_token(prices.input)
            cache_write = _per_token(prices.cache_write) if prices.cache_write is not None else input_rate
            base = _Rates(
                input=input_rate,
                cache_read=_per_token(prices.cache_read) if prices.cache_read is not None else input_rate,
                cache_write_5m=cache_write,
                cache_write_1h=(
                    _per_token(prices.cache_write_1h) if prices.cache_write_1h is not None else cache_write
                ),
                output=_per_token(prices.output),
                request=_ZERO,
            )
            card = _Card(base)
        elif self._discount is not None:
            discount = self._discount
            card = card.map(lambda rates: rates.scaled(discount))
        card = card.map(lambda rates: _override(rates, entry.prices))
        if entry.tiers:
            base = card.base
            card = _Card(
                base,
                tuple(
                    (tier.above_input_tokens, _override(base, tier.prices)) for tier in reversed(entry.tiers)
                ),
            )
        if entry.multiplier is not None:
            multiplier = entry.multiplier
            card = card.map(lambda rates: rates.scaled(multiplier))
        return card


def _override(rates: _Rates, prices: PriceOverrides) -> _Rates:
    """Replace the written kinds. A kind charged at its fallback's price (cache reads at the input
    price when a model has no cache discount, 1h writes at the write price) keeps following that
    fallback, as genai-prices charges a kind without a price of its own."""
    if prices.is_empty():
        return rates
    input_rate = _per_token(prices.input) if prices.input is not None else rates.input
    if prices.cache_read is not None:
        cache_read = _per_token(prices.cache_read)
    else:
        cache_read = input_rate if rates.cache_read == rates.input else rates.cache_read
    if prices.cache_write is not None:
        cache_write_5m = _per_token(prices.cache_write)
    else:
        cache_write_5m = input_rate if rates.cache_write_5m == rates.input else rates.cache_write_5m
    if prices.cache_write_1h is not None:
        cache_write_1h = _per_token(prices.cache_write_1h)
    else:
        cache_write_1h = (
            cache_write_5m if rates.cache_write_1h == rates.cache_write_5m else rates.cache_write_1h
        )
    return _Rates(
        input=input_rate,
        cache_read=cache_read,
        cache_write_5m=cache_write_5m,
        cache_write_1h=cache_write_1h,
        output=_per_token(prices.output) if prices.output is not None else rates.output,
        request=rates.request,
    )
