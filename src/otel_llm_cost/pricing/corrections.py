"""Our corrections to genai-prices: a small, dated data file shipped with the package.

Each entry fixes one gap in genai-prices' data for one model, with the provider's own public price
page as its source and the day that page was read. Two kinds of gap exist today:

- ``long_context_tier``: a price tier for calls whose input exceeds ``above_input_tokens`` that the
  data lacks (every token of such a call is charged at the tier's prices);
- ``service_tier``: a price table for an OpenAI service tier (``flex``, ``priority``, ``batch``...)
  that the data lacks.

Layers, highest first: the user's price file, these corrections, genai-prices. A correction wins over
the data it corrects; ``otel-llm-cost prices --check`` lists the corrections the data now covers
with the same figures, so they can be removed.

The file is JSON read with the standard library; prices are decimal strings (USD per 1M tokens),
read straight into :class:`~decimal.Decimal`. It is validated when a price book is built: a bad
entry raises :class:`~otel_llm_cost.exceptions.PriceFileError` naming the file, the entry and the field.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any, Final

from otel_llm_cost.exceptions import PriceFileError
from otel_llm_cost.pricing.overrides import override_rates, own_rates
from otel_llm_cost.pricing.price_file import PRICE_FIELDS, PriceOverrides
from otel_llm_cost.pricing.rates import Card, Rates, Schedule, per_token
from otel_llm_cost.pricing.service_tiers import STANDARD_TIERS, TierPrices

__all__ = ["LONG_CONTEXT_TIER", "SERVICE_TIER", "Correction", "Corrections", "load_corrections"]

LONG_CONTEXT_TIER: Final = "long_context_tier"
SERVICE_TIER: Final = "service_tier"
_KINDS: Final = (LONG_CONTEXT_TIER, SERVICE_TIER)
_FIELDS: Final = frozenset(
    {
        "id",
        "provider",
        "model",
        "corrects",
        "above_input_tokens",
        "service_tier",
        "usd_per_million_tokens",
        "source",
        "read_on",
        "note",
    }
)
_SUPPORTED_VERSION: Final = 1
_MAX_PRICE_MTOK: Final = Decimal(1_000_000)
_SHIPPED: Final = "corrections.json"
# Which compiled rate each written price becomes.
_RATE_OF: Final = {
    "input": "input",
    "output": "output",
    "cache_read": "cache_read",
    "cache_write": "cache_write_5m",
    "cache_write_1h": "cache_write_1h",
}


@dataclass(frozen=True, slots=True)
class Correction:
    """One entry of the corrections file."""

    id: str
    provider: str
    """The genai-prices provider id (``openai``, ``anthropic``...)."""
    model: str
    """The genai-prices model id it corrects (every id resolving to that entry is corrected)."""
    corrects: str
    """``long_context_tier`` or ``service_tier``."""
    prices: PriceOverrides
    """USD per 1M tokens; input and output always written."""
    source: str
    """The provider's public price page the figures come from."""
    read_on: date
    """The day that page was read."""
    note: str
    above_input_tokens: int | None = None
    service_tier: str | None = None

    @property
    def what(self) -> str:
        """``long-context tier > 200,000 input tokens`` or ``service tier flex``, for messages."""
        if self.corrects == LONG_CONTEXT_TIER:
            return f"long-context tier > {self.above_input_tokens:,} input tokens"
        return f"service tier {self.service_tier}"

    def written(self) -> dict[str, Decimal]:
        """The prices the entry writes, by price-file field name."""
        return {name: value for name in PRICE_FIELDS if (value := getattr(self.prices, name)) is not None}


