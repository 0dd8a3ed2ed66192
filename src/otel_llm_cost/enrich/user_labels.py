"""Display names for hashed user ids, from an operator's opt-in CSV file (``--user-labels`` /
``OTEL_LLM_COST_USER_LABELS``), for the reports and the dashboard.

Stored user ids are keyed hashes (``h:<32 hex>``), which is right for the ledger and hard for a person.
An operator who may see who a user is can supply rows of:

- ``user,label``: ``user`` is the raw id (hashed here, in memory, with this installation's key, so the
  file matches what this installation stored) or the ``h:`` hash itself (a mapping kept elsewhere);
- ``user`` alone: a known raw id, shown as itself (the installation's key plus a list of ids).

The mapping lives only in memory and is only shown: nothing from it is stored, logged or put in an
error message (a bad row is reported by its line number).
"""

from __future__ import annotations

import csv
from pathlib import Path

from otel_llm_cost import _config
from otel_llm_cost.enrich.attribution import hash_user_id
from otel_llm_cost.enrich.user_id import is_hashed_user_id

__all__ = ["load_user_labels"]


def load_user_labels(path: str | None) -> dict[str, str]:
    """``{stored hash: label}`` from ``path`` (default ``OTEL_LLM_COST_USER_LABELS``; none: empty).

    Raises:
        ValueError: a row without a label for a hash, or the file cannot be read.
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
                user = row[0].strip()
                label = row[1].strip() if len(row) > 1 else user
                if not user or not label or (len(row) == 1 and is_hashed_user_id(user)):
                    raise ValueError(f"{chosen}, line {number}: expected user,label (or a raw user id alone)")
                labels[hash_user_id(user)] = label
    except OSError as exc:
        raise ValueError(f"cannot read the user labels file {chosen}: {exc.strerror or exc}") from exc
    return labels
