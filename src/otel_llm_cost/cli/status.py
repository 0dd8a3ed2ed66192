"""``otel-llm-cost status``: what the applications writing a file lost or still hold (registered by
:mod:`otel_llm_cost.cli`)."""

from __future__ import annotations

import argparse
from typing import Any

from otel_llm_cost.cli.options import add_command, db_path, emit, store_options
from otel_llm_cost.storage.drops import drops_file, read_drops
from otel_llm_cost.storage.journal import Spool

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``status`` subcommand."""
    add_command(
        subparsers,
        "status",
        handle_status,
        "LLM calls dropped before storage (exit 1 when any) and batches waiting in the spool",
        (store_options(),),
    )


def handle_status(args: argparse.Namespace) -> int:
    path = db_path(args).absolute()
    drops = read_drops(path)
    waiting = len(Spool(f"{path}.spool").pending())
    emit(f"database: {path}")
    if drops.calls or drops.spans:
        last = drops.last_at.isoformat(sep=" ", timespec="seconds") if drops.last_at else "unknown"
        emit(
            f"dropped: {drops.calls:,} LLM calls ({drops.spans:,} spans) that an application's export queue "
            f"could not hand to the exporter (last at {last}; see {drops_file(path)})"
        )
    else:
        emit("dropped: no LLM calls dropped")
    emit(f"spool: {waiting:,} batches waiting to be stored")
    return 1 if drops.calls or drops.spans else 0
