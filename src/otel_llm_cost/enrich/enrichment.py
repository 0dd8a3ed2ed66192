"""What to add to an LLM span: tokens, cost, cache impact, attribution.

:func:`compute_enrichment` is pure: span attributes in, attributes to add out (``None`` for a span
that is not an LLM call). It never raises. Whether the call is billable across spans is decided by
:mod:`otel_llm_cost.enrich.llm_call`; the copy that carries the attributes is built by
:mod:`otel_llm_cost.enrich.span_copy`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, Protocol

from opentelemetry.util.types import AttributeValue

from otel_llm_cost._logging import log_once
from otel_llm_cost.conventions import names as sc
from otel_llm_cost.conventions.usage import Usage, invalid_count_problem
from otel_llm_cost.enrich.attribution import UserIdHasher, default_user_id_hasher, is_hashed_user_id
from otel_llm_cost.enrich.plain_cost import write_cost_labels, write_plain_cost
from otel_llm_cost.enrich.span_plan import ID_SOURCE_NAMES, span_plan
from otel_llm_cost.pricing import CostBreakdown, CostStatus

if TYPE_CHECKING:
    from datetime import datetime as _DateTime

__all__ = ["LLM_MARKER_NAMES", "compute_enrichment", "is_llm_candidate", "is_llm_scope"]

_logger = logging.getLogger("otel_llm_cost.enrich")


class _Pricer(Protocol):
    """The part of :class:`otel_llm_cost.pricing.PriceBook` enrichment needs."""

    def compute_cost(
        self, usage: Usage, *, at: _DateTime | None = None, reported_cost_usd: Decimal | None = None
    ) -> CostBreakdown: ...


# Any of these keys (or an LLM scope) makes a span worth handing to normalize_usage. It is a cheap
# superset test so that the ~99% of spans that are HTTP/DB spans cost one set intersection.
_LLM_MARKER_KEYS: Final = frozenset(
    {
        sc.GEN_AI_OPERATION_NAME,
        sc.GEN_AI_PROVIDER_NAME,
        sc.GEN_AI_SYSTEM,
        sc.GEN_AI_REQUEST_MODEL,
        sc.GEN_AI_RESPONSE_MODEL,
        sc.GEN_AI_USAGE_INPUT_TOKENS,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS,
        sc.GEN_AI_USAGE_PROMPT_TOKENS,
        sc.GEN_AI_USAGE_COMPLETION_TOKENS,
        sc.GEN_AI_USAGE_TOTAL_TOKENS,
        sc.GEN_AI_USAGE_COST,
        sc.LLM_USAGE_TOTAL_TOKENS,
        sc.LLM_USAGE_PROMPT_TOKENS,
        sc.LLM_USAGE_COMPLETION_TOKENS,
        sc.LLM_REQUEST_TYPE,
        sc.TRACELOOP_SPAN_KIND,
        sc.OPENINFERENCE_SPAN_KIND,
        sc.LLM_MODEL_NAME,
        sc.LLM_PROVIDER,
        sc.LLM_SYSTEM,
        sc.LLM_TOKEN_COUNT_PROMPT,
        sc.LLM_TOKEN_COUNT_COMPLETION,
        sc.LLM_TOKEN_COUNT_TOTAL,
        sc.LLM_COST_TOTAL,
        sc.LLM_TOKENS_INPUT,
        sc.LLM_TOKENS_OUTPUT,
        sc.LLM_TOKENS_TOTAL,
    }
)
_ASSOCIATION_PREFIX_LEN: Final = len(sc.TRACELOOP_ASSOCIATION_PREFIX)
# Traceloop association properties are free-form, so apps spell the user id several ways; each
# spelling is the user id (hashed into cost.user_id), never a cost.<key> of its own.
_ASSOCIATION_USER_KEYS: Final = frozenset(
    name[_ASSOCIATION_PREFIX_LEN:]
    for name in sc.RAW_USER_ID_ATTRIBUTE_NAMES
    if name.startswith(sc.TRACELOOP_ASSOCIATION_PREFIX)
)
_ASSOCIATION_MARK: Final = "\0" + sc.TRACELOOP_ASSOCIATION_PREFIX
_ID_SOURCE_NAMES: Final = ID_SOURCE_NAMES
_PROVIDER_COST_SOURCE: Final = "provider"
_ZERO_USD: Final = Decimal(0)
# An answer served from the application's response cache made no API call (issue 5): its cost is
# exactly 0, not the price of the call that once produced the cached answer.
_RESPONSE_CACHE_COST: Final = CostBreakdown(
    status=CostStatus.FREE,
    total_usd=_ZERO_USD,
    input_usd=_ZERO_USD,
    cache_read_usd=_ZERO_USD,
    cache_write_usd=_ZERO_USD,
    output_usd=_ZERO_USD,
    cache_saved_usd=_ZERO_USD,
    request_usd=_ZERO_USD,
    reason="response cache",
)
_NO_ATTRIBUTES: Final[Mapping[str, AttributeValue]] = MappingProxyType({})


LLM_MARKER_NAMES: Final = _LLM_MARKER_KEYS
"""Names of which any one makes a span worth a closer look (see :func:`is_llm_candidate`)."""


def is_llm_scope(scope_name: str | None) -> bool:
    """Whether spans of this instrumentation scope are LLM calls whatever their attributes say."""
    return scope_name is not None and (
        scope_name == sc.ANTHROPIC_SDK_SCOPE or scope_name.startswith(sc.OPENLIT_SCOPE_PREFIX)
    )


def is_llm_candidate(attributes: Mapping[str, object], scope_name: str | None) -> bool:
    """Cheap pre-test: could this span be an LLM call? (``False`` means certainly not.)"""
    if scope_name is not None and (
        scope_name == sc.ANTHROPIC_SDK_SCOPE or scope_name.startswith(sc.OPENLIT_SCOPE_PREFIX)
    ):
        return True
    return not _LLM_MARKER_KEYS.isdisjoint(attributes)


def _money_attribute(value: object) -> float | None:
    """A finite, non-negative USD amount from a span attribute, else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        amount = float(value)
    except (ValueError, OverflowError):
        return None
    if not math.isfinite(amount) or amount < 0:
        return None
    return amount


