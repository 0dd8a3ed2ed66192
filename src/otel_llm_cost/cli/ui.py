"""``otel-llm-cost ui``: serve the dashboard over a DuckDB file (registered by :mod:`otel_llm_cost.cli`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from otel_llm_cost import _config

USER_LABELS_HELP = (
    "show names instead of hashed user ids, from a CSV of user,label rows (user: the raw id, hashed "
    "with this installation's key, or its h: hash) or of raw ids alone (shown as themselves); only shown, "
    f"never stored (default: ${_config.USER_LABELS.name})"
)

_DESCRIPTION = """\
Serve the dashboard (Overview, Breakdown, Drill-down, Budgets and alerts, Prices) over a DuckDB file
written by the exporter or `serve`. Read-only: the file is held only while a page queries, so the
application keeps writing. Prints the URL; opens no browser. Needs the 'ui' extra:
pip install 'otel-llm-cost[ui]'.
"""


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``ui`` subcommand."""
    parser = subparsers.add_parser(
        "ui",
        help="serve the spend dashboard on 127.0.0.1",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--db",
        metavar="PATH",
        help="DuckDB file to read (default: $OTEL_LLM_COST_DUCKDB_PATH, else llm_costs.duckdb)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default: %(default)s, loopback only)"
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: 0, any free port)")
    parser.add_argument(
        "--budgets", metavar="FILE", help="budgets TOML file (default: $OTEL_LLM_COST_BUDGETS)"
    )
    parser.add_argument(
        "--prices",
        metavar="FILE",
        help="user price file layered over the bundled prices (default: $OTEL_LLM_COST_PRICES)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="stop a page whose queries run longer than this (default: %(default)s)",
    )
    parser.add_argument("--user-labels", metavar="CSV", help=USER_LABELS_HELP)
    parser.set_defaults(handler=_ui)


def _ui(args: argparse.Namespace) -> int:
    # Imported on use: the server libraries are an optional extra and slow down every other command.
    try:
        from otel_llm_cost.ui import server  # noqa: PLC0415
    except ImportError as exc:
        print(f"otel-llm-cost: error: {exc} (pip install 'otel-llm-cost[ui]')", file=sys.stderr)
        return 2
    from otel_llm_cost.budgets.loader import load_budgets  # noqa: PLC0415
    from otel_llm_cost.enrich.user_labels import load_user_labels  # noqa: PLC0415
    from otel_llm_cost.pricing.book import PriceBook  # noqa: PLC0415

    db = args.db or _config.DUCKDB_PATH.get()
    pricebook = PriceBook.from_file(args.prices) if args.prices is not None else None
    budgets_file = args.budgets if args.budgets is not None else _config.BUDGETS_FILE.get()
    budgets = list(load_budgets(budgets_file)) if budgets_file is not None else []

    def announce(url: str) -> None:
        print(f"otel-llm-cost: dashboard on {url} (read-only; Ctrl-C stops it)", file=sys.stderr, flush=True)

    server.serve_dashboard(
        db,
        host=args.host,
        port=args.port,
        budgets=budgets,
        pricebook=pricebook,
        timeout_s=args.timeout,
        on_ready=announce,
        user_labels=load_user_labels(args.user_labels),
    )
    return 0
