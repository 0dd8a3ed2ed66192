"""Display names beside hashed user ids in the text reports (``--user-labels`` /
``OTEL_LLM_COST_USER_LABELS``); the file is read by :mod:`otel_llm_cost.enrich.user_labels`, which the
dashboard shares. The mapping is only used to print; nothing from it is written anywhere.
"""

from __future__ import annotations

from otel_llm_cost.enrich.user_labels import load_user_labels

__all__ = ["label_user", "load_user_labels"]


def label_user(stored: str, labels: dict[str, str]) -> str:
    """``"Alice (h:1234...)"`` for a labelled hash; the stored value otherwise."""
    if stored not in labels:
        return stored
    return f"{labels[stored]} ({stored})"
