"""The :class:`Budget` model: a spending limit for a scope over a window, with alert thresholds.

A ``Budget`` is validated at construction and immutable. It is also how the layers below this package
(the processor, the store) reach budget behaviour without importing it: they call the methods of the
budgets they are given (:meth:`Budget.engine_for`, :meth:`Budget.statuses`, :meth:`Budget.remaining_usd`).

Example::

    from otel_llm_cost.budgets import Budget, evaluate_budgets

    budgets = [Budget.per_call(1.00), Budget.per_org_daily(1000, tz="Europe/Berlin")]
    for status in evaluate_budgets(connection, budgets):
        print(status.budget.name, status.entity, status.spent_usd, status.percent)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import duckdb

from otel_llm_cost.budgets.engine import BudgetEngine
from otel_llm_cost.budgets.evaluation import BudgetStatus, evaluate_budgets, remaining_budget
from otel_llm_cost.budgets.fields import parse_limit, parse_thresholds, parse_zone
from otel_llm_cost.budgets.scopes import canonical_scope, normalized_where
from otel_llm_cost.budgets.sinks import AlertSink
from otel_llm_cost.budgets.windows import aware, canonical_window, window_containing
from otel_llm_cost.exceptions import BudgetConfigError

__all__ = ["Budget"]


@dataclass(frozen=True, slots=True, init=False)
class Budget:
    """A spending limit for a scope over a window, with alert thresholds.

    Args:
        name: Unique name; alerts and the ``budget_alerts`` table refer to it.
        scope: What the limit applies to, each value separately: ``call``, ``session``, ``user``,
            ``org``, ``feature``, ``agent``, ``workflow``, ``workflow_label``, ``step``, ``model``,
            ``provider``, ``service``, ``global`` (everything together), or any custom tag key
            (``team`` or ``tag:team`` reads ``cost.team`` / ``tags['team']``).
        window: ``call`` (each call alone; only with scope ``call``), ``session`` / ``lifetime``
            (all time, e.g. a session's lifetime), ``day``, ``week`` (ISO, from Monday), ``month``
            (calendar windows in ``tz``), or ``rolling:<N>h`` / ``rolling:<N>d`` (the last N hours).
        limit_usd: The limit in USD; any of Decimal, int, str or float (read via ``Decimal(str(x))``).
        thresholds: Fractions of the limit that fire an alert (``1.0`` = 100%; above 1 allowed).
        tz: IANA time zone of calendar windows (``Europe/Berlin``); ignored by other windows.
        where: Narrows the budget to calls whose scope values match, e.g. ``{"org": "org_123"}`` or
            ``{"feature": ["search", "chat"]}`` (any of). User ids are stored as a keyed hash, so a
            ``user`` filter must hold the hashed id:
            ``otel_llm_cost.enrich.attribution.default_user_id_hasher().hash("u-42")`` (the processor's key).

    Raises:
        BudgetConfigError: (a ``ValueError``) for any invalid argument; the message names the field.
    """

    name: str
    scope: str
    window: str
    limit_usd: Decimal
    thresholds: tuple[Decimal, ...]
    tz: str
    where: Mapping[str, tuple[str, ...]]
    _rolling_hours: int | None = field(repr=False, compare=False)
    _zone: ZoneInfo = field(repr=False, compare=False)

    def __init__(  # noqa: PLR0917 - the issue's documented signature is positional
        self,
        name: str,
        scope: str,
        window: str,
        limit_usd: Decimal | int | float | str,
        thresholds: Iterable[Decimal | int | float | str] = (0.5, 0.8, 1.0),
        tz: str = "UTC",
        where: Mapping[str, str | Sequence[str]] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise BudgetConfigError(f"name: expected a non-empty string, got {name!r}", field="name")
        scope_name = canonical_scope(scope)
        window_name, rolling_hours = canonical_window(window)
        if (scope_name == "call") != (window_name == "call"):
            raise BudgetConfigError(
                f"window: scope 'call' goes with window 'call' and only with it "
                f"(got scope {scope!r}, window {window!r})",
                field="window",
            )
        limit = parse_limit(limit_usd)
        parsed_thresholds = parse_thresholds(thresholds)
        zone = parse_zone(tz)
        where_values = normalized_where(where)
        set_ = object.__setattr__
        set_(self, "name", name.strip())
        set_(self, "scope", scope_name)
        set_(self, "window", window_name)
        set_(self, "limit_usd", limit)
        set_(self, "thresholds", parsed_thresholds)
        set_(self, "tz", tz)
        set_(self, "where", where_values)
        set_(self, "_rolling_hours", rolling_hours)
        set_(self, "_zone", zone)

    def __hash__(self) -> int:
        # ``where`` is a dict; hash its sorted items so budgets can live in sets and dict keys.
        return hash(
            (
                self.name,
                self.scope,
                self.window,
                self.limit_usd,
                self.thresholds,
                self.tz,
                tuple(sorted(self.where.items())),
            )
        )

    # Presets ---------------------------------------------------------------------------------

    @classmethod
    def per_call(
        cls,
        limit_usd: Decimal | int | float | str,
        *,
        name: str = "per_call",
        thresholds: Iterable[Decimal | int | float | str] = (1.0,),
        where: Mapping[str, str | Sequence[str]] | None = None,
    ) -> Budget:
        """A limit on each single call (only 100% by default: a call crosses all its thresholds at once).

        Example: ``Budget.per_call(1.00)`` alerts on any call that costs more than $1 (a call of
        exactly $1 is within its limit).
        """
        return cls(name, "call", "call", limit_usd, thresholds, "UTC", where)

    @classmethod
    def per_session(
        cls,
        limit_usd: Decimal | int | float | str,
        *,
        name: str = "per_session",
        thresholds: Iterable[Decimal | int | float | str] = (0.5, 0.8, 1.0),
        where: Mapping[str, str | Sequence[str]] | None = None,
    ) -> Budget:
        """A limit on each session's total over its lifetime (``cost.session_id``)."""
        return cls(name, "session", "lifetime", limit_usd, thresholds, "UTC", where)

    @classmethod
    def per_user_daily(
        cls,
        limit_usd: Decimal | int | float | str,
        *,
        name: str = "per_user_daily",
        tz: str = "UTC",
        thresholds: Iterable[Decimal | int | float | str] = (0.5, 0.8, 1.0),
        where: Mapping[str, str | Sequence[str]] | None = None,
    ) -> Budget:
        """A limit on each user's spend per calendar day in ``tz`` (users are keyed by hashed id)."""
        return cls(name, "user", "day", limit_usd, thresholds, tz, where)

    @classmethod
    def per_org_daily(
        cls,
        limit_usd: Decimal | int | float | str,
        *,
        name: str = "per_org_daily",
        tz: str = "UTC",
        thresholds: Iterable[Decimal | int | float | str] = (0.5, 0.8, 1.0),
        where: Mapping[str, str | Sequence[str]] | None = None,
    ) -> Budget:
        """A limit on each org's spend per calendar day in ``tz``."""
        return cls(name, "org", "day", limit_usd, thresholds, tz, where)

    # Windows ---------------------------------------------------------------------------------

    @property
    def is_per_call(self) -> bool:
        """True for per-call budgets (checked at enrichment, not over stored rows)."""
        return self.window == "call"

    @property
    def is_calendar(self) -> bool:
        """True for day / week / month windows (the ones with a burn-rate forecast)."""
        return self.window in ("day", "week", "month")

    def window_at(self, at: datetime) -> tuple[datetime | None, datetime | None]:
        """The ``[start, end)`` UTC bounds of the window containing ``at`` (None: unbounded side).

        Raises:
            ValueError: ``at`` is a naive datetime.
        """
        win = window_containing(self, aware(at))
        return win.start, win.end

    def describe_window(self) -> str:
        """``daily``, ``weekly``, ``monthly``, ``24-hour rolling``, ``lifetime`` or ``per-call``."""
        if self.window in ("day", "week", "month"):
            return {"day": "daily", "week": "weekly", "month": "monthly"}[self.window]
        if self._rolling_hours is not None:
            hours = self._rolling_hours
            return f"{hours // 24}-day rolling" if hours % 24 == 0 else f"{hours}-hour rolling"
        return (
            "per-session"
            if self.window == "lifetime" and self.scope == "session"
            else ("lifetime" if self.window == "lifetime" else "per-call")
        )

    def matches(self, values: Callable[[str], str | None]) -> bool:
        """Whether a call whose scope values ``values(scope)`` returns satisfies ``where``."""
        return all(values(key) in allowed for key, allowed in self.where.items())

    @property
    def zone(self) -> ZoneInfo:
        """The time zone of calendar windows (``tz`` resolved)."""
        return self._zone

    @property
    def rolling_hours(self) -> int | None:
        """The length of a rolling window in hours; None for other windows."""
        return self._rolling_hours

    # What the lower layers call on the budgets they are given ---------------------------------

    def statuses(
        self, connection: duckdb.DuckDBPyConnection, at: datetime | None = None
    ) -> list[BudgetStatus]:
        """Where every entity with spend stands in the window containing ``at`` (default now); read-only.

        ``CostStore.check_budgets`` calls this on each budget: see :func:`evaluate_budgets` for the
        arguments, the order of the result and the errors.
        """
        return evaluate_budgets(connection, [self], at)

    def remaining_usd(
        self, connection: duckdb.DuckDBPyConnection, entity: str | None = None, at: datetime | None = None
    ) -> Decimal:
        """What ``entity`` may still spend in the window containing ``at`` (see :func:`remaining_budget`).

        ``CostStore.remaining`` calls this.
        """
        return remaining_budget(connection, self, entity, at)

    @classmethod
    def engine_for(cls, budgets: Sequence[Budget], sinks: Sequence[AlertSink] | None = None) -> BudgetEngine:
        """The engine that checks ``budgets`` as telemetry flows, delivering alerts to ``sinks``.

        ``LLMCostSpanProcessor(budgets=...)`` builds its engine with this (the processor sits below
        this package and receives the engine rather than importing it).

        Raises:
            BudgetConfigError: two budgets share a name, or an item is not a budget.
        """
        return BudgetEngine(budgets, sinks=sinks)
