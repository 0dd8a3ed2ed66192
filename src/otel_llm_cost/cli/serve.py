"""``otel-llm-cost serve``: run the OTLP/HTTP receiver (registered by :mod:`otel_llm_cost.cli`)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from otel_llm_cost import _config
from otel_llm_cost.cli.ui import USER_LABELS_HELP

if TYPE_CHECKING:
    from otel_llm_cost.collector.dashboard import DashboardOptions
    from otel_llm_cost.collector.receiver import OTLPReceiver

_DESCRIPTION = """\
Receive OpenTelemetry traces over OTLP/HTTP (POST /v1/traces, protobuf or JSON, optionally gzip),
price the LLM spans and store them in one DuckDB file. Point any OTLP exporter at it, for example
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:4318/v1/traces. SIGTERM or Ctrl-C stops it after
storing everything it acknowledged. Needs the 'serve' extra: pip install 'otel-llm-cost[serve]'.
With --ui it also serves the read-only dashboard at /ui/ (to loopback clients only).
"""


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``serve`` subcommand."""
    parser = subparsers.add_parser(
        "serve",
        help="receive OTLP/HTTP traces from other processes and store their LLM costs",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--db",
        metavar="PATH",
        help="DuckDB file to write (default: $OTEL_LLM_COST_DUCKDB_PATH, else llm_costs.duckdb)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to bind (default: %(default)s, loopback only; another interface needs a token "
        "or --insecure)",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback --host without a token: anyone who can reach the port can write "
        "cost data (only on a private network or behind an authenticating proxy)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=4318,
        help="TCP port (default: %(default)s, the OTLP/HTTP port; 0: any free port)",
    )
    parser.add_argument(
        "--token",
        help="bearer token every request must carry (default: $OTEL_LLM_COST_SERVE_TOKEN; "
        "prefer the variable: command lines are visible to other users)",
    )
    _add_limits(parser)
    parser.add_argument(
        "--prices",
        metavar="FILE",
        help="user price file layered over the bundled prices (default: $OTEL_LLM_COST_PRICES)",
    )
    parser.add_argument(
        "--budgets", metavar="FILE", help="budgets TOML file (default: $OTEL_LLM_COST_BUDGETS)"
    )
    _add_dashboard(parser)
    parser.set_defaults(handler=_serve)


def _add_dashboard(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ui",
        action="store_true",
        help="also serve the read-only dashboard at /ui/ of the same port, over the file being written "
        "(answers loopback clients only)",
    )
    parser.add_argument(
        "--ui-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="with --ui: stop a page that waits for the file and queries it longer than this "
        "(default: %(default)s)",
    )
    parser.add_argument("--user-labels", metavar="CSV", help=USER_LABELS_HELP)


def _add_limits(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        metavar="N",
        help="largest request body, before and after decompression (default: 20 MiB)",
    )
    parser.add_argument(
        "--read-timeout",
        type=float,
        metavar="SECONDS",
        help="a request's headers must arrive within this long, then its body within this long; "
        "slower connections are closed (default: 10)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        metavar="N",
        help="connections open at once; more are refused (default: 512)",
    )


def _serve(args: argparse.Namespace) -> int:
    # Imported on use: the server libraries are an optional extra and slow down every other command.
    try:
        from otel_llm_cost.collector import receiver as collector  # noqa: PLC0415
    except ImportError as exc:
        print(f"otel-llm-cost: error: {exc}", file=sys.stderr)
        return 2
    pricing = None
    if args.prices is not None:
        from otel_llm_cost.pricing import PriceBook  # noqa: PLC0415

        pricing = PriceBook.from_file(args.prices)
    budgets: list[Any] = []
    budgets_file = args.budgets if args.budgets is not None else _config.BUDGETS_FILE.get()
    if budgets_file is not None:
        from otel_llm_cost.budgets import load_budgets  # noqa: PLC0415

        budgets = list(load_budgets(budgets_file))

    dashboard = _dashboard_options(args, pricing, budgets)

    def announce(receiver: OTLPReceiver) -> None:
        # The one line a supervisor or a test waits for; the URL carries the real port when --port 0.
        print(f"otel-llm-cost: receiving OTLP traces on {receiver.url}", file=sys.stderr, flush=True)
        if dashboard is not None:
            from otel_llm_cost.collector.dashboard import dashboard_url  # noqa: PLC0415

            print(
                f"otel-llm-cost: dashboard on {dashboard_url(receiver.url)} (read-only)",
                file=sys.stderr,
                flush=True,
            )

    stats = collector.serve(
        args.db,
        host=args.host,
        port=args.port,
        token=args.token,
        max_body_bytes=(
            args.max_body_bytes if args.max_body_bytes is not None else collector.DEFAULT_MAX_BODY_BYTES
        ),
        pricing=pricing,
        budgets=budgets,
        on_ready=announce,
        insecure=args.insecure,
        read_timeout_s=(
            args.read_timeout if args.read_timeout is not None else collector.DEFAULT_READ_TIMEOUT_S
        ),
        max_connections=(
            args.max_connections if args.max_connections is not None else collector.DEFAULT_MAX_CONNECTIONS
        ),
        dashboard=dashboard,
    )
    print(
        f"otel-llm-cost: stopped after {stats.requests} request(s): {stats.spans_accepted} span(s) accepted, "
        f"{stats.spans_rejected} rejected",
        file=sys.stderr,
    )
    return 0


def _dashboard_options(args: argparse.Namespace, pricing: Any, budgets: list[Any]) -> DashboardOptions | None:
    """The ``--ui`` options, or None without ``--ui``."""
    if not args.ui:
        if args.user_labels is not None:
            raise ValueError("--user-labels names users on the dashboard's pages: it needs --ui")
        return None
    from otel_llm_cost.collector.dashboard import DashboardOptions  # noqa: PLC0415 - only with --ui
    from otel_llm_cost.enrich.user_labels import load_user_labels  # noqa: PLC0415

    return DashboardOptions(
        budgets=budgets,
        pricebook=pricing,
        timeout_s=args.ui_timeout,
        user_labels=load_user_labels(args.user_labels),
    )