class Corrections:
    """The corrections of one file, applied to the compiled prices of the entries they name."""

    __slots__ = ("_by_model", "entries", "path")

    def __init__(self, entries: tuple[Correction, ...], path: Path) -> None:
        self.entries = entries
        self.path = path
        self._by_model: dict[tuple[str, str], list[Correction]] = {}
        for entry in entries:
            self._by_model.setdefault((entry.provider, entry.model), []).append(entry)

    def apply(
        self, provider_id: str, model_id: str, schedule: Schedule | None, tiers: dict[str, TierPrices]
    ) -> tuple[Schedule | None, dict[str, TierPrices], bool]:
        """``(schedule, tiers, corrected)`` for a genai-prices entry, with its corrections applied."""
        found = self._by_model.get((provider_id, model_id))
        if not found:
            return schedule, tiers, False
        tiers = dict(tiers)
        for entry in found:
            if entry.corrects == SERVICE_TIER and entry.service_tier is not None:
                tiers[entry.service_tier] = TierPrices.fixed(Card(own_rates(entry.prices)))
            elif schedule is not None and entry.above_input_tokens is not None:
                threshold, prices = entry.above_input_tokens, entry.prices
                schedule = schedule.map(partial(_with_tier, threshold=threshold, prices=prices))
        return schedule, tiers, True

    def compare(
        self, entry: Correction, schedule: Schedule | None, tiers: Mapping[str, TierPrices], at: datetime
    ) -> tuple[str, str]:
        """``(status, detail)`` of ``entry`` against the uncorrected data at ``at``.

        ``status`` is ``needed`` (the data lacks what the entry adds), ``covered`` (the data has it
        with the same figures: the entry can be removed) or ``differs`` (the data has it with other
        figures: check the source again).
        """
        if entry.corrects == SERVICE_TIER:
            table = tiers.get(entry.service_tier or "")
            card = table.card_at(at) if table is not None else None
            if card is None:
                return "needed", f"the data has no {entry.what} price"
            expected, actual = own_rates(entry.prices), card.base
        else:
            card = schedule.card_at(at) if schedule is not None else None
            upstream = {threshold: rates for threshold, rates in card.tiers} if card is not None else {}
            if card is None or entry.above_input_tokens not in upstream:
                return "needed", f"the data has no {entry.what}"
            expected = override_rates(card.base, entry.prices)
            actual = upstream[entry.above_input_tokens]
        different = _differences(entry, expected, actual)
        if different:
            return "differs", "the data has " + ", ".join(different)
        return "covered", "the data has the same figures"


def _with_tier(card: Card, threshold: int, prices: PriceOverrides) -> Card:
    others = [(t, rates) for t, rates in card.tiers if t != threshold]
    tiers = sorted([*others, (threshold, override_rates(card.base, prices))], key=lambda pair: -pair[0])
    return Card(card.base, tuple(tiers))


def _differences(entry: Correction, expected: Rates, actual: Rates) -> list[str]:
    out = []
    for name in entry.written():
        attribute = _RATE_OF[name]
        if getattr(expected, attribute) != getattr(actual, attribute):
            upstream_mtok = (getattr(actual, attribute) * 1_000_000).normalize()
            out.append(f"{name} {upstream_mtok:f} (ours {getattr(entry.prices, name)})")
    return out


def load_corrections(path: str | os.PathLike[str] | None = None) -> Corrections:
    """Read and validate a corrections file; ``None``: the one shipped with the package.

    Raises:
        PriceFileError: The file cannot be read, is not JSON, or an entry is invalid (the message
            names the file, the entry and the field).
    """
    if path is None:
        shipped = resources.files("otel_llm_cost.pricing").joinpath(_SHIPPED)
        where = Path(str(shipped))
        try:
            text = shipped.read_text(encoding="utf-8")
        except OSError as exc:  # pragma: no cover - a broken installation
            raise PriceFileError(f"corrections file {where}: cannot be read: {exc}") from exc
    else:
        where = Path(path)
        try:
            text = where.read_text(encoding="utf-8")
        except OSError as exc:
            raise PriceFileError(
                f"corrections file {str(where)!r}: cannot be read: {exc.strerror or exc}"
            ) from exc
    return Corrections(_parse(text, where), where)