def _write_usage(out: dict[str, AttributeValue], usage: Usage) -> None:
    model = usage.response_model or usage.request_model  # Usage.model, without the property call
    if model is not None:
        out[sc.LLM_MODEL] = model
    if usage.provider is not None:
        out[sc.LLM_PROVIDER_NAME] = usage.provider
    if usage.operation is not None:
        out[sc.LLM_OPERATION] = usage.operation
    out[sc.LLM_CONVENTION] = usage.convention
    if not usage.usage_reported:
        return
    input_tokens, output_tokens, cache_read = usage.input_tokens, usage.output_tokens, usage.cache_read_tokens
    out[sc.LLM_TOKENS_INPUT] = input_tokens
    out[sc.LLM_TOKENS_OUTPUT] = output_tokens
    out[sc.LLM_TOKENS_TOTAL] = input_tokens + output_tokens
    out[sc.LLM_TOKENS_CACHE_READ] = cache_read
    out[sc.LLM_TOKENS_CACHE_WRITE] = usage.cache_write_tokens
    if usage.cache_write_1h_tokens:
        out[sc.LLM_TOKENS_CACHE_WRITE_1H] = usage.cache_write_1h_tokens
    out[sc.LLM_TOKENS_REASONING] = usage.reasoning_tokens
    out[sc.LLM_CACHE_HIT] = cache_read > 0
    out[sc.LLM_CACHE_TOKENS_SAVED] = cache_read


def _write_cost(out: dict[str, AttributeValue], cost: CostBreakdown) -> None:
    # Unrolled (no per-call tuple of pairs, no helper per amount): this runs for every LLM span.
    # float(Decimal) goes through the decimal string (~0.2 us); cache amounts are usually zero.
    status = cost.status
    out[sc.LLM_COST_STATUS] = str(status)
    amount = cost.total_usd
    if amount is not None:
        total = float(amount) if amount else 0.0
        out[sc.LLM_COST_USD] = total
        out[sc.GEN_AI_USAGE_COST_MIRROR] = total
        # The same figure under the names other tools read (semantic-conventions-genai PR #443, Logfire).
        out[sc.GEN_AI_USAGE_COST_AMOUNT] = total
        out[sc.GEN_AI_USAGE_COST_CURRENCY] = sc.COST_CURRENCY_USD
        out[sc.GEN_AI_USAGE_COST_SOURCE] = (
            sc.COST_SOURCE_PROVIDER if status == CostStatus.REPORTED else sc.COST_SOURCE_LOCAL
        )
        out[sc.OPERATION_COST] = total
    amount = cost.input_usd
    if amount is not None:
        out[sc.LLM_COST_INPUT_USD] = float(amount) if amount else 0.0
    amount = cost.cache_read_usd
    if amount is not None:
        out[sc.LLM_COST_CACHE_READ_USD] = float(amount) if amount else 0.0
    amount = cost.cache_write_usd
    if amount is not None:
        out[sc.LLM_COST_CACHE_WRITE_USD] = float(amount) if amount else 0.0
    amount = cost.output_usd
    if amount is not None:
        out[sc.LLM_COST_OUTPUT_USD] = float(amount) if amount else 0.0
    amount = cost.cache_saved_usd
    if amount is not None:
        out[sc.LLM_CACHE_COST_SAVED_USD] = float(amount) if amount else 0.0
    write_cost_labels(out, cost)


