"""``otel-llm-cost top``, ``query`` and ``export``: the stored calls themselves."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any, Final

import duckdb

from otel_llm_cost import _config
from otel_llm_cost.cli.labels import load_user_labels
from otel_llm_cost.cli.options import (
    add_command,
    db_path,
    emit,
    fancy,
    filter_options,
    filters,
    format_options,
    open_store,
    positive_int,
    store_options,
    window,
    window_options,
)
from otel_llm_cost.cli.render import CALL_FIELDS, top_table
from otel_llm_cost.exceptions import StorageError
from otel_llm_cost.query import output as _output
from otel_llm_cost.query import sql as _queries
from otel_llm_cost.query.filters import where_conditions
from otel_llm_cost.storage import connect as _storage
from otel_llm_cost.storage.lake import LakeTarget, is_lake_target, open_lake

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``top``, ``query`` and ``export`` subcommands."""
    top = add_command(
        subparsers,
        "top",
        _cmd_top,
        "the most expensive calls",
        (store_options(), window_options(), filter_options(), format_options()),
    )
    top.add_argument("-n", type=positive_int, default=10, help="how many (default 10)")
    query = add_command(
        subparsers,
        "query",
        _cmd_query,
        "run SQL on the store (read-only), e.g. over the llm_calls table",
        (store_options(), format_options()),
    )
    query.add_argument("sql", metavar="SQL")
    query.add_argument("--param", action="append", default=[], help="value for a ? placeholder (repeatable)")
    export = add_command(
        subparsers,
        "export",
        _cmd_export,
        "write the billable calls in a window to CSV, Parquet or JSON",
        (store_options(), window_options(), filter_options()),
    )
    export.add_argument("--format", dest="export_format", choices=tuple(_COPY_OPTIONS), default="csv")
    export.add_argument("--output", "-o", required=True, type=Path, metavar="FILE")
    export.add_argument("--all", action="store_true", help="also export non-billable (duplicate) records")


def _cmd_top(args: argparse.Namespace) -> int:
    since, until, _zone = window(args)
    with open_store(args) as store:
        calls = store.top_calls(args.n, since, until, where=filters(args))
    if args.format == "json":
        emit(_output.to_json([_output.record(c) for c in calls]))
    elif args.format == "csv":
        emit(_output.to_csv(CALL_FIELDS, ([getattr(c, f) for f in CALL_FIELDS] for c in calls)))
    else:
        emit(top_table(calls, fancy(), load_user_labels(args.user_labels)))
    return 0


def _cmd_query(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        result = store.sql(args.sql, args.param)
        columns = list(result.arrow().column_names)
    if args.format == "json":
        emit(_output.to_json(list(result)))
    elif args.format == "csv":
        emit(_output.to_csv(columns, ([row[c] for c in columns] for row in result)))
    else:
        body = [["" if row[c] is None else str(row[c]) for c in columns] for row in result]
        width = _output.terminal_width(sys.stdout)
        emit(_output.render_table(columns, body, align="l" * len(columns), fancy=fancy(), max_width=width))
    return 0


_COPY_OPTIONS: Final = {
    "csv": "FORMAT csv, HEADER",
    "parquet": "FORMAT parquet",
    "json": "FORMAT json, ARRAY true",
}


def _cmd_export(args: argparse.Namespace) -> int:
    since, until, _zone = window(args)
    conditions = where_conditions(filters(args))
    query = _queries.export_calls(since, until, include_non_billable=args.all, conditions=conditions)
    # COPY writes straight from DuckDB: exact DECIMAL money, no Python row loop on big windows. It
    # needs file access, which the sandboxed connection of CostStore/`query` refuses: this SQL is
    # ours, only the output path is the user's.
    # The target as a literal: duckdb 1.5 refuses a parameter there when the query has others.
    target = str(args.output).replace("'", "''")
    copy = f"COPY ({query.sql}) TO '{target}' ({_COPY_OPTIONS[args.export_format]})"
    with contextlib.closing(_export_connection(args)) as connection:
        try:
            row = connection.execute(copy, list(query.params)).fetchone()
        except duckdb.Error as exc:
            raise StorageError(f"export to {args.output} failed: {exc}") from exc
    written = row[0] if row else None
    count = f"{written:,} calls" if isinstance(written, int) else "calls"
    print(f"exported {count} to {args.output}", file=sys.stderr)
    return 0


def _export_connection(args: argparse.Namespace) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the file or the lake ``--db`` names, with file access for COPY."""
    db = args.db if args.db else _config.DUCKDB_PATH.get()
    if is_lake_target(db):
        return open_lake(LakeTarget(db), create=False, read_only=True)
    path = db_path(args)
    if not path.is_file():
        open_store(args).close()  # raises the CLI's own "no DuckDB file" error
    return _storage.connect(path, read_only=True, sandbox=False)
