"""``otel-llm-cost savings`` and ``reprice``: what caching saved, what other prices would change."""

from __future__ import annotations

import argparse
from typing import Any

from otel_llm_cost.cli.options import (
    add_command,
    emit,
    fancy,
    filter_options,
    filters,
    format_options,
    open_store,
    store_options,
    window,
    window_options,
)
from otel_llm_cost.query import output as _output

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``savings`` and ``reprice`` subcommands."""
    savings = add_command(
        subparsers,
        "savings",
        _cmd_savings,
        "what prompt caching saved, and what a cheaper model would cost",
        (store_options(), window_options(), filter_options(), format_options()),
    )
    savings.add_argument(
        "--what-if", metavar="FROM:TO", help="reprice FROM_MODEL's calls at TO_MODEL's prices"
    )
    savings.add_argument("--prices", metavar="FILE", help="user price file layered over the bundled prices")
    reprice = add_command(
        subparsers,
        "reprice",
        _cmd_reprice,
        "price calls that were stored unpriced, now that a price is known",
        (store_options(), window_options(), format_options()),
    )
    reprice.add_argument("--prices", metavar="FILE", help="user price file layered over the bundled prices")
    reprice.add_argument(
        "--include-priced",
        action="store_true",
        help="also recompute calls that already have a price (rewrites history)",
    )
    reprice.add_argument("--dry-run", action="store_true", help="report what would change, write nothing")


def _cmd_savings(args: argparse.Namespace) -> int:
    since, until, _zone = window(args)
    what_if = _parse_what_if(args.what_if) if args.what_if else None
    where = filters(args)
    if where and what_if:
        raise ValueError(
            "--what-if compares every call of a model: it cannot be combined with --where/--user"
        )
    from otel_llm_cost.pricing import PriceBook  # noqa: PLC0415 - loads the price data only when needed

    pricebook = PriceBook.from_file(args.prices) if args.prices else PriceBook.default()
    with open_store(args) as store:
        report = store.savings(since, until, where=where)
        scenario = (
            store.what_if(what_if[0], what_if[1], since, until, pricebook=pricebook) if what_if else None
        )
    if args.format == "json":
        emit(
            _output.to_json(
                {"savings": _output.record(report), "what_if": scenario and _output.record(scenario)}
            )
        )
        return 0
    if args.format == "csv":
        fields = [f for f in _output.record(report)]
        emit(_output.to_csv(fields, [[getattr(report, f) for f in fields]]))
        return 0
    emit(_output.format_savings(report, scenario, fancy=fancy()))
    return 0


def _parse_what_if(text: str) -> tuple[str, str]:
    source, sep, target = text.partition(":")
    if not sep or not source.strip() or not target.strip():
        raise ValueError(f"--what-if expects FROM_MODEL:TO_MODEL, got {text!r}")
    return source.strip(), target.strip()


def _cmd_reprice(args: argparse.Namespace) -> int:
    since, until, _zone = window(args)
    from otel_llm_cost.pricing import PriceBook  # noqa: PLC0415 - loads the price data only when needed

    pricebook = PriceBook.from_file(args.prices) if args.prices else PriceBook.default()
    with open_store(args, read_only=args.dry_run) as store:
        result = store.reprice(
            since, until, pricebook=pricebook, include_priced=args.include_priced, dry_run=args.dry_run
        )
    if args.format == "json":
        emit(_output.to_json(_output.record(result)))
        return 0
    verb = "would change" if args.dry_run else "changed"
    emit(
        f"{result.rows_examined:,} calls examined; {verb} {result.rows_changed:,} rows "
        f"({result.rows_newly_priced:,} newly priced), cost {'+' if result.usd_changed >= 0 else ''}"
        f"{_output.format_usd(result.usd_changed)}; {result.rows_still_unpriced:,} still unpriced"
    )
    return 0
