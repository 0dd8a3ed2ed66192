"""``otel-llm-cost prices --check``: which of our corrections can go, and which models are unpriced.

Two lists:

- every entry of our corrections file against the genai-prices data in use: ``needed`` (the data
  still lacks it), ``covered`` (the data now has it with the same figures: remove the entry),
  ``differs`` (the data has it with other figures: read the source again), ``missing`` (the data no
  longer has the model);
- the billable calls of a DuckDB file stored as unpriced, by model, provider and service tier, with
  whether the current prices still cannot price them (``reprice`` prices the others).

Exit status: 0 when every correction is needed and no stored call is still unpriced, 1 when there
is something to act on, 2 on an error (for example ``--db`` names no file).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from otel_llm_cost import _config
from otel_llm_cost.cli.options import db_path
from otel_llm_cost.conventions.usage import Usage
from otel_llm_cost.exceptions import StorageError
from otel_llm_cost.pricing import CostStatus, PriceBook
from otel_llm_cost.query import CostStore
from otel_llm_cost.query import pricing_sql as _queries
from otel_llm_cost.storage.lake import is_lake_target

__all__ = ["run_check"]

_ACT_ON = frozenset({"covered", "differs", "missing"})


@dataclass(frozen=True, slots=True)
class _Unpriced:
    model: str | None
    provider: str | None
    service_tier: str | None
    calls: int
    first_seen: datetime
    last_seen: datetime
    stored_reason: str | None
    reason_now: str | None
    """Why the current prices still cannot price these calls; ``None``: they can now."""


def run_check(args: argparse.Namespace, book: PriceBook) -> int:
    """Print the check; returns the exit status (0 nothing to do, 1 something to act on).

    Raises:
        StorageError: ``--db`` names no file.
    """
    now = datetime.now(UTC)
    corrections = _check_corrections(book, now)
    unpriced, db_note = _unpriced_calls(args, book)
    if args.format == "json":
        print(json.dumps({"corrections": corrections, "unpriced": [_as_json(u) for u in unpriced]}, indent=2))
    else:
        sys.stdout.write(_as_table(book, corrections, unpriced, db_note))
    to_act = any(c["status"] in _ACT_ON for c in corrections) or any(u.reason_now for u in unpriced)
    return 1 if to_act else 0


def _check_corrections(book: PriceBook, at: datetime) -> list[dict[str, Any]]:
    out = []
    for entry in book.corrections.entries:
        upstream = book.data.uncorrected(entry.provider, entry.model)
        if upstream is None:
            status, detail = "missing", f"{book.data_source} has no model {entry.provider}/{entry.model}"
        else:
            status, detail = book.corrections.compare(entry, upstream[0], upstream[1], at)
        out.append(
            {
                "id": entry.id,
                "provider": entry.provider,
                "model": entry.model,
                "corrects": entry.what,
                "status": status,
                "detail": detail,
                "source": entry.source,
                "read_on": entry.read_on.isoformat(),
            }
        )
    return out


def _unpriced_calls(args: argparse.Namespace, book: PriceBook) -> tuple[list[_Unpriced], str]:
    target = args.db if args.db else _config.DUCKDB_PATH.get()
    if is_lake_target(target):
        store = CostStore(target)
    else:
        path = db_path(args)
        if not path.is_file():
            if args.db:
                raise StorageError(f"--db: no DuckDB file at {path}")
            return [], f"no DuckDB file at {path}: pass --db PATH to list the unpriced calls of a file"
        store = CostStore(path, read_only=True)
    print(f"otel-llm-cost: reading unpriced calls from {target} ...", file=sys.stderr)
    query = _queries.unpriced_models()
    with store:
        rows = list(store.sql(query.sql, query.params))
    return [_classify(row, book) for row in rows], str(target)


def _classify(row: dict[str, Any], book: PriceBook) -> _Unpriced:
    tier = row["service_tier"]
    probe = Usage(
        input_tokens=1,
        output_tokens=1,
        request_model=row["model"],
        provider=row["provider"],
        service_tier=tier.strip().lower() if tier else None,
    )
    cost = book.compute_cost(probe, at=row["last_seen"])
    reason_now = (cost.reason or "unpriced") if cost.status is CostStatus.UNPRICED else None
    if row["without_usage"] == row["calls"]:
        reason_now = "no usage reported (the spans carry no token counts)"
    return _Unpriced(
        model=row["model"],
        provider=row["provider"],
        service_tier=tier,
        calls=int(row["calls"]),
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        stored_reason=row["reason"],
        reason_now=reason_now,
    )


def _as_json(item: _Unpriced) -> dict[str, Any]:
    return {
        "model": item.model,
        "provider": item.provider,
        "service_tier": item.service_tier,
        "calls": item.calls,
        "first_seen": item.first_seen.isoformat(),
        "last_seen": item.last_seen.isoformat(),
        "stored_reason": item.stored_reason,
        "still_unpriced": item.reason_now is not None,
        "reason": item.reason_now,
    }


def _as_table(
    book: PriceBook, corrections: list[dict[str, Any]], unpriced: list[_Unpriced], db_note: str
) -> str:
    lines = [f"corrections ({book.corrections.path.name}) against {book.data_source}:"]
    for c in corrections:
        advice = {"covered": "  -> remove it", "differs": "  -> check the source", "missing": ""}
        lines.append(f"  {c['status']:<8} {c['provider']}/{c['model']}: {c['corrects']}")
        lines.append(f"           {c['detail']}{advice.get(c['status'], '')}")
        lines.append(f"           source {c['source']} (read {c['read_on']})")
    if not corrections:
        lines.append("  (none)")
    lines.append("")
    still = [u for u in unpriced if u.reason_now is not None]
    priceable = [u for u in unpriced if u.reason_now is None]
    if not unpriced and not db_note.startswith("no DuckDB"):
        lines.append(f"unpriced calls in {db_note}: none")
    elif db_note.startswith("no DuckDB"):
        lines.append(db_note)
    else:
        lines.append(f"still unpriced in {db_note} (billable calls):")
        for u in still:
            tier = f" tier {u.service_tier}" if u.service_tier else ""
            lines.append(
                f"  {u.calls:>8,}  {u.model or '(no model)'} ({u.provider or 'no provider'}{tier}), "
                f"last {u.last_seen.astimezone(UTC):%Y-%m-%d}: {u.reason_now}"
            )
        if not still:
            lines.append("  (none)")
        if priceable:
            calls = sum(u.calls for u in priceable)
            lines.append(
                f"{calls:,} unpriced calls of {len(priceable)} model(s) have a price now: "
                "`otel-llm-cost reprice` prices them"
            )
    return "\n".join(lines) + "\n"
