"""The `otel-llm-cost` command line: one module per command group, each parser beside its handler."""

from otel_llm_cost.cli.main import main

__all__ = ["main"]
