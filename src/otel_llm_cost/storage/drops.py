"""Spans a full export queue had to drop, kept beside the DuckDB file for the operator.

The application process drops (its queue stayed full: the disk stalled); the operator looks from
another process (``otel-llm-cost status``). So each report is one appended JSON line in
``<file>.dropped``: ``{"at": ISO time, "pid": ..., "calls": n, "spans": m}``, the counts since the
previous line of that process.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from otel_llm_cost._logging import log_once

__all__ = ["DropTotals", "drops_file", "read_drops", "record_drops"]

_logger = logging.getLogger("otel_llm_cost.exporter")


@dataclass(frozen=True, slots=True)
class DropTotals:
    """What every process writing a file dropped, as recorded in its ``.dropped`` file."""

    calls: int
    """LLM calls dropped."""
    spans: int
    """Spans dropped (calls included)."""
    last_at: datetime | None
    """When the latest drop was recorded (``None``: never)."""


def drops_file(database: Path) -> Path:
    """Where drops for ``database`` are recorded."""
    return database.with_name(database.name + ".dropped")


def record_drops(database: Path, calls: int, spans: int) -> None:
    """Append one report; never raises (a failure is logged once)."""
    line = json.dumps(
        {"at": datetime.now(UTC).isoformat(), "pid": os.getpid(), "calls": calls, "spans": spans}
    )
    try:
        with open(drops_file(database), "a", encoding="utf-8") as file:
            file.write(line + "\n")
    except OSError as exc:
        log_once(_logger, "exporter.drops_file", logging.ERROR, "could not record dropped spans: %r", exc)


def read_drops(database: Path) -> DropTotals:
    """The totals over every report for ``database`` (zero when there is none; bad lines are skipped)."""
    calls = spans = 0
    last: datetime | None = None
    try:
        text = drops_file(database).read_text(encoding="utf-8")
    except FileNotFoundError:
        return DropTotals(0, 0, None)
    for line in text.splitlines():
        try:
            entry = json.loads(line)
            calls += int(entry["calls"])
            spans += int(entry["spans"])
            last = datetime.fromisoformat(entry["at"])
        except (ValueError, KeyError, TypeError):
            continue
    return DropTotals(calls, spans, last)
