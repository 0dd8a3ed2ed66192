"""From an export batch to row tables, storing every span that converts and dropping only those at fault."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
from opentelemetry.sdk.trace import ReadableSpan

from otel_llm_cost._logging import log_once
from otel_llm_cost.conventions import names as sc
from otel_llm_cost.storage.clean_text import clean_value, cleaned_span
from otel_llm_cost.storage.enricher import SpanEnricher
from otel_llm_cost.storage.rows import Enricher, RowBatch, build_rows

__all__ = ["BatchConverter"]

_logger = logging.getLogger("otel_llm_cost.exporter")


class _Memo:
    """An enricher that computes each span once, however many times the batch is converted."""

    __slots__ = ("_done", "_enrich")

    def __init__(self, enrich: Enricher) -> None:
        self._enrich = enrich
        self._done: dict[int, Mapping[str, Any] | None] = {}  # id(span): the batch keeps spans alive

    def __call__(self, spans: Sequence[ReadableSpan]) -> list[Mapping[str, Any] | None]:
        done = self._done
        missing = [span for span in spans if id(span) not in done]
        if missing:
            done.update(zip(map(id, missing), self._enrich(missing), strict=True))
        return [done[id(span)] for span in spans]

    def stand_in(self, copy: object, span: ReadableSpan) -> None:
        """Give ``copy`` (kept alive by the caller) the enrichment of ``span``, its text cleaned:
        the double-count guard must not see one call twice."""
        if id(span) in self._done:
            self._done[id(copy)] = clean_value(self._done[id(span)])


class BatchConverter:
    """Builds the rows of an export batch through ``enricher`` (see :func:`~.rows.build_rows`)."""

    __slots__ = ("_enricher", "capture_content", "store_all_spans")

    def __init__(self, enricher: SpanEnricher, *, capture_content: bool, store_all_spans: bool) -> None:
        self._enricher = enricher
        self.capture_content = capture_content
        self.store_all_spans = store_all_spans

    def convert(self, spans: Sequence[ReadableSpan]) -> tuple[RowBatch, int]:
        """The batch's rows, and how many spans had to be dropped (they cannot be converted)."""
        enrich = _Memo(self._enricher.enrich)  # a second conversion must not ask the dedup guard twice
        try:
            return self._build(spans, enrich), 0
        except Exception as exc:
            log_once(
                _logger,
                "exporter.build_rows",
                logging.ERROR,
                "could not convert a batch of %d spans to rows (%r); storing all but the spans at fault",
                len(spans),
                exc,
            )
            return self._build_around_failures(spans, enrich)

    def _build(self, spans: Sequence[ReadableSpan], enrich: Enricher) -> RowBatch:
        return build_rows(
            spans,
            enrich=enrich,
            capture_content=self.capture_content,
            store_all_spans=self.store_all_spans,
            hash_user_id=self._enricher.hash_user_id,
        )

    def _build_around_failures(self, spans: Sequence[ReadableSpan], enrich: _Memo) -> tuple[RowBatch, int]:
        """Rows of every span that converts, by halving the batch down to the ones that do not."""
        unique: dict[tuple[int, int], ReadableSpan] = {}
        for span in spans:
            context = span.context
            if context is not None:
                unique.setdefault((context.trace_id, context.span_id), span)
        spans = list(unique.values())  # one span in two halves would be stored twice
        with contextlib.suppress(Exception):
            # The whole batch once, in end order, before the halves: dedup verdicts stay batch-wide.
            enrich([span for span in spans if sc.LLM_COST_STATUS not in (span.attributes or {})])
        parts: list[RowBatch] = []
        dropped = 0
        pending = [spans]
        while pending:
            part = pending.pop()
            try:
                parts.append(self._build(part, enrich))
            except Exception as exc:
                if len(part) > 1:
                    middle = len(part) // 2
                    pending += (part[middle:], part[:middle])  # popped first half first: span order
                    continue
                cleaned = cleaned_span(part[0])
                if cleaned is not None and self._build_cleaned(cleaned, part[0], enrich, parts):
                    continue
                dropped += 1
                log_once(
                    _logger,
                    "exporter.span_dropped",
                    logging.ERROR,
                    "dropped span %r: it cannot be stored (%r)",
                    getattr(part[0], "name", None),
                    exc,
                )
        if not parts:
            return self._build([], enrich), dropped
        calls = pa.concat_tables([part.calls for part in parts])
        all_spans = [part.spans for part in parts if part.spans is not None]
        return RowBatch(calls, pa.concat_tables(all_spans) if all_spans else None), dropped

    def _build_cleaned(
        self, cleaned: ReadableSpan, span: ReadableSpan, enrich: _Memo, parts: list[RowBatch]
    ) -> bool:
        """Append the rows of ``span`` with its lone surrogates replaced; False if they do not build."""
        enrich.stand_in(cleaned, span)
        try:
            parts.append(self._build([cleaned], enrich))
        except Exception:
            return False
        log_once(
            _logger,
            "exporter.text_cleaned",
            logging.WARNING,
            "span %r held text UTF-8 cannot encode (a lone surrogate): stored with U+FFFD in its place",
            cleaned.name,
        )
        return True