def _map_association_properties(mapped: dict[str, str], attributes: Mapping[str, object]) -> None:
    prefix = sc.TRACELOOP_ASSOCIATION_PREFIX
    for name in attributes:
        if name.startswith(prefix):
            value = attributes[name]
            if isinstance(value, str | int) and not isinstance(value, bool):
                key = name[_ASSOCIATION_PREFIX_LEN:]
                if key in _ASSOCIATION_USER_KEYS:
                    mapped.setdefault("user_id", str(value))
                elif key.isidentifier() and key.isascii():
                    mapped.setdefault(key, str(value))


def _write_mapped_ids(
    out: dict[str, AttributeValue],
    attributes: Mapping[str, object],
    hasher: UserIdHasher | None,
    association: bool,
) -> None:
    mapped: dict[str, str] = {}
    if not _ID_SOURCE_NAMES.isdisjoint(attributes):
        session = attributes.get(sc.SESSION_ID)
        if isinstance(session, str | int) and not isinstance(session, bool):
            mapped["session_id"] = str(session)
        for name in sc.USER_ID_SOURCE_NAMES:
            user = attributes.get(name)
            if isinstance(user, str | int) and not isinstance(user, bool):
                mapped["user_id"] = str(user)
                break
    if association:
        _map_association_properties(mapped, attributes)
    for key, value in mapped.items():
        name = sc.COST_PREFIX + key
        if name in attributes:
            continue
        if name == sc.COST_USER_ID:
            value = (hasher or default_user_id_hasher()).hash(value)  # noqa: PLW2901
        out[name] = value


def _write_attribution(
    out: dict[str, AttributeValue], attributes: Mapping[str, object], hasher: UserIdHasher | None
) -> None:
    """Map OpenInference/Traceloop ids onto ``cost.*`` when the span has no ``cost.*`` of its own."""
    # One search of the joined names (~0.2 us) instead of a startswith per name (~0.05 us each).
    names = "\0".join(attributes)
    association = names.startswith(sc.TRACELOOP_ASSOCIATION_PREFIX) or _ASSOCIATION_MARK in names
    if association or not _ID_SOURCE_NAMES.isdisjoint(attributes):  # most spans carry none
        _write_mapped_ids(out, attributes, hasher, association)
    _hash_cost_user_id(out, attributes, hasher)


def _hash_cost_user_id(
    out: dict[str, AttributeValue], attributes: Mapping[str, object], hasher: UserIdHasher | None
) -> None:
    existing = attributes.get(sc.COST_USER_ID)
    if existing is not None and not (isinstance(existing, str) and is_hashed_user_id(existing)):
        # Set directly on the span with a raw id (an int too): the copy carries the hash instead.
        raw = existing if isinstance(existing, str) else str(existing)
        hashed = (hasher or default_user_id_hasher()).hash(raw)
        if hashed != existing:
            out[sc.COST_USER_ID] = hashed


def compute_enrichment(
    attributes: Mapping[str, AttributeValue],
    *,
    scope_name: str | None,
    start_time_ns: int | None,
    pricebook: _Pricer,
    hasher: UserIdHasher | None,
) -> dict[str, AttributeValue] | None:
    """The attributes to add to a span so it carries its tokens, cost, cache impact and attribution.

    Pure (no deduplication across spans: ``llm.cost.billable`` is ``False`` only for a span whose
    own usage is an aggregate of its children). Never raises: a failure inside usage
    normalisation returns ``None``; a failure inside pricing leaves the tokens and records
    ``llm.cost.status = unpriced`` with a reason. Both are logged once and counted.

    Args:
        attributes: The span's attributes.
        scope_name: Its instrumentation scope name (identifies OpenLIT and Anthropic SDK spans).
        start_time_ns: Span start; the call is priced at this time (``None``: now).
        pricebook: Prices the usage (:class:`otel_llm_cost.pricing.PriceBook`).
        hasher: Hashes user ids mapped from ``user.id``/association properties (``None``: the
            process default :func:`~otel_llm_cost.enrich.attribution.default_user_id_hasher`).

    Returns:
        Attribute name -> value to ADD (values override same-named span attributes), or ``None``
        when the span is not an LLM call.
    """
    try:
        if not is_llm_candidate(attributes, scope_name):
            return None
    except Exception as exc:
        log_once(_logger, "enrich.normalize_usage", logging.ERROR, "normalize_usage failed: %r", exc)
        return None
    return _enrichment(attributes, scope_name, start_time_ns, pricebook, hasher)


