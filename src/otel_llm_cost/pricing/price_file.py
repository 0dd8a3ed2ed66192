"""Load and validate a user price file (TOML or JSON) into immutable entries.

This module only checks what can be checked without price data: syntax, field names, types and
ranges. :class:`otel_llm_cost.pricing.PriceBook` then checks what needs the bundled data (that an
alias points at a model it can price, that a provider name is known) and raises the same
:class:`~otel_llm_cost.exceptions.PriceFileError`, naming the file, the entry and the field.

Numbers are parsed straight to :class:`~decimal.Decimal` (``parse_float=Decimal``) so a price
written as ``0.15`` is exactly 0.15, never the nearest binary float.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from otel_llm_cost.exceptions import PriceFileError

__all__ = ["PRICE_FIELDS", "PriceEntry", "PriceFile", "PriceOverrides", "TierSpec", "load_price_file"]

PRICE_FIELDS: Final = ("input", "output", "cache_read", "cache_write", "cache_write_1h")
"""USD per 1M tokens of each kind, in the order the file format documents them."""

_ENTRY_FIELDS: Final = frozenset({*PRICE_FIELDS, "model", "provider", "multiplier", "free", "tiers", "note"})
_TIER_FIELDS: Final = frozenset({*PRICE_FIELDS, "above_input_tokens"})
_TOP_LEVEL: Final = frozenset({"version", "models", "deployments", "aliases", "discounts"})
_SECTIONS: Final = ("models", "deployments", "aliases")
_SUPPORTED_VERSION: Final = 1
# Bounds that catch a unit mistake (USD per token instead of per 1M, an exponent typo) and keep every
# cost well inside DECIMAL(18,12). The dearest list price today is a few hundred USD per 1M tokens.
_MAX_PRICE_MTOK: Final = Decimal(1_000_000)
_MAX_MULTIPLIER: Final = Decimal(1000)


@dataclass(frozen=True, slots=True)
class PriceOverrides:
    """Prices written in the file, USD per 1M tokens; ``None`` where the file is silent."""

    input: Decimal | None = None
    output: Decimal | None = None
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    """5-minute cache writes (Anthropic's default TTL; OpenAI and Gemini have no write surcharge)."""
    cache_write_1h: Decimal | None = None

    def is_empty(self) -> bool:
        """True when the file gives no price at all."""
        return all(getattr(self, name) is None for name in PRICE_FIELDS)


@dataclass(frozen=True, slots=True)
class TierSpec:
    """A long-context tier: when a call's total input tokens exceed ``above_input_tokens``, every
    token of the call is charged at these prices (the cliff model providers use)."""

    above_input_tokens: int
    prices: PriceOverrides


@dataclass(frozen=True, slots=True)
class PriceEntry:
    """One entry of ``[models]``, ``[deployments]`` or ``[aliases]``."""

    name: str
    """The model or deployment id as written in the file."""
    section: str
    """``models``, ``deployments`` or ``aliases``."""
    model: str | None = None
    """The upstream model whose price this entry starts from (aliases and deployments)."""
    provider: str | None = None
    """Provider name as written (an OTel provider name or a genai-prices provider id)."""
    prices: PriceOverrides = PriceOverrides()
    tiers: tuple[TierSpec, ...] = ()
    multiplier: Decimal | None = None
    free: bool = False

    @property
    def where(self) -> str:
        """How error messages name this entry: ``models."gpt-4o"``."""
        return f"{self.section}.{json.dumps(self.name)}"

    @property
    def key(self) -> str:
        """The lookup key: model ids are matched case-insensitively."""
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class PriceFile:
    """A parsed, syntactically valid user price file."""

    path: Path
    entries: tuple[PriceEntry, ...]
    discounts: tuple[tuple[str, Decimal], ...]
    """``(provider name as written, multiplier)`` pairs from ``[discounts]``."""

    @property
    def name(self) -> str:
        """The file name used in ``CostBreakdown.source`` (``user:<name>``)."""
        return self.path.name

    def error(self, where: str, field: str | None, problem: str) -> PriceFileError:
        """A :class:`PriceFileError` naming this file, the entry and the field."""
        return _error(self.path, where, field, problem)


def _error(path: Path, where: str, field: str | None, problem: str) -> PriceFileError:
    location = f"{where}.{field}" if field else where
    return PriceFileError(f"price file {str(path)!r}: {location}: {problem}")


def load_price_file(path: str | os.PathLike[str]) -> PriceFile:
    """Read and validate a user price file; ``.json`` files are JSON, anything else TOML.

    Args:
        path: The file to read.

    Returns:
        The parsed file.

    Raises:
        PriceFileError: The file cannot be read, does not parse, or an entry has an unknown field,
            a wrong type, a negative price or a non-positive multiplier. The message names the
            file, the entry and the field.
    """
    file_path = Path(path)
    try:
        raw_bytes = file_path.read_bytes()
    except OSError as exc:
        raise PriceFileError(f"price file {str(file_path)!r}: cannot be read: {exc.strerror or exc}") from exc
    document = _parse(file_path, raw_bytes)
    return _validate_document(file_path, document)


def _parse(path: Path, raw_bytes: bytes) -> Mapping[str, Any]:
    try:
        text = raw_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PriceFileError(f"price file {str(path)!r}: is not UTF-8 text ({exc.reason})") from exc
    document: Any
    if path.suffix.lower() == ".json":
        try:
            document = json.loads(text, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise PriceFileError(
                f"price file {str(path)!r}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from exc
    else:
        try:
            document = tomllib.loads(text, parse_float=Decimal)
        except tomllib.TOMLDecodeError as exc:
            raise PriceFileError(f"price file {str(path)!r}: invalid TOML: {exc}") from exc
    if not isinstance(document, Mapping):
        raise PriceFileError(f"price file {str(path)!r}: the top level must be a table/object")
    return document


def _validate_document(path: Path, document: Mapping[str, Any]) -> PriceFile:
    unknown = sorted(set(document) - _TOP_LEVEL)
    if unknown:
        raise _error(
            path,
            "(top level)",
            None,
            f"unknown section {unknown[0]!r}; expected one of {', '.join(sorted(_TOP_LEVEL))}",
        )
    version = document.get("version", _SUPPORTED_VERSION)
    if type(version) is not int or version != _SUPPORTED_VERSION:
        raise _error(path, "version", None, f"must be {_SUPPORTED_VERSION}, got {version!r}")

    entries: list[PriceEntry] = []
    seen: dict[str, str] = {}
    for section in _SECTIONS:
        table = document.get(section, {})
        if not isinstance(table, Mapping):
            raise _error(path, section, None, "must be a table/object")
        for name, body in table.items():
            where = f"{section}.{json.dumps(name)}"
            if not name.strip():
                raise _error(path, where, None, "the model id must not be empty")
            if section == "aliases":
                if not isinstance(body, str) or not body.strip():
                    raise _error(path, where, None, f"an alias maps to a model id string, got {body!r}")
                entry = PriceEntry(name=name, section=section, model=body.strip())
            else:
                if not isinstance(body, Mapping):
                    raise _error(path, where, None, "must be a table/object of fields")
                entry = _entry(path, section, name, body)
            if entry.key in seen:
                raise _error(path, where, None, f"{name!r} is already defined in {seen[entry.key]}")
            seen[entry.key] = where
            entries.append(entry)

    discounts_table = document.get("discounts", {})
    if not isinstance(discounts_table, Mapping):
        raise _error(path, "discounts", None, "must be a table/object of provider = multiplier")
    discounts = tuple(
        (provider, _multiplier(path, "discounts", provider, value))
        for provider, value in discounts_table.items()
    )
    return PriceFile(path=path, entries=tuple(entries), discounts=discounts)


def _entry(path: Path, section: str, name: str, body: Mapping[str, Any]) -> PriceEntry:
    where = f"{section}.{json.dumps(name)}"
    unknown = sorted(set(body) - _ENTRY_FIELDS)
    if unknown:
        raise _error(
            path, where, unknown[0], f"unknown field; expected one of {', '.join(sorted(_ENTRY_FIELDS))}"
        )
    model = _optional_str(path, where, "model", body.get("model"))
    provider = _optional_str(path, where, "provider", body.get("provider"))
    if "note" in body and not isinstance(body["note"], str):
        raise _error(path, where, "note", "must be a string")
    free = body.get("free", False)
    if not isinstance(free, bool):
        raise _error(path, where, "free", f"must be true or false, got {free!r}")
    prices = _overrides(path, where, body)
    multiplier = _multiplier(path, where, "multiplier", body["multiplier"]) if "multiplier" in body else None
    tiers = _tiers(path, where, body.get("tiers", []))

    if free:
        priced = [field for field in (*PRICE_FIELDS, "multiplier", "tiers", "model") if field in body]
        if priced:
            raise _error(path, where, priced[0], "a free model has no prices; remove the field or `free`")
    if section == "deployments" and model is None:
        raise _error(path, where, "model", 'a deployment names the upstream model it runs (model = "...")')
    return PriceEntry(
        name=name,
        section=section,
        model=model,
        provider=provider,
        prices=prices,
        tiers=tiers,
        multiplier=multiplier,
        free=free,
    )


def _optional_str(path: Path, where: str, field: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _error(path, where, field, f"must be a non-empty string, got {value!r}")
    return value.strip()


def _overrides(path: Path, where: str, body: Mapping[str, Any]) -> PriceOverrides:
    values = {field: _price(path, where, field, body[field]) for field in PRICE_FIELDS if field in body}
    return PriceOverrides(**values)


def _price(path: Path, where: str, field: str, value: object) -> Decimal:
    # bool is an int subclass: `input = true` is a typo, not a price of $1.
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _error(path, where, field, f"must be a number (USD per 1M tokens), got {value!r}")
    price = Decimal(value)
    if not price.is_finite() or price < 0:
        raise _error(path, where, field, f"must be a non-negative number (USD per 1M tokens), got {value}")
    if price > _MAX_PRICE_MTOK:
        raise _error(
            path, where, field, f"must be at most {_MAX_PRICE_MTOK} (USD per 1M tokens), got {value}"
        )
    return price


def _multiplier(path: Path, where: str, field: str, value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _error(path, where, field, f"must be a number such as 0.8 (20% off), got {value!r}")
    multiplier = Decimal(value)
    if not multiplier.is_finite() or multiplier <= 0:
        raise _error(
            path, where, field, f"must be greater than 0 (use `free = true` for a free model), got {value}"
        )
    if multiplier > _MAX_MULTIPLIER:
        raise _error(path, where, field, f"must be at most {_MAX_MULTIPLIER}, got {value}")
    return multiplier


def _tiers(path: Path, where: str, raw: object) -> tuple[TierSpec, ...]:
    if not isinstance(raw, list):
        raise _error(path, where, "tiers", "must be an array of tables")
    tiers: list[TierSpec] = []
    previous = -1
    for index, body in enumerate(raw):
        tier_where = f"{where}.tiers[{index}]"
        if not isinstance(body, Mapping):
            raise _error(path, tier_where, None, "must be a table/object")
        unknown = sorted(set(body) - _TIER_FIELDS)
        if unknown:
            raise _error(
                path,
                tier_where,
                unknown[0],
                f"unknown field; expected one of {', '.join(sorted(_TIER_FIELDS))}",
            )
        threshold = body.get("above_input_tokens")
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
            raise _error(
                path, tier_where, "above_input_tokens", f"must be a non-negative integer, got {threshold!r}"
            )
        if threshold <= previous:
            raise _error(path, tier_where, "above_input_tokens", "tiers must be in increasing order")
        previous = threshold
        prices = _overrides(path, tier_where, body)
        if prices.is_empty():
            raise _error(path, tier_where, None, "a tier must give at least one price")
        tiers.append(TierSpec(above_input_tokens=threshold, prices=prices))
    return tuple(tiers)
