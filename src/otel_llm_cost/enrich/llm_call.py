"""The one decision for an ended span: is it an LLM call, what is added to it, is it billable.

Both paths that see spans nothing enriched use it: the processor's ``on_end`` (span by span, as they
end) and the exporter's standalone path (a batch at a time, in end order, e.g. under
``OTEL_TRACES_EXPORTER=duckdb opentelemetry-instrument`` or behind the OTLP receiver). A span that
already carries ``llm.cost.status`` was priced elsewhere (another service's processor, re-sent to the
receiver, or an application that wrote our names itself): unless its sender (``service.name``) is in
``OTEL_LLM_COST_TRUSTED_SENDERS``, its claimed cost is set aside and the call priced again from its
token counts. Storage checks every row against the stored-row rules and hashes user ids either way.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Mapping, Sequence, Sized
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import format_span_id

from otel_llm_cost import _config
from otel_llm_cost._logging import log_once
from otel_llm_cost.conventions import names as sc
from otel_llm_cost.enrich.attribution import UserIdHasher, default_user_id_hasher
from otel_llm_cost.enrich.dedup import DoubleCountGuard
from otel_llm_cost.enrich.enrichment import _enrichment, is_llm_candidate
from otel_llm_cost.enrich.span_copy import span_attributes
from otel_llm_cost.enrich.timing import add_call_timing

if TYPE_CHECKING:
    from otel_llm_cost.enrich.enrichment import _Pricer

__all__ = ["LLMCallEnricher", "make_span_enricher"]

_logger = logging.getLogger("otel_llm_cost.enrich")


class _FailingPriceBook:
    """Stands in when the price book cannot load: every call is stored unpriced, with the reason."""

    def __init__(self, error: Exception) -> None:
        self._error = error

    def compute_cost(self, usage: Any, *, at: Any = None, reported_cost_usd: Any = None) -> Any:
        raise self._error


def _scope_name(span: ReadableSpan) -> str | None:
    scope = span.instrumentation_scope
    return scope.name if scope is not None else None


class LLMCallEnricher:
    """Normalises, prices and deduplicates LLM spans nothing enriched; hashes user ids.

    Args:
        pricing: Prices the calls (``None``: ``PriceBook.default()``, loaded on the first LLM span
            only; when it cannot load, calls are stored unpriced with the reason).
        user_id_hasher: Hashes user ids (``None``: the process default, resolved on first use).
        dedup_capacity: How many recent calls the double-count guard remembers (``None``:
            ``OTEL_LLM_COST_DEDUP_CAPACITY``, default 10,000).
        trusted_senders: ``service.name`` values whose already-priced spans keep their cost
            (``None``: ``OTEL_LLM_COST_TRUSTED_SENDERS``, default none).

    Raises:
        ValueError: ``dedup_capacity`` is not positive.
    """

    __slots__ = ("_capacity", "_guard", "_hasher", "_pid", "_pricing", "_trusted_senders")

    def __init__(
        self,
        *,
        pricing: _Pricer | None = None,
        user_id_hasher: UserIdHasher | None = None,
        dedup_capacity: int | None = None,
        trusted_senders: Collection[str] | None = None,
    ) -> None:
        capacity = _config.DEDUP_CAPACITY.get() if dedup_capacity is None else dedup_capacity
        if capacity <= 0:
            raise ValueError(f"dedup_capacity must be positive, got {dedup_capacity!r}")
        self._capacity = capacity
        self._pricing = pricing
        self._hasher = user_id_hasher
        self._guard = DoubleCountGuard(capacity)
        self._pid = os.getpid()
        self._trusted_senders = frozenset(
            _config.TRUSTED_SENDERS.get() if trusted_senders is None else trusted_senders
        )

    # -- the decision, span by span (the processor's on_end) -----------------------------------------

    def span_ended(
        self, span: ReadableSpan, attributes: Mapping[str, Any], scope_name: str | None
    ) -> dict[str, Any] | None:
        """The attributes to add to an ended span (billable verdict included), or None: not a call.

        Spans must be handed over in end order: the span that ends first (the leaf closest to the
        HTTP call) is billable, its wrapper or twin is marked.
        """
        # Inlined rather than shared with _decide: this runs for every span the application ends.
        if is_llm_candidate(attributes, scope_name):
            if sc.LLM_COST_STATUS not in attributes:
                return self._llm_call(span, attributes, scope_name)
            if not self._trusted(span):
                return self._llm_call(span, _unclaimed(attributes), scope_name)
        if self._guard.tracking_ancestors:
            self._pass_on_ancestry(span)
        return None

    @property
    def tracking_ancestors(self) -> bool:
        """Whether a span that is no call may still have to pass "contains a call" on to its parent."""
        return self._guard.tracking_ancestors

    @property
    def open_ancestors(self) -> Sized:
        """The guard's live table behind :attr:`tracking_ancestors` (only :meth:`enrich` after a fork
        replaces the guard: a span-by-span caller may keep it)."""
        return self._guard.open_ancestors

    def _decide(
        self, span: ReadableSpan, attributes: Mapping[str, Any], scope_name: str | None, candidate: bool
    ) -> dict[str, Any] | None:
        """:meth:`span_ended` with ``is_llm_candidate`` already known."""
        if candidate:
            if sc.LLM_COST_STATUS not in attributes:
                return self._llm_call(span, attributes, scope_name)
            if not self._trusted(span):
                return self._llm_call(span, _unclaimed(attributes), scope_name)
        if self._guard.tracking_ancestors:
            self._pass_on_ancestry(span)
        return None

    def _llm_call(
        self, span: ReadableSpan, attributes: Mapping[str, Any], scope_name: str | None
    ) -> dict[str, Any] | None:
        pricing = self._pricing
        if pricing is None:
            pricing = self._pricer()
        start_ns = span.start_time
        extra = _enrichment(attributes, scope_name, start_ns, pricing, self._hasher)
        if extra is None:  # no usage could be read: not a call after all
            if self._guard.tracking_ancestors:
                self._pass_on_ancestry(span)
            return None
        end_ns = span.end_time
        self._mark_billable(span, attributes, extra, scope_name, start_ns or 0, end_ns)
        add_call_timing(extra, start_ns, end_ns, attributes)
        return extra

    def _trusted(self, span: ReadableSpan) -> bool:
        trusted = self._trusted_senders
        if not trusted:
            return False
        resource = span.resource
        return resource is not None and resource.attributes.get(sc.SERVICE_NAME) in trusted

    def _pass_on_ancestry(self, span: ReadableSpan) -> None:
        context, parent = span.context, span.parent
        if context is not None:
            self._guard.non_llm_span_ended(
                context.span_id, parent.span_id if parent is not None else None, context.trace_id
            )

    def _mark_billable(  # noqa: PLR0917 - positional: the per-span hot path
        self,
        span: ReadableSpan,
        attributes: Mapping[str, Any],
        extra: dict[str, Any],
        scope_name: str | None,
        start_ns: int,
        end_ns: int | None,
    ) -> None:
        context = span.context
        if context is None:
            return
        parent = span.parent
        response_id = attributes.get(sc.GEN_AI_RESPONSE_ID)
        input_tokens = extra.get(sc.LLM_TOKENS_INPUT)
        output_tokens = extra.get(sc.LLM_TOKENS_OUTPUT)
        span_id = context.span_id
        verdict = self._guard.decide(
            context.trace_id,
            span_id,
            parent.span_id if parent is not None else None,
            start_ns,
            end_ns or start_ns,
            scope_name == sc.ANTHROPIC_SDK_SCOPE,
            response_id if isinstance(response_id, str) else None,
            input_tokens if isinstance(input_tokens, int) else None,
            output_tokens if isinstance(output_tokens, int) else None,
            extra.get(sc.LLM_COST_BILLABLE) is False,
            None if parent is not None else (span.resource, extra),
        )
        duplicate_of = verdict.duplicate_of
        if duplicate_of is None:
            extra[sc.LLM_COST_BILLABLE] = verdict.billable
            return
        if duplicate_of == format_span_id(span_id):
            return  # the same span seen again (a retried batch, a re-sent span): never its own duplicate
        extra[sc.LLM_COST_BILLABLE] = verdict.billable
        extra[sc.LLM_COST_DUPLICATE_OF] = duplicate_of

    def _pricer(self) -> _Pricer:
        if self._pricing is None:
            from otel_llm_cost.pricing import PriceBook  # noqa: PLC0415 - prices load on the first raw LLM span

            try:
                self._pricing = PriceBook.default()  # type: ignore[assignment,unused-ignore]
            except Exception as exc:
                log_once(_logger, "exporter.pricebook", logging.ERROR, "could not load prices: %r", exc)
                return _FailingPriceBook(exc)
        return self._pricing  # type: ignore[return-value,unused-ignore]

    # -- the same decision, a batch at a time (the exporter's SpanEnricher) ----------------------------

    def enrich(self, spans: Sequence[ReadableSpan]) -> list[Mapping[str, Any] | None]:
        """:meth:`span_ended` for each span of an export batch, in end order; results in batch order."""
        if os.getpid() != self._pid:
            # A fork may have copied the guard's lock held; its memory is the parent's calls anyway.
            self._guard = DoubleCountGuard(self._capacity)
            self._pid = os.getpid()
        out: list[Mapping[str, Any] | None] = [None] * len(spans)
        scopes = [_scope_name(span) for span in spans]
        attributes = [span_attributes(span) for span in spans]
        candidates = [is_llm_candidate(*pair) for pair in zip(attributes, scopes, strict=True)]
        if not any(candidates) and not self._guard.tracking_ancestors:
            return out  # the usual batch beside the processor: no LLM span and nothing to pass on
        for index in sorted(range(len(spans)), key=lambda index: spans[index].end_time or 0):
            out[index] = self._decide(spans[index], attributes[index], scopes[index], candidates[index])
        return out

    def hash_user_id(self, raw: str) -> str:
        """The stored form of a user id (``UserIdHasher.hash``)."""
        return (self._hasher or default_user_id_hasher()).hash(raw)


# What a sender claims about a call's cost: set aside when the call is priced again.
_CLAIMS: Final = frozenset(
    {
        sc.LLM_COST_STATUS,
        sc.LLM_COST_USD,
        sc.LLM_COST_INPUT_USD,
        sc.LLM_COST_CACHE_READ_USD,
        sc.LLM_COST_CACHE_WRITE_USD,
        sc.LLM_COST_OUTPUT_USD,
        sc.LLM_COST_REASON,
        sc.LLM_COST_SOURCE,
        sc.LLM_COST_MODEL_ID,
        sc.LLM_COST_PROVIDER_ID,
        sc.LLM_COST_DEPLOYMENT,
        sc.LLM_COST_BILLABLE,
        sc.LLM_COST_DUPLICATE_OF,
        sc.LLM_CACHE_COST_SAVED_USD,
        sc.GEN_AI_USAGE_COST,
        sc.GEN_AI_USAGE_COST_SOURCE,
        *sc.COST_MIRROR_ATTRIBUTE_NAMES,
    }
)


def _unclaimed(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in attributes.items() if name not in _CLAIMS}


def make_span_enricher(
    *, pricing: Any = None, user_id_hasher: Any = None, dedup_capacity: int | None = None
) -> LLMCallEnricher:
    """The exporter's default :class:`~otel_llm_cost.storage.enricher.SpanEnricher` (see its module)."""
    return LLMCallEnricher(pricing=pricing, user_id_hasher=user_id_hasher, dedup_capacity=dedup_capacity)
