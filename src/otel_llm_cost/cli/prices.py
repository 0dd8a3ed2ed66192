"""``otel-llm-cost prices MODEL``: what we would charge for a model, per 1M tokens, and why.

``otel-llm-cost prices --check`` is in :mod:`otel_llm_cost.cli.prices_check`.

Registered by :mod:`otel_llm_cost.cli`; errors are raised as ``ValueError`` / ``OtelLLMCostError``
subclasses and turned into a one-line message and exit status 2 there.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from otel_llm_cost import _config
from otel_llm_cost.cli.prices_check import run_check
from otel_llm_cost.pricing import CostStatus, PriceBook, UnitPrices, provider_id_for

_KINDS = (
    ("input", "input_mtok"),
    ("cache read", "cache_read_mtok"),
    ("cache write (5m)", "cache_write_5m_mtok"),
    ("cache write (1h)", "cache_write_1h_mtok"),
    ("output", "output_mtok"),
)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``prices`` subcommand; it sets ``handler(args) -> int`` with ``set_defaults``."""
    parser = subparsers.add_parser(
        "prices",
        help="show what a model costs per 1M tokens and where the price comes from",
        description=(
            "Show the USD price per 1M tokens of each kind (input, cache read, cache write 5m/1h, output, "
            "long-context tiers) that otel-llm-cost charges for MODEL, and which layer it comes from "
            "(provider-reported costs are per call and not shown here). With --check: list our "
            "corrections that the genai-prices data now covers, and the models of a DuckDB file that "
            "are still unpriced; exit status 1 when there is something to act on."
        ),
    )
    parser.add_argument(
        "model",
        metavar="MODEL",
        nargs="?",
        help="model id as spans carry it (dated, Bedrock, Vertex, alias...); not with --check",
    )
    parser.add_argument(
        "--provider",
        metavar="P",
        help="provider name (gen_ai.provider.name such as aws.bedrock, or a genai-prices id)",
    )
    parser.add_argument(
        "--service-tier",
        metavar="T",
        help="show the prices of this OpenAI service tier (flex, priority, batch...), not the standard ones",
    )
    parser.add_argument(
        "--at",
        metavar="DATE",
        help="show the price in force then: 2025-05-01 or 2025-05-01T12:00:00Z (default: now)",
    )
    parser.add_argument(
        "--prices", metavar="FILE", help="user price file (TOML/JSON); default: $OTEL_LLM_COST_PRICES"
    )
    parser.add_argument(
        "--data",
        metavar="FILE",
        help="genai-prices JSON data file; default: $OTEL_LLM_COST_PRICE_DATA or bundled",
    )
    _add_check_options(parser)
    parser.add_argument(
        "--format", choices=("table", "json"), default="table", help="output format (default: table)"
    )
    parser.set_defaults(handler=handle_prices)


def _add_check_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--check",
        action="store_true",
        help="check our corrections against the genai-prices data and list the still-unpriced models "
        "of --db; exit 0: nothing to do, 1: something to act on",
    )
    parser.add_argument(
        "--db",
        metavar="PATH",
        help=f"with --check: DuckDB file whose unpriced calls to list (default: ${_config.DUCKDB_PATH.name} "
        "when that file exists)",
    )
    parser.add_argument(
        "--corrections",
        metavar="FILE",
        help="corrections file (JSON) instead of the shipped one, e.g. to --check a new entry",
    )


