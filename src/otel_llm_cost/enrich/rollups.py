"""Totals of agent runs and sessions: the billable LLM calls below an agent, workflow or session span.

Children end before their parents, so the totals are accumulated as spans end: an ending span hands
what it gathered (its own call, plus what its children handed it) to its parent, and an agent,
workflow or session span, when it ends, gets the totals of everything below it written on its enriched
copy. The figures are the calls as we priced them (billable records only: a duplicate record of a call
or an agent span's own claimed totals add nothing).

Memory stays bounded: a trace's pending totals are dropped when its local root ends, and at most
``capacity`` traces are tracked (the oldest is dropped first: a parent in another process, or a span
that ends after its parent, leaves totals nobody collects).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sized
from decimal import Decimal
from typing import Any, Final

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext

from otel_llm_cost.conventions import names as sc

__all__ = ["ROLLUP_NAMES", "RollupTracker", "is_agent_span", "is_session_span"]

DEFAULT_TRACE_CAPACITY: Final = 10_000
_PRICED_STATUSES: Final = frozenset({"priced", "reported", "free"})
_SESSION_ID_NAMES: Final = frozenset((sc.COST_SESSION_ID, *sc.CONVERSATION_ID_NAMES))
# Names an agent/workflow span is recognised by: most spans have none of them (one C-level test).
_AGENT_KIND_NAMES: Final = frozenset(
    {sc.GEN_AI_OPERATION_NAME, sc.OPENINFERENCE_SPAN_KIND, sc.TRACELOOP_SPAN_KIND}
)
ROLLUP_NAMES: Final = _AGENT_KIND_NAMES | _SESSION_ID_NAMES
"""Names an agent, workflow or session span may be recognised by; a span with none of them, while no
trace has pending totals (:attr:`RollupTracker.pending`), gets no rollup."""
# Costs are summed as integer picodollars: the span's float is the 12-place Decimal price, which
# round(float * 1e12) recovers exactly below $9,000 (float has 53 bits), and integer sums are exact.
_PICO: Final = 10**12


def is_agent_span(attributes: Mapping[str, Any]) -> bool:
    """An agent or workflow run, in any convention (GenAI operation, OpenInference or Traceloop kind)."""
    if _AGENT_KIND_NAMES.isdisjoint(attributes):
        return False
    operation = attributes.get(sc.GEN_AI_OPERATION_NAME)
    if operation in sc.AGENT_OPERATIONS:
        return True
    if attributes.get(sc.OPENINFERENCE_SPAN_KIND) in sc.OPENINFERENCE_AGENT_KINDS:
        return True
    return attributes.get(sc.TRACELOOP_SPAN_KIND) in sc.TRACELOOP_AGENT_KINDS


def is_session_span(span: ReadableSpan, attributes: Mapping[str, Any]) -> bool:
    """The local root of a trace (no parent, or one in another process) that names a session."""
    parent = span.parent
    if parent is not None and not parent.is_remote:
        return False
    if _SESSION_ID_NAMES.isdisjoint(attributes):
        return False
    return any(isinstance(attributes.get(name), str | int) for name in _SESSION_ID_NAMES)


class _Totals:
    __slots__ = ("agent_runs", "calls", "cost_pico_usd", "tokens", "unpriced")

    def __init__(self) -> None:
        self.tokens = 0
        self.cost_pico_usd = 0
        self.calls = 0
        self.unpriced = 0
        self.agent_runs = 0

    def add(self, other: _Totals) -> None:
        self.tokens += other.tokens
        self.cost_pico_usd += other.cost_pico_usd
        self.calls += other.calls
        self.unpriced += other.unpriced
        self.agent_runs += other.agent_runs

    def add_call(self, extra: Mapping[str, Any]) -> None:
        self.calls += 1
        tokens = extra.get(sc.LLM_TOKENS_TOTAL)
        if isinstance(tokens, int):
            self.tokens += tokens
        cost = extra.get(sc.LLM_COST_USD)
        if extra.get(sc.LLM_COST_STATUS) in _PRICED_STATUSES and isinstance(cost, int | float):
            self.cost_pico_usd += round(cost * _PICO)
        elif extra.get(sc.LLM_RESPONSE_FROM_CACHE) is not True:
            self.unpriced += 1

    def attributes(self, agent: bool, session: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        # An unknown price is no figure, never $0: with no priced call, the cost attribute is absent.
        cost = (
            float(Decimal(self.cost_pico_usd) / _PICO)
            if self.unpriced < self.calls or not self.calls
            else None
        )
        if agent:
            out[sc.AGENT_TOTAL_TOKENS] = self.tokens
            out[sc.AGENT_LLM_CALLS] = self.calls
            out[sc.AGENT_UNPRICED_CALLS] = self.unpriced
            if cost is not None:
                out[sc.AGENT_TOTAL_COST_USD] = cost
        if session:
            out[sc.SESSION_TOTAL_TOKENS] = self.tokens
            out[sc.SESSION_LLM_CALLS] = self.calls
            out[sc.SESSION_UNPRICED_CALLS] = self.unpriced
            out[sc.SESSION_AGENT_RUNS] = self.agent_runs
            if cost is not None:
                out[sc.SESSION_TOTAL_COST_USD] = cost
        return out


def _is_billable_call(extra: Mapping[str, Any] | None) -> bool:
    return extra is not None and extra.get(sc.LLM_COST_BILLABLE) is True


class RollupTracker:
    """Accumulates billable calls up the parent chain; returns the rollup attributes of a span that ends.

    Thread-safe; spans must be handed over as they end (children before parents).

    Args:
        capacity: How many traces with pending totals are remembered at most.

    Raises:
        ValueError: ``capacity`` is not positive.
    """

    __slots__ = ("_capacity", "_lock", "_traces")

    def __init__(self, capacity: int = DEFAULT_TRACE_CAPACITY) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity!r}")
        self._capacity = capacity
        self._lock = threading.Lock()
        # trace id -> span id -> totals handed up to that (still running) span; insertion-ordered.
        self._traces: dict[int, dict[int, _Totals]] = {}

    @property
    def pending(self) -> bool:
        """Whether any trace has totals waiting for a parent (cheap, lock-free check)."""
        return bool(self._traces)

    @property
    def waiting_traces(self) -> Sized:
        """The live table behind :attr:`pending` (non-empty exactly when it is true), for a caller
        that tests it on every span without a property call."""
        return self._traces

    @property
    def tracked_traces(self) -> int:
        """How many traces have pending totals (for tests and diagnostics)."""
        return len(self._traces)

    def span_ended(
        self, span: ReadableSpan, attributes: Mapping[str, Any], extra: Mapping[str, Any] | None
    ) -> dict[str, Any] | None:
        """The rollup attributes for ``span`` (an agent, workflow or session span), else ``None``.

        Args:
            span: The span that ended.
            attributes: Its attributes.
            extra: What the enrichment adds to it (``None``: not an LLM call); a billable call counts.
        """
        if (
            extra is None
            and _AGENT_KIND_NAMES.isdisjoint(attributes)
            and _SESSION_ID_NAMES.isdisjoint(attributes)
        ):
            # The usual span (HTTP, DB...): it only hands up what its children handed it, if anything.
            if not self._traces:
                return None
            context = span.context
            if context is None or context.trace_id not in self._traces:
                return None
            with self._lock:
                return self._ended(span, context, None, billable=False, agent=False, session=False)
        context = span.context
        if context is None:
            return None
        billable = _is_billable_call(extra)
        # An agent span may carry usage of its own (its children's, repeated): enriched, never billable.
        not_a_call = extra is None or extra.get(sc.LLM_COST_BILLABLE) is False
        agent = not_a_call and is_agent_span(attributes)
        parent = span.parent
        root = parent is None or parent.is_remote
        session = not_a_call and root and is_session_span(span, attributes)
        if not (agent or session) and (root or not billable) and context.trace_id not in self._traces:
            return None  # nothing below it was counted, nothing to hand up
        with self._lock:
            return self._ended(span, context, extra, billable=billable, agent=agent, session=session)

    def _ended(
        self,
        span: ReadableSpan,
        context: SpanContext,
        extra: Mapping[str, Any] | None,
        *,
        billable: bool,
        agent: bool,
        session: bool,
    ) -> dict[str, Any] | None:
        trace_id, span_id = context.trace_id, context.span_id
        pending = self._traces.get(trace_id)
        totals = pending.pop(span_id, None) if pending is not None else None
        if totals is None:
            totals = _Totals()
        if billable and extra is not None:
            totals.add_call(extra)
        if agent:
            totals.agent_runs += 1
        parent = span.parent
        if parent is None or parent.is_remote:
            if pending is not None and not pending:
                del self._traces[trace_id]  # the local root ended: the trace is finished here
        elif totals.calls or totals.agent_runs:
            self._hand_up(trace_id, parent.span_id, totals)
        return totals.attributes(agent, session) if agent or session else None

    def _hand_up(self, trace_id: int, parent_id: int, totals: _Totals) -> None:
        pending = self._traces.get(trace_id)
        if pending is None:
            if len(self._traces) >= self._capacity:
                del self._traces[next(iter(self._traces))]
            pending = self._traces[trace_id] = {}
        gathered = pending.get(parent_id)
        if gathered is None:
            pending[parent_id] = totals
        else:
            gathered.add(totals)
