"""The usual LLM call's attributes in one pass: a span of a planned shape, plainly priced.

For a span whose shape has a plan (:mod:`otel_llm_cost.enrich.span_plan`) with no cache, reasoning or
reported-cost names, no ids to map and no response-cache flag, and whose price is plain
(:mod:`otel_llm_cost.pricing.plain_rates`), the attributes enrichment adds are the counts, the model
and the picodollar amounts: they are written straight from the values the plan reads, without a
``Usage``, a price lookup through it, or the tests for steps that find nothing. The names, order,
types and values are those of the general path (tests/test_usage_plan.py compares them); anything
else gives ``None`` and the general path runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.util.types import AttributeValue

from otel_llm_cost.conventions import names as sc
from otel_llm_cost.enrich.plain_cost import write_plain_cost
from otel_llm_cost.enrich.user_id import is_hashed_user_id
from otel_llm_cost.pricing.plain_rates import EXACT_TOKENS_LIMIT, plain_rates_pico

if TYPE_CHECKING:
    from otel_llm_cost.conventions.usage_plan import UsagePlan

__all__ = ["plain_call_attributes"]

_MODEL: Final = sc.LLM_MODEL
_PROVIDER: Final = sc.LLM_PROVIDER_NAME
_OPERATION: Final = sc.LLM_OPERATION
_CONVENTION: Final = sc.LLM_CONVENTION
_INPUT: Final = sc.LLM_TOKENS_INPUT
_OUTPUT: Final = sc.LLM_TOKENS_OUTPUT
_TOTAL: Final = sc.LLM_TOKENS_TOTAL
_CACHE_READ: Final = sc.LLM_TOKENS_CACHE_READ
_CACHE_WRITE: Final = sc.LLM_TOKENS_CACHE_WRITE
_REASONING: Final = sc.LLM_TOKENS_REASONING
_CACHE_HIT: Final = sc.LLM_CACHE_HIT
_TOKENS_SAVED: Final = sc.LLM_CACHE_TOKENS_SAVED
_BILLABLE: Final = sc.LLM_COST_BILLABLE


def plain_call_attributes(
    usage_plan: UsagePlan, cost_user_id: bool, attributes: Mapping[str, Any], pricebook: object
) -> dict[str, AttributeValue] | None:
    """What enrichment adds to this span, when it is the plain case above; else ``None``.

    ``cost_user_id``: whether the shape has ``cost.user_id`` (the general path may write its hash)."""
    values = usage_plan.values(attributes)
    if values is None:
        return None
    operation, aggregate, counts, request_model, response_model, provider, _, _, tier = values
    if cost_user_id:
        existing = attributes[sc.COST_USER_ID]
        if not (isinstance(existing, str) and is_hashed_user_id(existing)):
            return None  # a raw id: the general path writes its hash before the cost attributes
    input_tokens, output_tokens = counts[1], counts[2]
    if not 0 <= (input_tokens | output_tokens) < EXACT_TOKENS_LIMIT:
        return None
    model = response_model or request_model
    rates = plain_rates_pico(pricebook, model, provider, tier)
    if rates is None:
        return None
    # The general path's names in its order (_write_usage, then billable, then the cost).
    out: dict[str, AttributeValue] = {}
    if model is not None:
        out[_MODEL] = model
    if provider is not None:
        out[_PROVIDER] = provider
    if operation is not None:
        out[_OPERATION] = operation
    out[_CONVENTION] = usage_plan.convention
    out[_INPUT] = input_tokens
    out[_OUTPUT] = output_tokens
    out[_TOTAL] = input_tokens + output_tokens
    out[_CACHE_READ] = 0
    out[_CACHE_WRITE] = 0
    out[_REASONING] = 0
    out[_CACHE_HIT] = False
    out[_TOKENS_SAVED] = 0
    out[_BILLABLE] = not aggregate
    if not write_plain_cost(out, rates[0] * input_tokens, rates[1] * output_tokens, rates[2]):
        return None
    return out
