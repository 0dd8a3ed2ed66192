"""attribution(): tags on the context and in W3C baggage; UserIdHasher: keyed, stable, never twice."""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import hmac
import logging
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import baggage, context

from otel_llm_cost._logging import ERROR_COUNTS, reset_log_once
from otel_llm_cost.enrich import attribution as attribution_module
from otel_llm_cost.enrich.attribution import (
    UserIdHasher,
    attribution,
    current_attribution,
    is_hashed_user_id,
    span_tags,
)

KEY = b"test-key-0123456789abcdef"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test reads the real ~/.config, the caller's env key or a default hasher from another test."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("OTEL_LLM_COST_USER_ID_KEY", raising=False)
    monkeypatch.delenv("OTEL_LLM_COST_HASH_USER_IDS", raising=False)
    monkeypatch.setattr(attribution_module, "_default_hasher", None)
    reset_log_once()
    yield
    reset_log_once()


def expected_hash(key: bytes, raw: str) -> str:
    return "h:" + hmac.new(key, raw.encode(), hashlib.sha256).hexdigest()[:32]


# --- UserIdHasher -------------------------------------------------------------------------------


def test_hash_is_hmac_sha256_prefix_with_marker() -> None:
    hashed = UserIdHasher(key=KEY).hash("u-42")
    assert hashed == expected_hash(KEY, "u-42")
    assert is_hashed_user_id(hashed)
    assert "u-42" not in hashed


def test_different_keys_give_different_hashes() -> None:
    assert UserIdHasher(key=KEY).hash("u-42") != UserIdHasher(key=b"another-key-0123456789").hash("u-42")


def test_already_hashed_value_is_not_hashed_twice() -> None:
    hasher = UserIdHasher(key=KEY)
    once = hasher.hash("u-42")
    assert hasher.hash(once) == once
    # A hash made with another key (an upstream service) is kept as well.
    assert hasher.hash(UserIdHasher(key=b"upstream-key-0123456789").hash("u-1")).startswith("h:")
    assert not is_hashed_user_id("h:XYZ")


def test_disabled_hasher_keeps_ids_and_reads_no_key(tmp_path: Path) -> None:
    hasher = UserIdHasher(enabled=False)
    assert hasher.hash("service-account-7") == "service-account-7"
    assert hasher.key_source == "disabled"
    assert not (tmp_path / "config").exists()


def test_env_can_disable_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_LLM_COST_HASH_USER_IDS", "false")
    assert UserIdHasher().hash("svc") == "svc"
    assert UserIdHasher(enabled=True, key=KEY).hash("svc") == expected_hash(KEY, "svc")


def test_key_precedence_argument_then_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_LLM_COST_USER_ID_KEY", "env-secret")
    assert UserIdHasher().hash("u") == expected_hash(b"env-secret", "u")
    assert UserIdHasher().key_source == "OTEL_LLM_COST_USER_ID_KEY"
    assert UserIdHasher(key=KEY).hash("u") == expected_hash(KEY, "u")


def test_empty_key_argument_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        UserIdHasher(key=b"")


def test_installation_key_file_is_private_and_stable_across_processes(tmp_path: Path) -> None:
    first = UserIdHasher().hash("u-42")
    key_file = tmp_path / "config" / "otel-llm-cost" / "user-id-key"
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert UserIdHasher().hash("u-42") == first
    code = "from otel_llm_cost.enrich.attribution import UserIdHasher; print(UserIdHasher().hash('u-42'))"
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    env.pop("OTEL_LLM_COST_USER_ID_KEY", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == first


def test_creating_the_installation_key_warns_once_that_hashes_are_local(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A container starts with a fresh home: a new key file there means new hashes for every user.
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
        UserIdHasher()
        UserIdHasher()
    created = [r for r in caplog.records if "OTEL_LLM_COST_USER_ID_KEY" in r.getMessage()]
    assert len(created) == 1
    assert created[0].levelno == logging.WARNING
    assert "this machine" in created[0].getMessage()
    assert str(tmp_path / "config" / "otel-llm-cost" / "user-id-key") in created[0].getMessage()

    # An existing key file (a restart on the same machine) or a configured key: nothing to say.
    reset_log_once()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
        UserIdHasher()
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "other"))
        monkeypatch.setenv("OTEL_LLM_COST_USER_ID_KEY", "fleet-secret")
        UserIdHasher()
    assert caplog.records == []
    assert not (tmp_path / "other").exists()


