"""CLI subcommands for one area (registered by :mod:`otel_llm_cost.cli`)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this area's subcommands; each sets ``handler(args) -> int`` with ``set_defaults``."""
