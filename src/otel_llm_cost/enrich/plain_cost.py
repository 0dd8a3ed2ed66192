"""The cost attributes of the common LLM call, written from whole picodollars.

Most calls have no cache tokens and are priced from rates written exactly with 12 decimal places
(:meth:`otel_llm_cost.pricing.PriceBook.plain_cost_pico`): their amounts are integers times 10**-12.
Writing them from those integers skips the ``CostBreakdown`` and the ``float(Decimal)`` conversions
(each goes through the decimal string) of the general path, with the same attribute values:
``n / 1e12`` is the float nearest ``n * 10**-12`` (both operands are exact floats and IEEE division
rounds correctly), which is what ``float(Decimal)`` returns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from opentelemetry.util.types import AttributeValue

from otel_llm_cost.conventions import names as sc
from otel_llm_cost.pricing import CostStatus

if TYPE_CHECKING:
    from otel_llm_cost.pricing import CostBreakdown

__all__ = ["write_cost_labels", "write_plain_cost"]

_PICO_PER_USD: Final = 1e12
_MAX_EXACT: Final = 1 << 53
"""Integers below this are exact floats."""
_PRICED: Final = str(CostStatus.PRICED)


def write_plain_cost(
    out: dict[str, AttributeValue], input_pico: int, output_pico: int, labels: CostBreakdown
) -> bool:
    """Add the attributes the general path writes for a priced call of these amounts; ``False``: the
    amounts are too large to convert exactly this way (nothing written)."""
    total_pico = input_pico + output_pico
    if total_pico >= _MAX_EXACT:
        return False
    total = total_pico / _PICO_PER_USD
    out[sc.LLM_COST_STATUS] = _PRICED
    out[sc.LLM_COST_USD] = total
    out[sc.GEN_AI_USAGE_COST_MIRROR] = total
    out[sc.GEN_AI_USAGE_COST_AMOUNT] = total
    out[sc.GEN_AI_USAGE_COST_CURRENCY] = sc.COST_CURRENCY_USD
    out[sc.GEN_AI_USAGE_COST_SOURCE] = sc.COST_SOURCE_LOCAL
    out[sc.OPERATION_COST] = total
    out[sc.LLM_COST_INPUT_USD] = input_pico / _PICO_PER_USD
    out[sc.LLM_COST_CACHE_READ_USD] = 0.0
    out[sc.LLM_COST_CACHE_WRITE_USD] = 0.0
    out[sc.LLM_COST_OUTPUT_USD] = output_pico / _PICO_PER_USD
    out[sc.LLM_CACHE_COST_SAVED_USD] = 0.0
    write_cost_labels(out, labels)
    return True


def write_cost_labels(out: dict[str, AttributeValue], cost: CostBreakdown) -> None:
    """Add where the price came from: its source, why it is missing, the model, provider and deployment."""
    if cost.source is not None:
        out[sc.LLM_COST_SOURCE] = cost.source
    if cost.reason is not None:
        out[sc.LLM_COST_REASON] = cost.reason
    if cost.model_id is not None:
        out[sc.LLM_COST_MODEL_ID] = cost.model_id
    provider_id = cost.provider_id
    if provider_id is not None:
        out[sc.LLM_COST_PROVIDER_ID] = provider_id
        # The span named no provider but pricing knew it (a Claude model is Anthropic's): reports
        # group the call under that provider instead of under none.
        out.setdefault(sc.LLM_PROVIDER_NAME, provider_id)
    deployment = getattr(cost, "deployment", None)
    if deployment is not None:
        out[sc.LLM_COST_DEPLOYMENT] = deployment