def test_unusable_key_directory_falls_back_to_ephemeral_key_with_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the config directory should be")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(blocker))
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
        hasher = UserIdHasher()
    assert hasher.key_source == "ephemeral"
    assert is_hashed_user_id(hasher.hash("u-42"))
    assert "OTEL_LLM_COST_USER_ID_KEY" in caplog.text
    assert ERROR_COUNTS["attribution.user_id_key_file"] == 1


def _planted_key_file(tmp_path: Path, mode: int) -> Path:
    key_file = tmp_path / "config" / "otel-llm-cost" / "user-id-key"
    key_file.parent.mkdir(parents=True)
    key_file.write_text("k" * 64)  # a key somebody else chose, and therefore knows
    key_file.chmod(mode)
    return key_file


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602])
def test_key_file_others_can_write_is_refused_with_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: int
) -> None:
    key_file = _planted_key_file(tmp_path, mode)
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
        hasher = UserIdHasher()
    assert hasher.key_source == "ephemeral"
    hashed = hasher.hash("alice@example.com")
    assert is_hashed_user_id(hashed)
    assert hashed != expected_hash(b"k" * 64, "alice@example.com")
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert str(key_file) in errors[0].getMessage()
    assert "chmod 600" in errors[0].getMessage()
    assert ERROR_COUNTS["attribution.user_id_key_unsafe"] == 1


def test_key_file_others_can_read_is_used_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_file = _planted_key_file(tmp_path, 0o644)
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
        hasher = UserIdHasher()
    assert hasher.key_source == str(key_file)
    assert hasher.hash("u-42") == expected_hash(b"k" * 64, "u-42")
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "readable by other users" in caplog.text
    # A private file says nothing.
    reset_log_once()
    caplog.clear()
    key_file.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
        assert UserIdHasher().hash("u-42") == expected_hash(b"k" * 64, "u-42")
    assert caplog.records == []


# --- attribution ---------------------------------------------------------------------------------


def test_block_sets_tags_on_context_and_baggage_then_restores() -> None:
    hasher = UserIdHasher(key=KEY)
    with attribution(feature="search", user_id="u-42", team="core", user_id_hasher=hasher):
        assert current_attribution() == {
            "feature": "search",
            "user_id": expected_hash(KEY, "u-42"),
            "team": "core",
        }
        entries = baggage.get_all()
        assert entries["cost.feature"] == "search"
        assert entries["cost.team"] == "core"
        # The raw id never enters the baggage that leaves the process.
        assert entries["cost.user_id"] == expected_hash(KEY, "u-42")
    assert current_attribution() == {}
    assert dict(baggage.get_all()) == {}


def test_nested_blocks_merge_and_inner_wins() -> None:
    with attribution(feature="outer", agent="a1"), attribution(feature="inner", step="s1"):
        assert current_attribution() == {"feature": "inner", "agent": "a1", "step": "s1"}
        assert baggage.get_baggage("cost.feature") == "inner"
    with attribution(feature="outer", agent="a1"):
        with attribution(feature="inner"):
            pass
        assert current_attribution() == {"feature": "outer", "agent": "a1"}


def test_none_values_are_skipped() -> None:
    with attribution(feature="f", user_id=None):
        assert current_attribution() == {"feature": "f"}


@pytest.mark.parametrize("key", ["with-dash", "1starts_with_digit", "x" * 65, "dotted.key", ""])
def test_bad_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="identifier"):
        attribution(**{key: "v"})


