"""How the provider and model ids spans carry map onto genai-prices' ids.

Spans name providers in several conventions (OTel GenAI ``gen_ai.provider.name``, the older
``gen_ai.system``, OpenInference ``llm.provider``/``llm.system``) and models in the forms of the API
that served them (Bedrock, Vertex, ``provider/model`` proxies). genai-prices matches dated ids
(``gpt-4o-2024-08-06``), Vertex ids (``claude-3-5-sonnet-v2@20241022``) and Bedrock ids when told the
provider is ``aws``; the rest is here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Final

from otel_llm_cost._private_api import bundled_genai_providers, find_genai_provider

if TYPE_CHECKING:
    from genai_prices import types as gp_types

__all__ = ["model_ref_candidates", "provider_id_for", "provider_id_in"]

# OTel GenAI `gen_ai.provider.name` values, the older `gen_ai.system` values (including
# OpenLLMetry's capitalised ones, compared lower-cased), and OpenInference `llm.provider` /
# `llm.system` values, onto genai-prices provider ids. `None` means "known, but genai-prices has
# no such provider": the model alone decides the price.
_PROVIDER_ALIASES: Final[dict[str, str | None]] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "aws.bedrock": "aws",
    "aws": "aws",
    "bedrock": "aws",
    "amazon": "aws",
    "amazon.bedrock": "aws",
    "aws_bedrock": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.openai": "azure",
    "az.ai.inference": "azure",
    "azure": "azure",
    "azure_openai": "azure",
    "azureopenai": "azure",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "vertex": "google",
    "gemini": "google",
    "google": "google",
    "google_genai": "google",
    "google.genai": "google",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "mistral": "mistral",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "x-ai": "x-ai",
    "deepseek": "deepseek",
    "groq": "groq",
    "cohere": "cohere",
    "perplexity": "perplexity",
    "openrouter": "openrouter",
    "together": "together",
    "together_ai": "together",
    "togetherai": "together",
    "fireworks": "fireworks",
    "fireworks_ai": "fireworks",
    "ibm.watsonx.ai": None,
    "watsonx": None,
    "ollama": None,
    "vllm": None,
    "lmstudio": None,
    "litellm": None,
}


def _normalise_provider_name(name: str) -> str:
    return name.strip().lower().replace(" ", "_")


def provider_id_in(providers: Sequence[gp_types.Provider], name: str | None) -> str | None:
    """:func:`provider_id_for` over ``providers`` (a genai-prices data file's) instead of the bundled data."""
    if not name:
        return None
    key = _normalise_provider_name(name)
    if key in _PROVIDER_ALIASES:
        return _PROVIDER_ALIASES[key]
    provider = find_genai_provider(list(providers), key)
    return provider.id if provider is not None else None


@lru_cache(maxsize=256)
def provider_id_for(otel_provider_name: str | None) -> str | None:
    """The genai-prices provider id for a provider name as spans carry it.

    Understands OTel GenAI ``gen_ai.provider.name`` values (``aws.bedrock``, ``azure.ai.openai``,
    ``gcp.vertex_ai``, ``x_ai``...), legacy ``gen_ai.system`` values in any case (``Anthropic``,
    ``Bedrock``, ``AWS``, ``az.ai.inference``), OpenInference ``llm.provider`` / ``llm.system``
    values (``mistralai``, ``xai``, ``vertexai``) and genai-prices' own ids.

    Args:
        otel_provider_name: The attribute value, or ``None``.

    Returns:
        A genai-prices provider id (``openai``, ``aws``, ``google``...), or ``None`` when the name is
        missing or names a provider genai-prices has no prices for (the model alone then decides).
    """
    return provider_id_in(bundled_genai_providers(), otel_provider_name)


_BEDROCK_ID: Final = re.compile(r"^(?:arn:aws:bedrock:|(?:[a-z]{2,6}\.)?[a-z0-9-]+\.[a-z])")


def model_ref_candidates(
    model_ref: str, provider_id: str | None, provider_id_of: Callable[[str], str | None]
) -> list[tuple[str, str | None]]:
    """The ``(model id, provider id)`` pairs to look up for a model id as a span carries it, best first.

    Beyond the id as given (with the provider hint, then without, since an OpenAI-compatible proxy
    may serve Claude): Bedrock ids without a provider hint, ``provider/model`` ids (OpenRouter,
    LiteLLM, Vertex ``publishers/.../models/...``) and ``resource/model`` ids.

    Args:
        model_ref: The model id, lower-cased and stripped.
        provider_id: The genai-prices id of the span's provider, if known.
        provider_id_of: Maps a ``provider/`` prefix onto a genai-prices provider id.
    """
    attempts: list[tuple[str, str | None]] = []
    if provider_id is not None:
        attempts.append((model_ref, provider_id))
    attempts.append((model_ref, None))
    if _BEDROCK_ID.match(model_ref):
        attempts.append((model_ref, "aws"))
    if "/" in model_ref:
        prefix, _, rest = model_ref.partition("/")
        tail = model_ref.rsplit("/", 1)[1]
        prefix_provider = provider_id_of(prefix)
        if prefix_provider is not None:
            attempts.append((rest, prefix_provider))
        # OpenRouter ids are `vendor/model`; they often arrive with provider `openai` because
        # OpenRouter is called through the OpenAI SDK.
        attempts.append((model_ref, "openrouter"))
        if provider_id is not None:
            attempts.append((tail, provider_id))
        attempts.append((tail, None))
        if _BEDROCK_ID.match(tail):
            attempts.append((tail, "aws"))
    return attempts
