"""What every page is rendered from: the store, the parsed URL, the budgets and prices, the shell."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from otel_llm_cost.budgets.model import Budget
from otel_llm_cost.pricing.book import PriceBook
from otel_llm_cost.query.store import CostStore
from otel_llm_cost.ui.fmt import esc, key_label, user_html
from otel_llm_cost.ui.layout import Shell
from otel_llm_cost.ui.params import View

__all__ = ["PageContext"]


@dataclass(frozen=True, slots=True)
class PageContext:
    """One request's inputs. ``hash_user`` turns a raw user id into the stored keyed hash;
    ``user_labels`` maps stored hashes to the names the operator supplied (shown, never stored)."""

    store: CostStore
    view: View
    shell: Shell
    budgets: Sequence[Budget]
    pricebook: Callable[[], PriceBook]
    hash_user: Callable[[str], str]
    params: dict[str, str]
    user_labels: Mapping[str, str] = field(default_factory=dict)

    def link(self, path: str, query: str = "") -> str:
        return f"{self.shell.base}{path}" + (f"?{query}" if query else "")

    def key_text(self, dimension: str, key: str | None) -> str:
        """A group's key as plain text: a user's label when the operator supplied one."""
        if dimension == "user" and key is not None and key in self.user_labels:
            return self.user_labels[key]
        return key_label(key)

    def key_html(self, dimension: str, key: str | None) -> str:
        """A group's key as HTML: a user's label with the stored hash as its tooltip."""
        if dimension == "user":
            return user_html(key, self.user_labels)
        return esc(key_label(key))
