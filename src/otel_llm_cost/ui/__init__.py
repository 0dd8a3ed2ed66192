"""The local dashboard: Overview, Breakdown, Drill-down, Budgets and Prices pages over a CostStore.

``otel-llm-cost ui --db FILE`` serves it on 127.0.0.1; ``otel-llm-cost report --format html`` writes the
overview and breakdowns as one self-contained file. The server (:mod:`otel_llm_cost.ui.app`) needs the
``ui`` extra (starlette, uvicorn); the HTML report needs nothing more than the package.
"""

from otel_llm_cost.ui.report import render_report_html

__all__ = ["render_report_html"]
