"""The ledger reports every CostStore answers: spend by dimension, per day, totals, workflows, sessions.

Each method validates its arguments, takes its SQL from :mod:`~otel_llm_cost.query.sql` and lets the
store's :class:`~otel_llm_cost.query.reader.Reader` run it into typed results. CostStore adds to them how
the file is reached, free SQL, budgets, what-if, reprice and the alert history.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from otel_llm_cost.query import pricing_sql as _pricing_sql
from otel_llm_cost.query import rollup_reports as _rolled
from otel_llm_cost.query import runs as _runs
from otel_llm_cost.query import sql as _queries
from otel_llm_cost.query.columns import many_values
from otel_llm_cost.query.filters import Where, where_conditions
from otel_llm_cost.query.reader import Reader
from otel_llm_cost.query.results import CallRow, CostRow, DailyCost, Savings, Summary, WorkflowTotals
from otel_llm_cost.query.runs import AgentRun
from otel_llm_cost.query.session import SessionSummary
from otel_llm_cost.query.session_totals import session_calls, summarize_session
from otel_llm_cost.query.tabular import Rows

__all__ = ["LedgerReports"]


class LedgerReports:
    """The report methods of :class:`~otel_llm_cost.query.store.CostStore` (see there)."""

    _reader: Reader

    def cost_by(
        self,
        dimension: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        where: Where | None = None,
    ) -> Rows[CostRow]:
        """Spend grouped by ``dimension`` over ``[start, end)``, highest cost first.

        Args:
            dimension: one of ``model, provider, upstream_model, deployment (resource), service, feature,
                agent, user, org, session, workflow, workflow_label, step, role, task`` (aliases such as
                ``user_id`` work) or ``tag:<key>`` for a custom ``cost.<key>`` tag.
            start: inclusive lower bound (timezone-aware), or None.
            end: exclusive upper bound (timezone-aware), or None.
            where: only calls whose dimensions have these values, e.g. ``{"feature": "search",
                "tag:team": "growth"}`` (None matches a missing value); every report method takes it.

        Returns:
            Rows of :class:`CostRow`; groups with no priced call sort last.

        Raises:
            UnknownDimensionError: the dimension is not known (the message lists the valid ones).
            ValueError: a naive datetime or an empty window.
        """
        resolved = _queries.resolve_dimension(dimension)
        _queries.check_window(start, end)
        conditions = where_conditions(where)
        query = _queries.cost_by(resolved, start, end, conditions=conditions)
        rolled = None if conditions else partial(_rolled.cost_by, resolved, start, end)
        return self._reader.rows(CostRow, query, rolled, columnar=many_values(resolved))

    def cost_by_model(
        self, start: datetime | None = None, end: datetime | None = None, *, where: Where | None = None
    ) -> Rows[CostRow]:
        """``cost_by("model", start, end)``."""
        return self.cost_by("model", start, end, where=where)

    def cost_by_provider(
        self, start: datetime | None = None, end: datetime | None = None, *, where: Where | None = None
    ) -> Rows[CostRow]:
        """``cost_by("provider", start, end)``."""
        return self.cost_by("provider", start, end, where=where)

    def cost_by_workflow_label(
        self, start: datetime | None = None, end: datetime | None = None, *, where: Where | None = None
    ) -> Rows[CostRow]:
        """``cost_by("workflow_label", start, end)``: what each kind of workflow costs."""
        return self.cost_by("workflow_label", start, end, where=where)

    def daily_cost(
        self, start: datetime, end: datetime, tz: str = "UTC", *, where: Where | None = None
    ) -> Rows[DailyCost]:
        """One row per calendar day in ``tz`` touched by ``[start, end)``, days without calls as zero.

        A day's row sums the calls of that local day that fall inside the window, so the rows always
        add up to the window's total, across DST changes too (23- and 25-hour days).

        Args:
            start: inclusive, timezone-aware.
            end: exclusive, timezone-aware.
            tz: IANA time zone name for the day boundaries (default UTC).

        Raises:
            ValueError: naive datetimes, an empty window or an unknown time zone.
        """
        _queries.check_window(start, end)
        if start is None or end is None:
            raise ValueError("daily_cost needs both start and end")
        zone = _queries.resolve_timezone(tz)
        conditions = where_conditions(where)
        query = _queries.daily_cost(start, end, zone, conditions)
        rolled = None if conditions else partial(_rolled.daily_cost, start, end, zone)
        return self._reader.rows(DailyCost, query, rolled)

    def summary(
        self, start: datetime | None = None, end: datetime | None = None, *, where: Where | None = None
    ) -> Summary:
        """Totals over ``[start, end)``: calls, spend, tokens, cache hit rate and cache savings.

        Raises:
            ValueError: a naive datetime or an empty window.
        """
        _queries.check_window(start, end)
        conditions = where_conditions(where)
        query = _queries.totals(start, end, count_excluded=True, conditions=conditions)
        rolled = None if conditions else partial(_rolled.totals, start, end)
        return self._reader.one(Summary, query, rolled, start=start, end=end)

    def workflow_totals(self, workflow_id: str) -> WorkflowTotals:
        """Totals of one workflow: tokens by kind, cost, latency sum, step count, cached steps.

        ``cost_usd`` is ``None`` when any step is unpriced; ``known_cost_usd`` is the priced part.
        An unknown workflow id gives ``step_count == 0``.
        """
        source, records = self._reader.records(_queries.totals(workflow_id=workflow_id))
        return WorkflowTotals.from_totals(workflow_id, records[0], source)

    def steps_for_workflow(self, workflow_id: str) -> Rows[CallRow]:
        """The workflow's billable calls in start order (ties broken by span id)."""
        return self._reader.rows(CallRow, _queries.workflow_steps(workflow_id))

    def session_summary(self, session_id: str) -> SessionSummary:
        """Duration, totals, provider and model breakdowns, and the list of calls of one session.

        ``str(result)`` or ``result.format("compact" | "table")`` prints it.
        """
        return summarize_session(session_id, self._reader.execute(session_calls(session_id)))

    def agent_runs(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        agent: str | None = None,
        limit: int | None = None,
    ) -> Rows[AgentRun]:
        """One row per agent run in ``[start, end)`` (a run: one agent's calls in one trace), earliest first.

        Each row has the agent, its trace, first start and last end, calls, tokens by kind, cost and
        cache hit rate; only calls tagged with an agent (``cost.agent``) count.

        Args:
            start: inclusive lower bound (timezone-aware), or None.
            end: exclusive upper bound (timezone-aware), or None.
            agent: only this agent's runs.
            limit: at most this many runs.

        Raises:
            ValueError: a naive datetime, an empty window or ``limit < 1``.
        """
        _queries.check_window(start, end)
        return self._reader.rows(AgentRun, _runs.agent_runs(start, end, agent=agent, limit=limit))

    def top_calls(
        self,
        n: int = 10,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        where: Where | None = None,
    ) -> Rows[CallRow]:
        """The ``n`` most expensive priced calls in ``[start, end)``.

        Raises:
            ValueError: ``n < 1``, a naive datetime or an empty window.
        """
        _queries.check_window(start, end)
        return self._reader.rows(CallRow, _queries.top_calls(n, start, end, where_conditions(where)))

    def savings(
        self, start: datetime | None = None, end: datetime | None = None, *, where: Where | None = None
    ) -> Savings:
        """What prompt caching saved in ``[start, end)``, and how many calls the app marked downgradable.

        Raises:
            ValueError: a naive datetime or an empty window.
        """
        _queries.check_window(start, end)
        conditions = where_conditions(where)
        query = _pricing_sql.savings(start, end, conditions)
        rolled = None if conditions else partial(_rolled.savings, start, end)
        return self._reader.one(Savings, query, rolled, start=start, end=end)
