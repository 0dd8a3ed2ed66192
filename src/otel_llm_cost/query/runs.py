"""Agent runs (``CostStore.agent_runs``): one row per run of an agent, with its calls, tokens and cost.

A run is the billable calls one agent (``cost.agent``) made within one trace: an agent invoked once
per request, task or conversation turn is one run per trace. Pure SQL text, like
:mod:`otel_llm_cost.query.sql`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from otel_llm_cost.query.sql import KNOWN_COST, TOKEN_SPLIT, UNPRICED, Query, billable_where
from otel_llm_cost.query.tabular import Source, Tabular
from otel_llm_cost.storage.schema import CALLS_TABLE

__all__ = ["AgentRun", "agent_runs"]


@dataclass(frozen=True, slots=True)
class AgentRun(Tabular):
    """One agent run: the billable calls of one agent in one trace.

    Attributes:
        total_cost_usd: the priced calls' cost; ``None`` when none is priced.
        unpriced_calls: calls whose price is unknown (not in ``total_cost_usd``).
        latency_ms: sum of the calls' latencies (they may overlap; ``ended_at - started_at`` is the
            wall-clock span of the run's calls).
    """

    agent: str
    trace_id: str
    started_at: datetime
    ended_at: datetime | None
    call_count: int
    unpriced_calls: int
    total_cost_usd: Decimal | None
    total_tokens: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    latency_ms: float
    _source: Source | None = field(default=None, repr=False, compare=False)

    @property
    def cache_hit_rate(self) -> float:
        """cache_read / (cache_read + cache_write) tokens; 0 when both are 0."""
        denominator = self.cache_read_tokens + self.cache_write_tokens
        return self.cache_read_tokens / denominator if denominator else 0.0


def agent_runs(
    start: datetime | None, end: datetime | None, *, agent: str | None = None, limit: int | None = None
) -> Query:
    """One row per (agent, trace) of the billable calls in ``[start, end)``, earliest run first."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    extra: list[tuple[str, tuple[object, ...]]] = [("agent IS NOT NULL", ())]
    if agent is not None:
        extra.append(("agent = ?", (agent,)))
    where, params = billable_where(start, end, tuple(extra))
    sql = (
        "SELECT agent, trace_id, min(start_time) AS started_at, max(end_time) AS ended_at, "
        f"count(*) AS call_count, count(*) FILTER (WHERE {UNPRICED}) AS unpriced_calls, "
        f"{KNOWN_COST} AS total_cost_usd, "
        "CAST(COALESCE(sum(total_tokens), 0) AS HUGEINT) AS total_tokens, "
        f"{TOKEN_SPLIT}, COALESCE(sum(duration_ms), 0) AS latency_ms "
        f"FROM {CALLS_TABLE} WHERE {where} GROUP BY agent, trace_id "
        "ORDER BY started_at, agent, trace_id" + (" LIMIT ?" if limit is not None else "")
    )
    return Query(sql, params + ((limit,) if limit is not None else ()))
