"""Switching on the instrumentation packages that are installed, and noticing when none produces spans.

otel-llm-cost prices the spans instrumentations emit; without one, nothing is written and, before
this module, nothing said so. ``configure(instrument=True)`` calls :func:`instrument_installed`;
``configure()`` and the zero-code hook add an :class:`LLMSpanWatch`, which logs one warning when an
LLM SDK is imported but the first spans held no LLM call.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import time
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from otel_llm_cost._logging import log_once
from otel_llm_cost.enrich.enrichment import is_llm_candidate
from otel_llm_cost.enrich.span_copy import span_attributes

__all__ = ["INSTRUMENTORS", "Instrumentor", "LLMSpanWatch", "instrument_installed"]

_logger = logging.getLogger("otel_llm_cost.instrument")


@dataclass(frozen=True, slots=True)
class Instrumentor:
    """One instrumentation package: the SDK it instruments and the class that switches it on."""

    sdk: str
    module: str
    cls: str
    package: str


# Preference order per SDK: the first installed one is used (one per SDK, or calls are recorded twice).
# Versions tested: docs/instrumentations.md, "Wiring your application".
INSTRUMENTORS: Final = (
    Instrumentor("openai", "opentelemetry.instrumentation.openai_v2", "OpenAIInstrumentor",
                 "opentelemetry-instrumentation-openai-v2"),
    Instrumentor("openai", "openinference.instrumentation.openai", "OpenAIInstrumentor",
                 "openinference-instrumentation-openai"),
    Instrumentor("openai", "opentelemetry.instrumentation.openai", "OpenAIInstrumentor",
                 "opentelemetry-instrumentation-openai"),
    Instrumentor("anthropic", "openinference.instrumentation.anthropic", "AnthropicInstrumentor",
                 "openinference-instrumentation-anthropic"),
    Instrumentor("anthropic", "opentelemetry.instrumentation.anthropic", "AnthropicInstrumentor",
                 "opentelemetry-instrumentation-anthropic"),
)  # fmt: skip

_LLM_SDKS: Final = ("openai", "anthropic")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def instrument_installed(tracer_provider: Any) -> list[str]:
    """Instrument every installed LLM SDK with the first installed instrumentation package for it.

    Never raises: an instrumentation that fails to import or instrument (it happens: a release of a
    dependency it imports breaks it) is logged with the package to pin, and the next one is tried.

    Args:
        tracer_provider: The provider the instrumentations create their spans with.

    Returns:
        The packages that were switched on.
    """
    done: list[str] = []
    for sdk in _LLM_SDKS:
        if not _installed(sdk):
            continue
        candidates = [i for i in INSTRUMENTORS if i.sdk == sdk]
        for candidate in candidates:
            if not _installed(candidate.module):
                continue
            try:
                instrumentor = getattr(importlib.import_module(candidate.module), candidate.cls)()
                if not instrumentor.is_instrumented_by_opentelemetry:
                    instrumentor.instrument(tracer_provider=tracer_provider)
                done.append(candidate.package)
                break
            except Exception as exc:
                _logger.warning("could not switch on %s: %r", candidate.package, exc)
        else:
            log_once(
                _logger,
                f"instrument.none.{sdk}",
                logging.WARNING,
                "%s is installed but no instrumentation package for it is (or none loaded): its calls make "
                "no spans, so they are not priced. Install one of: %s",
                sdk,
                ", ".join(c.package for c in candidates),
            )
    return done


class LLMSpanWatch(SpanProcessor):
    """Logs once when an LLM SDK is imported but no LLM span was among the first spans.

    It looks at span ends only until it has decided: after ``spans`` spans or ``seconds`` seconds
    (whichever comes later) with an SDK in ``sys.modules`` and no LLM call seen, it warns; the first
    LLM span ends its watch. Afterwards ``on_end`` is one attribute test.

    Args:
        spans: How many ended spans to look at before deciding.
        seconds: How long after creation to wait before deciding.
    """

    def __init__(self, spans: int = 50, seconds: float = 30.0) -> None:
        self._left = spans
        self._deadline = time.monotonic() + seconds
        self._done = False

    def on_end(self, span: ReadableSpan) -> None:
        """Count the span; decide once enough were seen (never raises)."""
        if self._done:
            return
        try:
            scope = span.instrumentation_scope
            if is_llm_candidate(span_attributes(span), scope.name if scope is not None else None):
                self._done = True
                return
            self._left -= 1
            if self._left <= 0 and time.monotonic() >= self._deadline:
                self._done = True
                imported = [sdk for sdk in _LLM_SDKS if sdk in sys.modules]
                if imported:
                    log_once(
                        _logger,
                        "instrument.no_llm_spans",
                        logging.WARNING,
                        "%s imported, but none of the first spans was an LLM call: is an instrumentation "
                        "switched on for the same TracerProvider? See docs/instrumentations.md, or "
                        "configure(instrument=True).",
                        " and ".join(imported),
                    )
        except Exception as exc:
            self._done = True
            log_once(_logger, "instrument.watch", logging.DEBUG, "LLM span watch failed: %r", exc)

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered."""
        return True
