"""What every page is rendered from: the store, the parsed URL, the budgets and prices, the shell."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from otel_llm_cost.budgets.model import Budget
from otel_llm_cost.pricing.book import PriceBook
from otel_llm_cost.query.store import CostStore
from otel_llm_cost.ui.layout import Shell
from otel_llm_cost.ui.params import View

__all__ = ["PageContext"]


@dataclass(frozen=True, slots=True)
class PageContext:
    """One request's inputs. ``hash_user`` turns a raw user id into the stored keyed hash."""

    store: CostStore
    view: View
    shell: Shell
    budgets: Sequence[Budget]
    pricebook: Callable[[], PriceBook]
    hash_user: Callable[[str], str]
    params: dict[str, str]

    def link(self, path: str, query: str = "") -> str:
        return f"{self.shell.base}{path}" + (f"?{query}" if query else "")
