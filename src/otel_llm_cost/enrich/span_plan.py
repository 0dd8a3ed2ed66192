"""What enrichment needs to know about an LLM span that depends only on its names, kept per shape.

Spans of one instrumentation come with the same attribute names in the same order, call after call.
Keyed by the scope name and the tuple of attribute names (one tuple build and one dict lookup per
span), a :class:`SpanPlan` holds the compiled usage reading
(:class:`~otel_llm_cost.conventions.usage_plan.UsagePlan`) and which of enrichment's optional steps
can find anything on such a span: a cost the span reports itself, ids to map onto ``cost.*``, the
response-cache flag, a ``cost.user_id`` that may need hashing. Each step a plan skips would have
found none of its names.

At most ``_MAX_PLANS`` shapes are kept; spans of further shapes (an instrumentation whose names
vary from call to call) take the general path, as every span did before plans.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from opentelemetry.util.types import AttributeValue

from otel_llm_cost.conventions import names as sc
from otel_llm_cost.conventions.usage import Usage, normalize_usage
from otel_llm_cost.conventions.usage_plan import UsagePlan, compile_usage_plan
from otel_llm_cost.enrich.plain_call import plain_call_attributes

__all__ = ["ID_SOURCE_NAMES", "SpanPlan", "span_plan"]

ID_SOURCE_NAMES: Final = frozenset((sc.SESSION_ID, *sc.USER_ID_SOURCE_NAMES))
"""Names whose values enrichment maps onto ``cost.session_id``/``cost.user_id``."""
_REPORTED_COST_NAMES: Final = frozenset(
    (sc.GEN_AI_USAGE_COST, sc.GEN_AI_USAGE_COST_SOURCE, sc.LLM_COST_TOTAL)
)
_MAX_PLANS: Final = 1024


class SpanPlan:
    """Per shape: the usage plan (``None``: general path) and which optional steps may find something."""

    __slots__ = ("cost_user_id", "mapped_ids", "plain", "reported_cost", "response_cache", "usage")

    def __init__(
        self,
        usage: UsagePlan | None,
        *,
        reported_cost: bool,
        mapped_ids: bool,
        cost_user_id: bool,
        response_cache: bool,
    ) -> None:
        self.usage = usage
        self.reported_cost = reported_cost
        self.mapped_ids = mapped_ids
        self.cost_user_id = cost_user_id
        self.response_cache = response_cache
        # The usual call: no cache, reasoning, reported-cost, id or response-cache names to read.
        self.plain = (
            usage is not None and usage.plain_counts and not (reported_cost or mapped_ids or response_cache)
        )

    def plain_attributes(
        self, attributes: Mapping[str, Any], pricebook: object
    ) -> dict[str, AttributeValue] | None:
        """What enrichment adds to a span of this shape when it is the usual call, plainly priced
        (:mod:`otel_llm_cost.enrich.plain_call`); ``None``: the general path. Never raises."""
        if not self.plain or self.usage is None:
            return None
        try:
            return plain_call_attributes(self.usage, self.cost_user_id, attributes, pricebook)
        except Exception:  # the general path runs next: it copes with, and logs, whatever failed here
            return None

    def read_usage(self, attributes: Mapping[str, Any], scope_name: str | None) -> Usage | None:
        """:func:`~otel_llm_cost.conventions.usage.normalize_usage` of a span of this shape."""
        if self.usage is not None:
            try:
                usage = self.usage.read(attributes)
            except Exception:  # a mapping that changed or misbehaves: the general path copes with it
                usage = None
            if usage is not None:
                return usage
        # No plan for this shape, or a value it does not read (malformed, missing): the general path.
        return normalize_usage(attributes, scope_name)


_GENERAL: Final = SpanPlan(None, reported_cost=True, mapped_ids=True, cost_user_id=True, response_cache=True)
_PLANS: dict[tuple[Any, tuple[str, ...]], SpanPlan] = {}


def _compile(names: tuple[str, ...], scope_name: str | None) -> SpanPlan:
    prefix = sc.TRACELOOP_ASSOCIATION_PREFIX
    return SpanPlan(
        compile_usage_plan(names, scope_name),
        reported_cost=not _REPORTED_COST_NAMES.isdisjoint(names),
        mapped_ids=not ID_SOURCE_NAMES.isdisjoint(names) or any(name.startswith(prefix) for name in names),
        cost_user_id=sc.COST_USER_ID in names,
        response_cache=sc.LLM_RESPONSE_FROM_CACHE in names,
    )


def span_plan(attributes: Mapping[str, Any], scope_name: str | None) -> SpanPlan:
    """The plan for spans shaped as this one (the general plan when it cannot be kept); never raises."""
    try:
        names = tuple(attributes)
        key = (scope_name, names)
        plan = _PLANS.get(key)
        if plan is None:
            if len(_PLANS) >= _MAX_PLANS:
                return _GENERAL
            plan = _PLANS[key] = _compile(names, scope_name)
    except Exception:  # a mapping whose names cannot be listed or hashed: the general path copes
        return _GENERAL
    return plan