def test_non_string_values_are_refused() -> None:
    with pytest.raises(TypeError, match="str"):
        attribution(feature=3)  # type: ignore[arg-type]


def test_decorator_on_sync_function_gives_each_call_its_own_block() -> None:
    @attribution(feature="report")
    def work(step: str) -> dict[str, str]:
        with attribution(step=step):
            return current_attribution()

    assert work("a") == {"feature": "report", "step": "a"}
    assert work("b") == {"feature": "report", "step": "b"}
    assert current_attribution() == {}
    assert work.__name__ == "work"


def test_decorator_on_async_function() -> None:
    @attribution(agent="planner")
    async def plan() -> dict[str, str]:
        await asyncio.sleep(0)
        return current_attribution()

    assert asyncio.run(plan()) == {"agent": "planner"}


def test_decorator_refuses_generators() -> None:
    def gen() -> Iterator[int]:
        yield 1

    with pytest.raises(TypeError, match="generator"):
        attribution(feature="x")(gen)


def test_same_instance_can_be_nested_and_reused() -> None:
    block = attribution(feature="f")
    with block, block:
        assert current_attribution() == {"feature": "f"}
    assert current_attribution() == {}
    with block:
        assert current_attribution() == {"feature": "f"}


def test_threads_see_tags_only_through_a_copied_context() -> None:
    seen: dict[str, dict[str, str]] = {}

    def record(name: str) -> None:
        seen[name] = current_attribution()

    with attribution(feature="parent"):
        ctx = contextvars.copy_context()
        copied = threading.Thread(target=ctx.run, args=(record, "copied"))
        plain = threading.Thread(target=record, args=("plain",))
        copied.start()
        plain.start()
        copied.join()
        plain.join()
    assert seen == {"copied": {"feature": "parent"}, "plain": {}}


def test_concurrent_threads_do_not_mix_tags() -> None:
    barrier = threading.Barrier(2)
    seen: dict[str, dict[str, str]] = {}

    def worker(user: str) -> None:
        with attribution(session_id=user):
            barrier.wait()
            seen[user] = current_attribution()

    threads = [threading.Thread(target=worker, args=(name,)) for name in ("s1", "s2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"s1": {"session_id": "s1"}, "s2": {"session_id": "s2"}}


def test_asyncio_tasks_inherit_and_stay_isolated() -> None:
    async def child(step: str) -> dict[str, str]:
        with attribution(step=step):
            await asyncio.sleep(0)
            return current_attribution()

    async def main() -> list[dict[str, str]]:
        with attribution(workflow_id="wf-1"):
            return list(await asyncio.gather(child("a"), child("b")))

    assert asyncio.run(main()) == [
        {"workflow_id": "wf-1", "step": "a"},
        {"workflow_id": "wf-1", "step": "b"},
    ]


def test_span_tags_read_baggage_from_an_upstream_service_and_hash_raw_user_ids() -> None:
    hasher = UserIdHasher(key=KEY)
    ctx = baggage.set_baggage("cost.user_id", "raw-upstream-id", context.Context())
    ctx = baggage.set_baggage("cost.feature", "checkout", ctx)
    ctx = baggage.set_baggage("unrelated", "x", ctx)
    ctx = baggage.set_baggage("cost.bad-key", "x", ctx)
    assert dict(span_tags(ctx, hasher)) == {
        "cost.user_id": expected_hash(KEY, "raw-upstream-id"),
        "cost.feature": "checkout",
    }


def test_local_block_wins_over_upstream_baggage() -> None:
    upstream = baggage.set_baggage("cost.feature", "upstream", context.Context())
    upstream = baggage.set_baggage("cost.org_id", "org-1", upstream)
    token = context.attach(upstream)
    try:
        with attribution(feature="local"):
            assert dict(span_tags(None, None)) == {"cost.feature": "local", "cost.org_id": "org-1"}
    finally:
        context.detach(token)


def test_no_tags_means_no_attributes() -> None:
    assert span_tags(context.Context(), None) == ()
