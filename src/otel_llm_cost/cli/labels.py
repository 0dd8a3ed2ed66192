"""Display names for hashed user ids, from an operator's opt-in CSV file (``--user-labels`` /
``OTEL_LLM_COST_USER_LABELS``).

Stored user ids are keyed hashes (``h:<32 hex>``), which is right for the ledger and hard for a person.
An operator who may see who a user is can supply ``user,label`` rows; ``user`` is the raw id (hashed
here, in memory, with this installation's key, so the file matches what this installation stored) or
the ``h:`` hash itself. The mapping is only used to print; nothing from it is written anywhere.
"""

from __future__ import annotations

import csv
from pathlib import Path

from otel_llm_cost import _config
from otel_llm_cost.enrich.attribution import hash_user_id

__all__ = ["label_user", "load_user_labels"]


def load_user_labels(path: str | None) -> dict[str, str]:
    """``{stored hash: label}`` from ``path`` (default ``OTEL_LLM_COST_USER_LABELS``; none: empty).

    Raises:
        ValueError: a row without a label, or the file cannot be read.
    """
    chosen = path if path is not None else _config.USER_LABELS.get()
    if not chosen:
        return {}
    labels: dict[str, str] = {}
    try:
        with Path(chosen).open(newline="", encoding="utf-8") as handle:
            for number, row in enumerate(csv.reader(handle), start=1):
                if not row or row[0].startswith("#") or (number == 1 and row[0].strip().lower() == "user"):
                    continue
                if len(row) < 2 or not row[0].strip() or not row[1].strip():
                    raise ValueError(f"{chosen}, line {number}: expected user,label")
                labels[hash_user_id(row[0].strip())] = row[1].strip()
    except OSError as exc:
        raise ValueError(f"cannot read the user labels file {chosen}: {exc.strerror or exc}") from exc
    return labels


def label_user(stored: str, labels: dict[str, str]) -> str:
    """``"Alice (h:1234...)"`` for a labelled hash; the stored value otherwise."""
    if stored not in labels:
        return stored
    return f"{labels[stored]} ({stored})"
