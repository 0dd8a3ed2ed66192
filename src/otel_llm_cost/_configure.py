"""`configure()`: one call that wires a TracerProvider with sane defaults."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from otel_llm_cost import _config
from otel_llm_cost.budgets import Budget, load_budgets
from otel_llm_cost.enrich.instrument import LLMSpanWatch, instrument_installed
from otel_llm_cost.enrich.processor import LLMCostSpanProcessor
from otel_llm_cost.exceptions import BudgetConfigError
from otel_llm_cost.storage.exporter import DuckDBSpanExporter

if TYPE_CHECKING:
    from otel_llm_cost.pricing import PriceBook

_logger = logging.getLogger("otel_llm_cost")


def configure(
    db_path: str | os.PathLike[str] | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    otlp: bool | None = None,
    pricing: PriceBook | None = None,
    budgets: Sequence[Budget] | str | os.PathLike[str] | None = None,
    alert_sinks: Sequence[Any] | None = None,
    set_global: bool = True,
    instrument: bool | None = None,
) -> TracerProvider:
    """Wire a TracerProvider so every LLM span is priced, tagged and stored in DuckDB.

    Adds one :class:`~otel_llm_cost.LLMCostSpanProcessor` that feeds a
    ``BatchSpanProcessor(DuckDBSpanExporter(db_path))`` and, when an OTLP endpoint is configured,
    a ``BatchSpanProcessor(OTLPSpanExporter())`` that receives the same enriched spans.

    Args:
        db_path: DuckDB file; default ``OTEL_LLM_COST_DUCKDB_PATH`` or ``llm_costs.duckdb``.
        tracer_provider: Provider to add the processor to. Default: the global SDK provider when
            one is already set (as under ``opentelemetry-instrument``), else a new ``TracerProvider()``
            (resource from ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``).
        otlp: Also export over OTLP/HTTP. Default: only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
            ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set.
        pricing: Price book; default :meth:`PriceBook.default` (bundled data + ``OTEL_LLM_COST_PRICES``).
        budgets: Budgets, or the path of a budgets TOML file; default the file named by
            ``OTEL_LLM_COST_BUDGETS`` if set (a malformed file named there is logged and ignored, so a
            bad deployment variable cannot stop the application from starting).
        alert_sinks: Where budget alerts go (default: Python logging, plus
            ``OTEL_LLM_COST_WEBHOOK_URL`` if set).
        set_global: Make a newly created provider the global one.
        instrument: Also switch on the instrumentation packages installed for the LLM SDKs that are
            installed (``openai``: opentelemetry-instrumentation-openai-v2, else OpenInference, else
            OpenLLMetry; ``anthropic``: OpenInference, else OpenLLMetry), one per SDK, on this
            provider. Default: ``OTEL_LLM_COST_INSTRUMENT`` (false). Whatever the setting, a warning
            is logged once when ``openai`` or ``anthropic`` is imported but the first 50 spans (and
            30 s) held no LLM call.

    Returns:
        The configured provider. Call ``provider.shutdown()`` (or rely on the SDK's atexit hook)
        to flush.

    Raises:
        PriceFileError, BudgetConfigError: a price or budget file given as an argument is malformed.

    Example:
        >>> provider = configure("llm_costs.duckdb", set_global=False)  # doctest: +SKIP
    """
    provider = tracer_provider
    install_global = False
    if provider is None:
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            # Under opentelemetry-instrument (or an earlier setup) the instrumentations already use the
            # global SDK provider: enriching a new, unused provider would price nothing.
            provider = current
        else:
            provider = TracerProvider()
            install_global = set_global

    if budgets is None:
        budget_list = _budgets_from_environment()
    elif isinstance(budgets, str | os.PathLike):
        budget_list = load_budgets(budgets)
    else:
        budget_list = list(budgets)

    wrapped: list[Any] = [BatchSpanProcessor(DuckDBSpanExporter(db_path))]
    if otlp is None:
        otlp = any(
            os.environ.get(name) for name in (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
        )
    if otlp:
        # Imported only when used: apps that never export over OTLP skip loading protobuf/requests.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415

        wrapped.append(BatchSpanProcessor(OTLPSpanExporter()))

    provider.add_span_processor(
        LLMCostSpanProcessor(*wrapped, pricing=pricing, budgets=budget_list, alert_sinks=alert_sinks)
    )
    provider.add_span_processor(LLMSpanWatch())
    if install_global:
        trace.set_tracer_provider(provider)
    if _config.INSTRUMENT.get() if instrument is None else instrument:
        instrument_installed(provider)
    return provider


def _budgets_from_environment() -> list[Budget]:
    path = _config.BUDGETS_FILE.get()
    if not path:
        return []
    try:
        return list(load_budgets(path))
    except (BudgetConfigError, OSError) as exc:
        _logger.error("ignoring %s=%s: %s", _config.BUDGETS_FILE.name, path, exc)
        return []


_zero_code_registered = False


def add_attribution_to_auto_configuration() -> None:
    """``opentelemetry_pre_instrument`` entry point: make ``attribution()`` and baggage work under
    ``opentelemetry-instrument`` with no code.

    The SDK's auto-configuration has set the global provider by the time ``opentelemetry-instrument``
    runs this hook (before the instrumentors); an :class:`AttributionSpanProcessor` added to it tags
    every span in ``on_start``, so ``OTEL_TRACES_EXPORTER=duckdb`` stores feature, user, org... and
    an OTLP exporter sends them. ``OTEL_LLM_COST_AUTO_ATTRIBUTION=false`` turns it off. Never raises.
    """
    global _zero_code_registered  # noqa: PLW0603 - once per process, however many times the hook runs
    try:
        if _zero_code_registered or not _config.AUTO_ATTRIBUTION.get():
            return
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            _logger.debug("no SDK TracerProvider under auto-instrumentation: attribution not added")
            return
        from otel_llm_cost.enrich.tagging import AttributionSpanProcessor  # noqa: PLC0415

        provider.add_span_processor(AttributionSpanProcessor())
        provider.add_span_processor(LLMSpanWatch())
        _zero_code_registered = True
    except Exception as exc:
        _logger.error("could not add attribution to the auto-configured TracerProvider: %r", exc)
