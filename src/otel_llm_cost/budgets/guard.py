"""Opt-in enforcement: :class:`BudgetGuard` refuses an LLM call before it is made once a limit is spent."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Protocol

import duckdb

from otel_llm_cost.budgets.evaluation import BudgetStatus, remaining_budget, status_of
from otel_llm_cost.budgets.scopes import canonical_scope
from otel_llm_cost.budgets.spec import BudgetSpec, validated_budgets
from otel_llm_cost.enrich.attribution import default_user_id_hasher
from otel_llm_cost.exceptions import BudgetExceeded

__all__ = ["BudgetGuard"]


class _Hasher(Protocol):
    def hash(self, raw: str) -> str: ...


class BudgetGuard:
    """Opt-in enforcement: call :meth:`check` before an LLM call to refuse it when a limit is spent.

    Reads the stored spend with SQL each time (exact, shared with every writer of the file). Given a
    path, the guard holds the file only while a check runs (and ~0.1 s after, for the next check), like
    a path-backed ``CostStore``: the exporting application, in this process or another, keeps writing.
    Given a ``CostStore`` it queries through the store; given a connection, it uses it as is.

    Args:
        store_or_path: A ``CostStore``, a DuckDB connection, a file path (created, with the tables,
            if missing), or a lake target (``ducklake:postgres:...``, read without the writers' commit
            lock: every check reads the latest committed spend, and a guard records no alerts).
        budgets: The budgets to enforce (per-call budgets are ignored: the cost is known only after).
        user_id_hasher: Hashes raw user ids passed as ``user=``. Default: the process-wide hasher
            (``otel_llm_cost.enrich.attribution.default_user_id_hasher()``), which an
            ``LLMCostSpanProcessor(user_id_hasher=...)`` in this process registers, so the guard looks
            up the same keyed hash the processor writes. In another process, pass the same key (or set
            ``OTEL_LLM_COST_USER_ID_KEY`` in both).

    Raises:
        TypeError: ``store_or_path`` is none of those.
        StorageError: the file or the lake cannot be opened.

    Example::

        guard = BudgetGuard(store, [Budget.per_user_daily(50)])
        guard.check(user="u-42")   # raises BudgetExceeded once u-42 spent $50 today
    """

    def __init__(
        self,
        store_or_path: object,
        budgets: Sequence[BudgetSpec],
        *,
        user_id_hasher: _Hasher | None = None,
    ) -> None:
        self._budgets = validated_budgets(budgets)
        self._source, owned = _source_of(store_or_path)
        # The store the guard opened itself (on a path), which close() releases.
        self._owned: _Connectable | None = self._source if owned else None
        self._hasher = user_id_hasher

    def _connect(self) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]:
        return self._source.connect()

    def _hash_user(self, raw: str) -> str:
        hasher = self._hasher
        if hasher is None:
            # Resolved at each check, not once: a processor built after the guard still sets the key.
            hasher = default_user_id_hasher()
        return hasher.hash(raw)

    def statuses(self, *, at: datetime | None = None, **entities: str) -> list[BudgetStatus]:
        """The status of every budget that applies to ``entities`` (scope name -> raw value).

        A budget applies when it is global or its scope is among ``entities``, and every ``where`` key
        it has is among ``entities`` with an allowed value. ``user`` values are hashed first.
        """
        values = {canonical_scope(k, "entity"): v for k, v in entities.items()}
        if "user" in values:
            values["user"] = self._hash_user(values["user"])
        applicable = [
            budget
            for budget in self._budgets
            if not budget.is_per_call
            and (budget.scope == "global" or budget.scope in values)
            and budget.matches(values.get)
        ]
        if not applicable:
            return []
        with self._connect() as connection:
            return [status_of(connection, budget, values.get(budget.scope), at) for budget in applicable]

    def check(self, *, at: datetime | None = None, **entities: str) -> None:
        """Raise :class:`BudgetExceeded` if any applicable budget is already spent.

        Args:
            at: Timezone-aware instant (default now).
            **entities: Scope values of the call about to be made, e.g. ``user="u-42", org="org_1"``.

        Raises:
            BudgetExceeded: with ``budget``, ``entity``, ``spent_usd``, ``limit_usd``, ``window_end``
                of the first budget found spent (spend exactly at the limit counts as spent).
            StorageError: the database has no ``llm_calls`` table (not an otel-llm-cost database).
        """
        for status in self.statuses(at=at, **entities):
            if status.over:
                raise BudgetExceeded(
                    status.budget.name,
                    status.entity,
                    status.spent_usd,
                    status.limit_usd,
                    window_end=status.window_end,
                )

    def remaining(self, budget: BudgetSpec | str, *, at: datetime | None = None, **entities: str) -> Decimal:
        """What may still be spent under ``budget`` (a Budget or its name) by ``entities``.

        Raises:
            KeyError: no budget has that name.
            ValueError: the budget's scope value is missing from ``entities``.
        """
        chosen = {b.name: b for b in self._budgets}[budget] if isinstance(budget, str) else budget
        values = {canonical_scope(k, "entity"): v for k, v in entities.items()}
        if "user" in values:
            values["user"] = self._hash_user(values["user"])
        with self._connect() as connection:
            return remaining_budget(connection, chosen, values.get(chosen.scope), at)

    def close(self) -> None:
        """Release the file the guard opened itself (nothing to do when given a store or connection)."""
        if self._owned is not None:
            self._owned.close()
            self._owned = None


class _Connectable(Protocol):
    """What BudgetGuard needs from a CostStore."""

    def connect(self) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]: ...

    def close(self) -> None: ...


class _GivenConnection:
    """A caller's connection, used as is and left open."""

    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        self._connection = connection

    def connect(self) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]:
        return contextlib.nullcontext(self._connection)

    def close(self) -> None:
        pass


def _source_of(store_or_path: object) -> tuple[_Connectable, bool]:
    """Where the guard reads spend, and whether it opened that itself (and must close it)."""
    if isinstance(store_or_path, duckdb.DuckDBPyConnection):
        return _GivenConnection(store_or_path), False
    if isinstance(store_or_path, str | os.PathLike):
        return _open_store(store_or_path), True
    if not callable(getattr(store_or_path, "connect", None)):
        raise TypeError(
            f"store_or_path: expected a CostStore, a DuckDB connection or a path, got {store_or_path!r}"
        )
    return store_or_path, False  # type: ignore[return-value]  # a CostStore (checked above)


def _open_store(path: str | os.PathLike[str]) -> _Connectable:
    # Imported here: the store and storage pull in pyarrow and the exporter's dependencies, which a
    # guard given a store or a connection never needs.
    from otel_llm_cost.query import CostStore  # noqa: PLC0415
    from otel_llm_cost.storage import connect as _storage  # noqa: PLC0415
    from otel_llm_cost.storage.lake import is_lake_target  # noqa: PLC0415

    if is_lake_target(path):
        # Read-only and without the writers' commit lock: a guard records nothing, and each query
        # reads the lake's latest committed snapshot, so checks never wait for writers' commits.
        return CostStore(path)
    if not os.path.exists(path):
        _storage.connect(path).close()  # a guard set up before the first export creates the file
    # Read-write: in the exporting process it then shares the exporter's DuckDB instance. DuckDB allows
    # one read-write process per file, and within a process a read-only handle on a file already open
    # read-write is refused.
    return CostStore(path, read_only=False)
