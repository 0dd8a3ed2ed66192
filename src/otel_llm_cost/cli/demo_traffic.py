"""The demo's synthetic traffic: which LLM calls happen, when, for whom (pure: no I/O, no OpenTelemetry SDK).

Deterministic for a seed: three orgs and their users; a support chat agent on Claude with prompt caching
across each session's turns, some turns tagged by the app as fit for a cheaper model; invoice-processing
workflows (extract -> classify -> summarize) across OpenAI and Anthropic; search on Gemini with
embeddings and response-cache hits; code review on a self-hosted model no price table knows (it stays
unpriced, visibly).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from opentelemetry.util.types import AttributeValue

from otel_llm_cost.conventions import names as sc

__all__ = ["DAYS", "UNPRICED_MODEL", "DemoCall", "generate_calls"]

DAYS: Final = 14
"""The demo traffic spans the last two weeks."""

_ORGS: Final = {
    "org_acme": ("u-ana", "u-ben", "u-chloe", "u-dev", "u-eli"),
    "org_globex": ("u-fay", "u-gus", "u-hal"),
    "org_initech": ("u-ivy", "u-jon"),
}
UNPRICED_MODEL: Final = "acme-coder-2-ft"
"""A fine-tuned self-hosted model: no price table knows it, so its calls stay unpriced."""


@dataclass(frozen=True, slots=True)
class DemoCall:
    """One simulated LLM call: what to emit, under which attribution tags."""

    style: str
    """openai_v2, anthropic_pair (OpenLLMetry span + the Anthropic SDK's span), openinference_anthropic,
    openinference_google, self_hosted or response_cache."""
    start: datetime
    duration_ms: float
    request_model: str
    response_model: str
    input_tokens: int
    output_tokens: int
    tags: dict[str, str]
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    operation: str = "chat"
    hints: dict[str, AttributeValue] = field(default_factory=dict)


def _times(rng: random.Random, n: int, now: datetime) -> list[datetime]:
    """``n`` start times over the last DAYS days, busier on weekdays and working hours, then sorted."""
    start = now - timedelta(days=DAYS)
    times: list[datetime] = []
    while len(times) < n:
        moment = start + timedelta(seconds=rng.uniform(0, DAYS * 86400 - 600))
        weight = (1.0 if moment.weekday() < 5 else 0.35) * (1.0 if 7 <= moment.hour < 20 else 0.3)
        if rng.random() < weight:
            times.append(moment)
    return sorted(times)


def generate_calls(n: int, seed: int, now: datetime) -> list[DemoCall]:
    """Deterministic synthetic traffic of about ``n`` LLM calls ending at ``now`` (pure: no I/O)."""
    rng = random.Random(seed)  # noqa: S311 - synthetic traffic, not security
    calls: list[DemoCall] = []
    users = [(org, user) for org, members in _ORGS.items() for user in members]
    # Each anchor starts an interaction of one to six calls; visiting anchors in random order spreads
    # the first ``n`` calls over the whole period.
    anchors = _times(rng, n, now)
    rng.shuffle(anchors)
    for anchor in anchors:
        if len(calls) >= n:
            break
        org, user = rng.choice(users)
        pick = rng.random()
        if pick < 0.35:
            calls += _support_session(rng, anchor, org, user)
        elif pick < 0.6:
            calls += _invoice_workflow(rng, anchor, org, user)
        elif pick < 0.9:
            calls += _search(rng, anchor, org, user)
        else:
            calls += _code_review(rng, anchor, org, user)
    return sorted(calls[:n], key=lambda c: c.start)


def _support_session(rng: random.Random, at: datetime, org: str, user: str) -> list[DemoCall]:
    session = f"sess-{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}"
    system_prompt = rng.choice((3200, 4800, 6100))
    calls = []
    moment = at
    for turn in range(rng.randint(2, 6)):
        simple = rng.random() < 0.3
        hints: dict[str, AttributeValue] = (
            {sc.PROMPT_COULD_USE_HAIKU: True, sc.MODEL_RECOMMENDATION: "claude-3-5-haiku-latest"}
            if simple
            else {}
        )
        fresh = rng.randint(80, 900)
        calls.append(
            DemoCall(
                style="anthropic_pair",
                start=moment,
                duration_ms=rng.uniform(900, 6000),
                request_model="claude-sonnet-4-5",
                response_model="claude-sonnet-4-5-20250929",
                # Turn 1 writes the system prompt to the prompt cache; later turns read it.
                input_tokens=system_prompt + fresh,
                cache_write_tokens=system_prompt if turn == 0 else 0,
                cache_read_tokens=0 if turn == 0 else system_prompt,
                output_tokens=rng.randint(60, 700),
                tags={
                    "feature": "support_chat",
                    "agent": "support-bot",
                    "org_id": org,
                    "user_id": user,
                    "session_id": session,
                    "role": "assistant",
                },
                hints=hints,
            )
        )
        moment += timedelta(seconds=rng.uniform(20, 240))
    return calls


def _invoice_workflow(rng: random.Random, at: datetime, org: str, user: str) -> list[DemoCall]:
    workflow = f"wf-{uuid.UUID(int=rng.getrandbits(128)).hex[:10]}"
    base = {
        "feature": "document_analysis",
        "agent": "invoice-agent",
        "org_id": org,
        "user_id": user,
        "workflow_id": workflow,
        "workflow_label": "invoice",
    }
    pages = rng.randint(1, 8)
    steps = (
        ("extract", "openai_v2", "gpt-4o", "gpt-4o-2024-08-06", 1500 * pages, rng.randint(300, 1200)),
        ("classify", "openai_v2", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", rng.randint(400, 900), 20),
        (
            "summarize",
            "openinference_anthropic",
            "claude-3-5-haiku-latest",
            "claude-3-5-haiku-20241022",
            rng.randint(800, 2500),
            rng.randint(150, 400),
        ),
    )
    calls = []
    moment = at
    for step, style, request_model, response_model, input_tokens, output_tokens in steps:
        duration = rng.uniform(700, 9000)
        calls.append(
            DemoCall(
                style=style,
                start=moment,
                duration_ms=duration,
                request_model=request_model,
                response_model=response_model,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                tags={**base, "step": step, "task": "invoice"},
            )
        )
        moment += timedelta(milliseconds=duration + rng.uniform(50, 400))
    return calls


def _search(rng: random.Random, at: datetime, org: str, user: str) -> list[DemoCall]:
    tags = {"feature": "search", "agent": "search", "org_id": org, "user_id": user}
    query_tokens = rng.randint(8, 60)
    embed = DemoCall(
        style="openai_v2",
        start=at,
        duration_ms=rng.uniform(60, 250),
        request_model="text-embedding-3-small",
        response_model="text-embedding-3-small",
        input_tokens=query_tokens,
        output_tokens=0,
        tags=tags,
        operation="embeddings",
    )
    answer_at = at + timedelta(milliseconds=300)
    if rng.random() < 0.2:
        # Answered from the app's response cache: an LLM span with no API spend.
        answer = DemoCall(
            style="response_cache",
            start=answer_at,
            duration_ms=rng.uniform(2, 15),
            request_model="gemini-2.0-flash",
            response_model="gemini-2.0-flash",
            input_tokens=0,
            output_tokens=0,
            tags=tags,
        )
    else:
        answer = DemoCall(
            style="openinference_google",
            start=answer_at,
            duration_ms=rng.uniform(400, 2500),
            request_model="gemini-2.0-flash",
            response_model="gemini-2.0-flash",
            input_tokens=rng.randint(1500, 6000),
            output_tokens=rng.randint(100, 600),
            tags=tags,
        )
    return [embed, answer]


def _code_review(rng: random.Random, at: datetime, org: str, user: str) -> list[DemoCall]:
    return [
        DemoCall(
            style="self_hosted",
            start=at,
            duration_ms=rng.uniform(2000, 15000),
            request_model=UNPRICED_MODEL,
            response_model=UNPRICED_MODEL,
            input_tokens=rng.randint(2000, 12000),
            output_tokens=rng.randint(200, 1500),
            tags={"feature": "code_review", "agent": "reviewer", "org_id": org, "user_id": user},
        )
    ]
