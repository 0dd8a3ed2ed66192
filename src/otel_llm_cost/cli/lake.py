"""``otel-llm-cost lake maintain`` and ``otel-llm-cost lake import``: upkeep of a DuckLake target."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from typing import Any

from otel_llm_cost import _config
from otel_llm_cost.storage.lake import LakeTarget, is_lake_target
from otel_llm_cost.storage.lake_ops import import_file, maintain

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``lake`` command group."""
    lake = subparsers.add_parser("lake", help="DuckLake upkeep: compact and expire, import a DuckDB file")
    commands = lake.add_subparsers(dest="lake_command", metavar="{maintain,import}", required=True)
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument(
        "--db",
        default=_config.DUCKDB_PATH.get(),
        help="the lake, ducklake:postgres:<connection string> without a password (default: %(default)s)",
    )
    shared.add_argument(
        "--data-path",
        default=_config.LAKE_DATA_PATH.get(),
        help="where a new lake keeps its Parquet files (default: $OTEL_LLM_COST_LAKE_DATA_PATH)",
    )
    upkeep = commands.add_parser(
        "maintain",
        parents=[shared],
        help="apply retention, merge small files, expire old snapshots, delete unreferenced files",
    )
    upkeep.add_argument("--retention-days", type=int, help="delete calls that started more than N days ago")
    upkeep.add_argument(
        "--expire-snapshots-hours",
        type=float,
        default=24.0,
        help="expire snapshots older than this; their files are then deleted (default: %(default)s)",
    )
    upkeep.set_defaults(handler=_maintain)
    copy = commands.add_parser(
        "import", parents=[shared], help="copy a DuckDB file's (or a Parquet file's) calls into the lake"
    )
    copy.add_argument("file", help="an otel-llm-cost DuckDB file, or a Parquet file of llm_calls rows")
    copy.set_defaults(handler=_import)


def _target(args: argparse.Namespace) -> LakeTarget:
    if not is_lake_target(args.db):
        raise ValueError("--db must be a lake, ducklake:postgres:<connection string> (see docs/lake.md)")
    return LakeTarget(args.db, args.data_path)


def _maintain(args: argparse.Namespace) -> int:
    result = maintain(
        _target(args),
        retention_days=args.retention_days,
        snapshots_older_than=timedelta(hours=args.expire_snapshots_hours),
    )
    print(
        f"maintained the lake in {result.seconds:.1f} s: {result.deleted_rows:,} calls past retention "
        f"deleted, llm_calls data files {result.files_before:,} -> {result.files_after:,}",
        file=sys.stderr,
    )
    return 0


def _import(args: argparse.Namespace) -> int:
    result = import_file(_target(args), args.file)
    print(
        f"imported {result.calls:,} calls, {result.spans:,} spans and {result.alerts:,} alerts "
        f"from {args.file} (rows already in the lake were skipped)",
        file=sys.stderr,
    )
    return 0
