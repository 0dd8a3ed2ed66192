"""From an ended span to an enriched one: attribution, user-id hashing, the double-count guard, the processor.

``attribution()`` itself is re-exported by ``otel_llm_cost``; it is not re-exported here, where the name
would hide its own module.

Names load on first use (module ``__getattr__``), so importing one light submodule of this
package does not load duckdb or pyarrow through the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otel_llm_cost._lazy import lazy_exports

if TYPE_CHECKING:
    from otel_llm_cost.enrich.processor import LLMCostSpanProcessor

_LOCATIONS = {
    "LLMCostSpanProcessor": "otel_llm_cost.enrich.processor",
}

__all__ = ["LLMCostSpanProcessor"]


__getattr__, __dir__ = lazy_exports(globals(), _LOCATIONS)