def _parse(text: str, path: Path) -> tuple[Correction, ...]:
    def fail(where: str, problem: str) -> PriceFileError:
        return PriceFileError(f"corrections file {str(path)!r}: {where}: {problem}")

    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise fail("file", f"invalid JSON: {exc}") from exc
    if not isinstance(raw, dict) or set(raw) != {"version", "corrections"}:
        raise fail("file", 'expected an object with exactly "version" and "corrections"')
    if raw["version"] != _SUPPORTED_VERSION:
        raise fail("version", f"expected {_SUPPORTED_VERSION}, got {raw['version']!r}")
    if not isinstance(raw["corrections"], list):
        raise fail("corrections", "expected a list of entries")
    entries: list[Correction] = []
    for index, body in enumerate(raw["corrections"]):
        entry = _entry(body, f"corrections[{index}]", fail)
        if any(other.id == entry.id for other in entries):
            raise fail(f"entry {entry.id!r}", "id: used by another entry")
        entries.append(entry)
    return tuple(entries)


def _entry(body: object, index: str, fail: Any) -> Correction:
    if not isinstance(body, dict):
        raise fail(index, "expected an object")
    ident = body.get("id")
    where = f"entry {ident!r}" if isinstance(ident, str) and ident else index

    def text(name: str) -> str:
        value = body.get(name)
        if not isinstance(value, str) or not value.strip():
            raise fail(where, f"{name}: expected a non-empty string, got {value!r}")
        return value.strip()

    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise fail(where, f"{unknown[0]}: unknown field (known: {', '.join(sorted(_FIELDS))})")
    ident, provider, model, kind = text("id"), text("provider"), text("model"), text("corrects")
    if kind not in _KINDS:
        raise fail(where, f"corrects: expected one of {', '.join(_KINDS)}, got {kind!r}")
    source, note = text("source"), text("note")
    if not source.startswith("https://"):
        raise fail(
            where, f"source: expected the https:// address of the provider's price page, got {source!r}"
        )
    try:
        read_on = date.fromisoformat(text("read_on"))
    except ValueError:
        raise fail(
            where, f"read_on: expected an ISO date such as 2026-12-05, got {body['read_on']!r}"
        ) from None
    threshold, tier = body.get("above_input_tokens"), body.get("service_tier")
    if kind == LONG_CONTEXT_TIER:
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold <= 0:
            raise fail(where, f"above_input_tokens: expected a positive integer, got {threshold!r}")
        if tier is not None:
            raise fail(where, "service_tier: only for corrects = service_tier")
    else:
        tier = text("service_tier").lower()
        if tier in STANDARD_TIERS:
            raise fail(where, f"service_tier: {tier!r} is the standard price, not a tier to correct")
        if threshold is not None:
            raise fail(where, "above_input_tokens: only for corrects = long_context_tier")
    return Correction(
        id=ident,
        provider=provider.lower(),
        model=model.lower(),
        corrects=kind,
        prices=_prices(body.get("usd_per_million_tokens"), where, fail),
        source=source,
        read_on=read_on,
        note=note,
        above_input_tokens=threshold if kind == LONG_CONTEXT_TIER else None,
        service_tier=tier if kind == SERVICE_TIER else None,
    )


def _prices(body: object, where: str, fail: Any) -> PriceOverrides:
    if not isinstance(body, dict):
        raise fail(where, "usd_per_million_tokens: expected an object of decimal strings")
    values: dict[str, Decimal] = {}
    for name, raw in body.items():
        field = f"usd_per_million_tokens.{name}"
        if name not in PRICE_FIELDS:
            raise fail(where, f"{field}: unknown price (known: {', '.join(PRICE_FIELDS)})")
        if not isinstance(raw, str):
            raise fail(where, f'{field}: expected a decimal string such as "22.50", got {raw!r}')
        try:
            value = Decimal(raw.strip())
        except InvalidOperation:
            raise fail(where, f"{field}: not a decimal number: {raw!r}") from None
        if not value.is_finite() or value < 0 or value > _MAX_PRICE_MTOK:
            raise fail(where, f"{field}: expected 0 to {_MAX_PRICE_MTOK} USD per 1M tokens, got {raw!r}")
        values[name] = value
    for required in ("input", "output"):
        if required not in values:
            raise fail(where, f"usd_per_million_tokens.{required}: required")
    # per_token() must accept every value: checked here so that applying a correction never raises.
    for value in values.values():
        per_token(value)
    return PriceOverrides(**values)
