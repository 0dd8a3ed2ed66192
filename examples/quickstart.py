"""Quickstart: price LLM spans, store them in DuckDB, query the cost.

Run:  python examples/quickstart.py [path/to/llm_costs.duckdb]

Real apps let an instrumentation (OpenTelemetry GenAI, OpenInference, OpenLLMetry, OpenLIT...) emit
the LLM spans; here we emit two by hand with the attributes the OTel GenAI conventions define.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from otel_llm_cost import CostStore, DuckDBSpanExporter, LLMCostSpanProcessor, attribution


def main(db_path: str = "llm_costs.duckdb") -> None:
    provider = TracerProvider()
    provider.add_span_processor(LLMCostSpanProcessor(BatchSpanProcessor(DuckDBSpanExporter(db_path))))
    tracer = provider.get_tracer("quickstart")

    with attribution(
        feature="document_analysis",
        user_id="u-42",
        org_id="org_123",
        workflow_id="wf-9",
        workflow_label="invoice",
    ):
        with attribution(step="extract"), tracer.start_as_current_span("chat gpt-4o") as span:
            span.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.response.model": "gpt-4o-2024-08-06",
                    "gen_ai.usage.input_tokens": 1000,
                    "gen_ai.usage.output_tokens": 500,
                }
            )
        with attribution(step="summarize"), tracer.start_as_current_span("chat claude") as span:
            span.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "anthropic",
                    "gen_ai.request.model": "claude-sonnet-4-20250514",
                    "gen_ai.usage.input_tokens": 8000,  # all input, incl. cache reads and writes
                    "gen_ai.usage.cache_read.input_tokens": 5000,
                    "gen_ai.usage.cache_creation.input_tokens": 2000,
                    "gen_ai.usage.output_tokens": 300,
                }
            )
    provider.shutdown()  # flushes the batch into DuckDB

    store = CostStore(db_path)
    totals = store.workflow_totals("wf-9")
    print(f"workflow wf-9: {totals.step_count} steps, {totals.total_tokens} tokens, ${totals.cost_usd:.6f}")
    now = datetime.now(UTC)
    for row in store.cost_by_model(now - timedelta(days=1), now + timedelta(minutes=1)):
        print(f"  {row.key:<28} ${row.total_cost_usd:.6f}  ({row.call_count} calls)")


if __name__ == "__main__":
    main(*sys.argv[1:])
