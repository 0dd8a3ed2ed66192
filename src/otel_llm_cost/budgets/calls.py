"""Per-call budgets: one enriched LLM span's cost against every per-call limit, as the span ends.

This runs on the application's thread (the processor's ``on_end``): it reads the float
``llm.cost_usd`` the enrichment wrote, decides with exact Decimals, and remembers recently alerted
calls in bounded memory so that a span seen twice alerts once.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from otel_llm_cost._money import NANOS_PER_SECOND, quantize_usd
from otel_llm_cost.budgets.alerts import AlertKind, BudgetAlert
from otel_llm_cost.budgets.evaluation import BudgetStatus
from otel_llm_cost.budgets.messages import build_alert
from otel_llm_cost.budgets.scopes import scope_from_attributes
from otel_llm_cost.budgets.spec import BudgetSpec
from otel_llm_cost.conventions import names as semconv

__all__ = ["CallChecker"]

_RECENT_CALLS_REMEMBERED: Final = 10_000


def _hex_id(value: object, width: int) -> str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:0{width}x}" if value else None
    if isinstance(value, str) and value:
        return value.lower()
    return None


def _exact_cost(raw_cost: object) -> Decimal | None:
    if isinstance(raw_cost, int | float) and not isinstance(raw_cost, bool) and math.isfinite(raw_cost):
        return quantize_usd(Decimal(repr(raw_cost)))
    return None


class CallChecker:
    """Checks one span's attributes against the per-call budgets; thread-safe.

    Args:
        clock: Returns the current time (timezone-aware), stamped on each alert as ``fired_at``.
    """

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._recent: OrderedDict[tuple[str, str], None] = OrderedDict()

    def check(
        self,
        budgets: Sequence[BudgetSpec],
        attributes: Mapping[str, Any],
        trace_id: int | str | None,
        span_id: int | str | None,
        start_time_ns: int | None,
    ) -> list[BudgetAlert]:
        """The alerts the call fires (an unpriced model alerts once per budget and model)."""
        if attributes.get(semconv.LLM_COST_BILLABLE) is False:
            return []
        span_hex = _hex_id(span_id, 16)
        trace_hex = _hex_id(trace_id, 32)
        cost = _exact_cost(attributes.get(semconv.LLM_COST_USD))
        started = (
            datetime.fromtimestamp(start_time_ns / NANOS_PER_SECOND, UTC)
            if isinstance(start_time_ns, int)
            else None
        )
        fired: list[BudgetAlert] = []
        for budget in budgets:
            if not budget.is_per_call:
                continue
            if not budget.matches(lambda key: scope_from_attributes(attributes, key)):
                continue
            if cost is None:
                # One warning per (budget, model) per process: per call it would flood the log.
                model = scope_from_attributes(attributes, "model") or "unknown"
                if not self._remember((budget.name, f"unpriced:{model}")):
                    continue
                status = BudgetStatus(budget, model, None, None, Decimal(0), 1, 1, None, None, "call")
                fired.append(
                    build_alert(AlertKind.UNPRICED, status, Decimal(0), trace_hex, span_hex, self._clock())
                )
                continue
            entity = span_hex or "unknown"
            if span_hex is not None and not self._remember((budget.name, span_hex)):
                continue
            status = BudgetStatus(budget, entity, started, None, cost, 1, 0, None, None, "call")
            fired.extend(
                build_alert(AlertKind.THRESHOLD, status, threshold, trace_hex, span_hex, self._clock())
                for threshold in budget.thresholds
                # A per-call limit is what a call may cost: only a call above it alerts.
                if cost > budget.limit_usd * threshold
            )
        return fired

    def _remember(self, key: tuple[str, str]) -> bool:
        """False when ``key`` was seen recently (bounded memory, oldest forgotten first)."""
        with self._lock:
            if key in self._recent:
                return False
            self._recent[key] = None
            if len(self._recent) > _RECENT_CALLS_REMEMBERED:
                self._recent.popitem(last=False)
            return True
