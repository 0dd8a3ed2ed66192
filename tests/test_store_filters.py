"""``where=`` on every CostStore report, and ``hash_user_id`` to filter by a raw user id."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest

from conftest import BASE_TIME, CallsDB, call
from otel_llm_cost import UserIdHasher, hash_user_id
from otel_llm_cost.enrich.attribution import default_user_id_hasher, set_default_user_id_hasher
from otel_llm_cost.exceptions import UnknownDimensionError
from otel_llm_cost.query import CostStore
from otel_llm_cost.query.filters import parse_where

KEY = b"0123456789abcdef"


@pytest.fixture
def store(calls_db: CallsDB) -> CostStore:
    hasher = UserIdHasher(key=KEY)
    calls_db.insert(
        call(feature="search", cost_usd="0.10", request_model="gpt-4o", user_id=hasher.hash("alice")),
        call(feature="search", cost_usd="0.05", request_model="gpt-4o-mini", tags={"team": "growth"}),
        call(feature="chat", cost_usd="0.50", request_model="claude", user_id=hasher.hash("alice")),
        call(feature=None, cost_usd="0.01", start_time=BASE_TIME + timedelta(days=1)),
    )
    return CostStore(calls_db.path)


def test_where_narrows_every_report(store: CostStore) -> None:
    where = {"feature": "search"}
    assert [r.key for r in store.cost_by("model", where=where)] == ["gpt-4o", "gpt-4o-mini"]
    assert [r.key for r in store.cost_by_model(where={"tag:team": "growth"})] == ["gpt-4o-mini"]
    assert store.summary(where=where).cost_usd == Decimal("0.15")
    assert [c.feature for c in store.top_calls(5, where=where)] == ["search", "search"]
    assert store.savings(where=where).call_count == 2
    days = store.daily_cost(BASE_TIME, BASE_TIME + timedelta(days=2), where={"feature": None})
    assert [d.total_cost_usd for d in days] == [Decimal(0), Decimal("0.01"), Decimal(0)]
    both = {"feature": "search", "model": "gpt-4o"}
    assert store.summary(where=both).call_count == 1


@pytest.fixture
def installation_key() -> Iterator[None]:
    before = default_user_id_hasher()
    set_default_user_id_hasher(UserIdHasher(key=KEY))
    yield
    set_default_user_id_hasher(before)


@pytest.mark.usefixtures("installation_key")
def test_hash_user_id_filters_by_a_raw_id_with_the_installations_key(store: CostStore) -> None:
    alice = hash_user_id("alice")
    assert alice.startswith("h:")
    assert "alice" not in alice
    assert store.summary(where={"user": alice}).cost_usd == Decimal("0.60")
    assert [r.key for r in store.cost_by("feature", where={"user_id": alice})] == ["chat", "search"]


def test_bad_where_is_refused_before_any_query(store: CostStore) -> None:
    with pytest.raises(UnknownDimensionError, match="unknown dimension 'colour'"):
        store.summary(where={"colour": "red"})
    with pytest.raises(ValueError, match="must be a string or None"):
        store.summary(where={"feature": 3})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="expected DIMENSION=VALUE"):
        parse_where(["feature"])
    assert parse_where(["tag:team=growth", "feature=", "agent=(none)"]) == {
        "tag:team": "growth",
        "feature": None,
        "agent": None,
    }