def parse_at(raw: str | None) -> datetime | None:
    """Parse ``--at``: an ISO date (midnight UTC) or datetime (naive means UTC).

    Raises:
        ValueError: ``raw`` is not an ISO date or datetime.
    """
    if raw is None:
        return None
    text = raw.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--at: expected an ISO date such as 2025-05-01 or 2025-05-01T12:00:00Z, got {raw!r}"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def handle_prices(args: argparse.Namespace) -> int:
    """Run ``otel-llm-cost prices``; returns the exit status.

    Raises:
        ValueError: A bad ``--at`` or ``--provider``.
        PriceFileError: A price or data file is missing or invalid.
        UnknownModelError: No layer prices the model.
    """
    if args.check == (args.model is not None):
        raise ValueError("give a MODEL, or --check without one")
    if args.db is not None and not args.check:
        raise ValueError("--db goes with --check")
    at = parse_at(args.at)
    if args.provider is not None and provider_id_for(args.provider) is None:
        raise ValueError(
            f"--provider: genai-prices has no prices for provider {args.provider!r}; "
            "omit --provider to match by model alone"
        )
    if args.prices is None and args.data is None and args.corrections is None:
        book = PriceBook.default()
    else:
        book = PriceBook(
            args.prices if args.prices is not None else _config.PRICES.get(),
            data_file=args.data if args.data is not None else _config.PRICE_DATA.get(),
            corrections_file=args.corrections,
        )
    if args.check:
        return run_check(args, book)
    prices = book.unit_prices(args.model, provider=args.provider, at=at, service_tier=args.service_tier)
    if args.format == "json":
        print(json.dumps({**_as_json(args.model, prices, at), "service_tier": args.service_tier}, indent=2))
    else:
        sys.stdout.write(_as_table(args.model, prices, at, args.service_tier))
    return 0


def _plain(value: Decimal) -> str:
    return format(value, "f")


def _as_json(model: str, prices: UnitPrices, at: datetime | None) -> dict[str, Any]:
    return {
        "model": model,
        "model_id": prices.model_id,
        "provider_id": prices.provider_id,
        "deployment": prices.deployment,
        "source": prices.source,
        "status": str(prices.status),
        "at": at.isoformat() if at is not None else None,
        "valid_from": prices.valid_from.isoformat() if prices.valid_from else None,
        "valid_until": prices.valid_until.isoformat() if prices.valid_until else None,
        "time_of_day_pricing": prices.time_of_day_pricing,
        # Strings, not floats: these are exact Decimal prices.
        "usd_per_million_tokens": {
            attr.removesuffix("_mtok"): _plain(getattr(prices, attr)) for _, attr in _KINDS
        },
        "request_usd": _plain(prices.request_usd),
        "tiers": [
            {
                "above_input_tokens": tier.above_input_tokens,
                **{attr.removesuffix("_mtok"): _plain(getattr(tier, attr)) for _, attr in _KINDS},
            }
            for tier in prices.tiers
        ],
    }


def _as_table(model: str, prices: UnitPrices, at: datetime | None, service_tier: str | None = None) -> str:
    lines = [f"model      {model}"]
    matched = prices.model_id + (f" (provider {prices.provider_id})" if prices.provider_id else "")
    lines.append(f"matched    {matched}")
    if prices.deployment:
        lines.append(f"deployment {prices.deployment}")
    lines.append(f"source     {prices.source}")
    if service_tier:
        lines.append(f"tier       {service_tier}")
    when = at.isoformat() if at is not None else "now"
    period = []
    if prices.valid_from is not None:
        period.append(f"since {prices.valid_from.isoformat()}")
    if prices.valid_until is not None:
        period.append(f"until {prices.valid_until.isoformat()}")
    lines.append(f"price at   {when}" + (f" ({', '.join(period)})" if period else ""))
    if prices.time_of_day_pricing:
        lines.append("note       this model's price depends on the UTC time of day (off-peak discount)")
    if prices.status is CostStatus.FREE:
        lines.append("")
        lines.append("free: every call costs 0 (declared free in the price file)")
        return "\n".join(lines) + "\n"

    headers = ["USD per 1M tokens", "base"] + [
        f"input > {tier.above_input_tokens:,}" for tier in prices.tiers
    ]
    rows = [
        [label, _plain(getattr(prices, attr))] + [_plain(getattr(tier, attr)) for tier in prices.tiers]
        for label, attr in _KINDS
    ]
    if prices.request_usd:
        rows.append(["per request (USD)", _plain(prices.request_usd)] + ["" for _ in prices.tiers])
    widths = [max(len(row[col]) for row in [headers, *rows]) for col in range(len(headers))]
    lines.append("")
    for row in [headers, *rows]:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    if prices.tiers:
        lines.append("")
        lines.append("A tier applies to every token of a call whose total input exceeds its threshold.")
    return "\n".join(lines) + "\n"
