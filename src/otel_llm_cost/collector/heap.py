"""Garbage-collector settings for a process that does nothing but receive spans (``otel-llm-cost serve``).

Each received request becomes thousands of short-lived Python objects per span batch (the protobuf's
wrappers, attribute dicts, the enrichment of every call, the row lists), all freed once its rows are
journaled. With CPython's default thresholds (a young collection every 700 allocations) they trigger
hundreds of collections per second, and the full collections that follow traverse everything the
process holds for good: imported modules and the price book's ~2,300 entries. Measured with
``benchmarks/bench_collector.py`` (one thread decoding and enriching 20,000 LLM spans): enrichment
took 26-28 µs per span with the defaults, 21 µs after freezing the start-up heap and 18-19 µs with
the thresholds below as well.

Only the receiver's own process is tuned (by :func:`~otel_llm_cost.collector.receiver.serve`): an
application that embeds an :class:`~otel_llm_cost.collector.receiver.OTLPReceiver` keeps its settings.
"""

from __future__ import annotations

import gc
from typing import Final

__all__ = ["RECEIVER_GC_THRESHOLDS", "settle_heap"]

RECEIVER_GC_THRESHOLDS: Final = (10_000, 50, 1_000)
"""Young collections every 10,000 allocations instead of 700 (a 512-span request makes a few
tens of thousands); older generations collected more rarely still. Memory is bounded by the requests
in flight either way: their objects are freed by reference counting, not by the collector."""


def settle_heap() -> None:
    """Freeze what is alive now (never collected again) and set :data:`RECEIVER_GC_THRESHOLDS`.

    Call once the receiver is built (modules imported, prices loaded), before it serves.
    """
    gc.collect()  # what start-up left as garbage is freed now rather than frozen
    gc.freeze()
    gc.set_threshold(*RECEIVER_GC_THRESHOLDS)