def _reported_cost(
    out: dict[str, AttributeValue], attributes: Mapping[str, AttributeValue]
) -> Decimal | None:
    """The provider's own figure for the call, if it reported one; another tool's figure goes to ``out``."""
    # Most spans carry no cost of their own: test for None before the coercion call.
    cost_attribute = attributes.get(sc.GEN_AI_USAGE_COST)
    if attributes.get(sc.GEN_AI_USAGE_COST_SOURCE) == _PROVIDER_COST_SOURCE:
        amount = _money_attribute(cost_attribute)
        return None if amount is None else Decimal(repr(amount))
    # A cost another instrumentation computed from its own price table: kept for comparison, never
    # trusted (its prices and cache rules differ from ours).
    external = None if cost_attribute is None else _money_attribute(cost_attribute)
    if external is None:
        total_attribute = attributes.get(sc.LLM_COST_TOTAL)
        if total_attribute is not None:
            external = _money_attribute(total_attribute)
    if external is not None:
        out[sc.LLM_COST_EXTERNAL_USD] = external
    return None


def _log_usage_problems(problems: tuple[str, ...]) -> None:
    log_once(
        _logger,
        "enrich.usage_problems",
        logging.WARNING,
        "ignored invalid usage attributes on an LLM span: %s",
        "; ".join(problems),
    )


def _enrichment(
    attributes: Mapping[str, AttributeValue],
    scope_name: str | None,
    start_time_ns: int | None,
    pricebook: _Pricer,
    hasher: UserIdHasher | None,
) -> dict[str, AttributeValue] | None:
    """:func:`compute_enrichment` for a span that already passed :func:`is_llm_candidate`."""
    plan = span_plan(attributes, scope_name)
    plain = plan.plain_attributes(attributes, pricebook)
    if plain is not None:
        return plain
    try:
        usage = plan.read_usage(attributes, scope_name)
    except Exception as exc:
        log_once(_logger, "enrich.normalize_usage", logging.ERROR, "normalize_usage failed: %r", exc)
        return None
    if usage is None:
        return None
    out: dict[str, AttributeValue] = {}
    reported: Decimal | None = None
    try:
        _write_usage(out, usage)
        if usage.problems:
            _log_usage_problems(usage.problems)
        # The plan skips each step that would find none of its names on this shape of span.
        if plan.reported_cost:
            reported = _reported_cost(out, attributes)
        out[sc.LLM_COST_BILLABLE] = not usage.is_aggregate
        if plan.mapped_ids:
            _write_attribution(out, attributes, hasher)
        elif plan.cost_user_id:  # an attribution block's, hashed already: usually nothing to add
            _hash_cost_user_id(out, attributes, hasher)
    except Exception as exc:
        log_once(_logger, "enrich.attributes", logging.ERROR, "building LLM span attributes failed: %r", exc)
    if plan.response_cache and attributes.get(sc.LLM_RESPONSE_FROM_CACHE) is True:
        out[sc.LLM_CACHE_HIT] = True
        _write_cost(out, _RESPONSE_CACHE_COST)
        return out
    invalid = invalid_count_problem(usage) if usage.problems else None
    if invalid is not None:
        _write_cost(
            out, CostBreakdown(status=CostStatus.INVALID, total_usd=None, reason=f"invalid: {invalid}")
        )
        return out
    try:
        plain = getattr(pricebook, "plain_cost_pico", None)
        if reported is None and plain is not None:
            amounts = plain(usage, start_time_ns)
            if amounts is not None and write_plain_cost(out, *amounts):
                return out
        price_at_ns = getattr(pricebook, "compute_cost_at_ns", None)
        if price_at_ns is not None:  # a PriceBook: no datetime unless the price depends on the date
            cost = price_at_ns(usage, start_time_ns, reported)
        else:
            at = None if start_time_ns is None else datetime.fromtimestamp(start_time_ns / 1e9, tz=UTC)
            cost = pricebook.compute_cost(usage, at=at, reported_cost_usd=reported)
        _write_cost(out, cost)
    except Exception as exc:
        log_once(_logger, "enrich.compute_cost", logging.ERROR, "pricing an LLM span failed: %r", exc)
        out[sc.LLM_COST_STATUS] = str(CostStatus.UNPRICED)
        out[sc.LLM_COST_REASON] = f"pricing error: {type(exc).__name__}"
    return out
