"""DoubleCountGuard: one billable call = one leaf LLM span (rules in otel_llm_cost.enrich.dedup)."""

from __future__ import annotations

from typing import Any

import pytest

from otel_llm_cost.enrich.dedup import DoubleCountGuard, Verdict

TRACE = 0xABC


def llm(guard: DoubleCountGuard, span_id: int, **overrides: Any) -> Verdict:
    fields: dict[str, Any] = {
        "trace_id": TRACE,
        "span_id": span_id,
        "parent_span_id": None,
        "start_ns": 1_000,
        "end_ns": 2_000,
        "native_sdk": False,
        "response_id": None,
        "input_tokens": 100,
        "output_tokens": 20,
        "aggregate": False,
    }
    fields.update(overrides)
    return guard.llm_span_ended(**fields)


def test_first_span_of_a_response_id_is_billable_and_the_second_points_to_it() -> None:
    guard = DoubleCountGuard(100)
    assert llm(guard, 1, response_id="msg_1", native_sdk=True) == Verdict(True, None)
    assert llm(guard, 2, response_id="msg_1", start_ns=5_000, end_ns=6_000) == Verdict(False, f"{1:016x}")


def test_different_response_ids_are_different_calls() -> None:
    guard = DoubleCountGuard(100)
    assert llm(guard, 1, response_id="a").billable
    assert llm(guard, 2, response_id="b").billable


def test_sdk_child_is_billable_and_wrapping_instrumentation_span_is_its_duplicate() -> None:
    guard = DoubleCountGuard(100)
    # Children end first: the SDK's span (child, no response id here) ...
    assert llm(guard, 2, parent_span_id=1, native_sdk=True) == Verdict(True, None)
    # ... then the instrumentation span wrapping it, with the same usage.
    assert llm(guard, 1, start_ns=900, end_ns=2_100) == Verdict(False, f"{2:016x}")


def test_overlapping_siblings_sdk_and_instrumentation_first_ended_wins() -> None:
    guard = DoubleCountGuard(100)
    assert llm(guard, 1, parent_span_id=9).billable
    assert llm(guard, 2, parent_span_id=9, native_sdk=True, start_ns=1_100, end_ns=1_900) == Verdict(
        False, f"{1:016x}"
    )


def test_same_usage_without_overlap_or_from_the_same_scope_is_not_a_duplicate() -> None:
    guard = DoubleCountGuard(100)
    assert llm(guard, 1).billable
    # Two instrumentation spans with equal counts: two identical calls, both billable.
    assert llm(guard, 2).billable
    # An SDK span with equal counts but later in time: another call.
    assert llm(guard, 3, native_sdk=True, start_ns=10_000, end_ns=11_000).billable
    # Same counts in another trace: another call.
    assert llm(guard, 4, native_sdk=True, trace_id=0xDEF).billable


def test_each_billable_span_absorbs_one_duplicate_only() -> None:
    guard = DoubleCountGuard(100)
    # Two identical calls in parallel, each recorded by the SDK and an instrumentation.
    assert llm(guard, 1, native_sdk=True).billable
    assert llm(guard, 2, native_sdk=True).billable
    assert not llm(guard, 3).billable
    assert not llm(guard, 4).billable
    assert llm(guard, 5).billable


def test_aggregate_span_is_never_billable_and_never_absorbs() -> None:
    guard = DoubleCountGuard(100)
    assert llm(guard, 1, aggregate=True) == Verdict(False, None)
    assert llm(guard, 2, native_sdk=True).billable


def test_ancestor_of_llm_spans_is_not_billable_through_non_llm_levels() -> None:
    guard = DoubleCountGuard(100)
    # agent(1) -> chain(2, not an LLM span) -> llm(3); agent carries the summed usage.
    assert llm(guard, 3, parent_span_id=2, input_tokens=10, output_tokens=1).billable
    assert guard.tracking_ancestors
    guard.non_llm_span_ended(2, 1)
    assert llm(guard, 1, input_tokens=500, output_tokens=50) == Verdict(False, None)
    assert not guard.tracking_ancestors


def test_non_llm_span_outside_llm_subtrees_marks_nothing() -> None:
    guard = DoubleCountGuard(100)
    guard.non_llm_span_ended(7, 1)
    assert not guard.tracking_ancestors
    assert llm(guard, 1).billable


def test_spans_without_usage_are_billable_and_not_matched() -> None:
    guard = DoubleCountGuard(100)
    assert llm(guard, 1, input_tokens=None, output_tokens=None).billable
    assert llm(guard, 2, input_tokens=None, output_tokens=None, native_sdk=True).billable


def test_child_without_usage_does_not_make_its_parent_an_ancestor() -> None:
    guard = DoubleCountGuard(100)
    assert llm(guard, 2, parent_span_id=1, input_tokens=None, output_tokens=None).billable
    assert not guard.tracking_ancestors
    assert llm(guard, 1, input_tokens=500, output_tokens=50).billable


def test_memory_is_bounded_by_capacity() -> None:
    guard = DoubleCountGuard(3)
    for n in range(10):
        llm(guard, 100 + n, response_id=f"r{n}", parent_span_id=1000 + n, input_tokens=n + 1)
    assert len(guard._by_response) == 3
    assert len(guard._by_usage) == 3
    assert len(guard._ancestors) == 3
    # The oldest response id was forgotten: at worst over-counted, never under-counted.
    assert llm(guard, 200, response_id="r0").billable
    assert not llm(guard, 201, response_id="r9").billable


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        DoubleCountGuard(0)


def test_many_identical_calls_in_one_trace_stay_bounded_and_billable() -> None:
    guard = DoubleCountGuard(100)
    # An embedding batch: thousands of calls with the same counts in one trace, no SDK spans.
    for n in range(1_000):
        assert llm(guard, 1 + n, start_ns=10 * n, end_ns=10 * n + 5).billable
    assert all(len(seen) <= 64 for seen in guard._by_usage.values())
    # An SDK span overlapping the latest call is still recognised as its duplicate.
    assert llm(guard, 5_000, native_sdk=True, start_ns=9_990, end_ns=9_995) == Verdict(False, f"{1_000:016x}")
