"""Which span attributes hold prompt or completion text: dropped before storage unless
``OTEL_LLM_COST_CAPTURE_CONTENT`` is on.

Content is the default assumption for any name that looks like it: instrumentations keep inventing
attribute names for messages (``ai.prompt.messages``, ``mlflow.spanInputs``, ``lmnr.span.input``, a
plain ``input``), so a list of known names alone lets new ones through. The rule, first match wins:

1. a name in ``CONTENT_SAFE_ATTRIBUTE_NAMES`` (application hints the reports read) is kept;
2. a name in ``CONTENT_ATTRIBUTE_NAMES``, or one continuing it with ``.``, is content;
3. a count or descriptor of several parts is kept: a part mentions tokens
   (``gen_ai.usage.input_tokens``, ``llm.token_count.prompt``) or the last part is a descriptor word
   (``count``, ``type``, ``mime_type``, ``id``, ``name``, ``role``, ...: ``gen_ai.output.type``,
   ``input.mime_type``);
4. a name with any part that is a message word (``prompt``, ``completion``, ``message``, ``input``,
   ``output``, ``content``, ``text``, ``choice``, ``query``, ``instructions``, ``documents``,
   ``arguments``, ``definitions``, ``embeddings``, singular or plural, with a ``something_`` or
   ``span`` in front: ``input_messages``, ``spanInputs``) is content;
5. anything else is kept.
"""

from __future__ import annotations

import functools
import re
from typing import Final

from otel_llm_cost.conventions import names as sc

__all__ = ["is_content_attribute"]

_CONTENT_EXACT: Final = frozenset(sc.CONTENT_ATTRIBUTE_NAMES)
_CONTENT_PREFIXES: Final = tuple(name + "." for name in sc.CONTENT_ATTRIBUTE_NAMES)
_SAFE: Final = frozenset(sc.CONTENT_SAFE_ATTRIBUTE_NAMES)
_DESCRIPTOR_WORDS: Final = frozenset(
    {
        "count",
        "counts",
        "type",
        "mime_type",
        "format",
        "id",
        "ids",
        "name",
        "role",
        "size",
        "length",
        "index",
        "version",
        "model",
        "kind",
        "finish_reason",
        "finish_reasons",
        "status",
        "truncated",
    }
)
_MESSAGE_WORD: Final = re.compile(
    r"(?:[a-z0-9]+_)*(?:span_?)?(?:prompts?|completions?|messages?|inputs?|outputs?|contents?|texts?"
    r"|choices?|query|queries|instructions|documents?|arguments|args|definitions|embeddings?)"
)


@functools.lru_cache(maxsize=4096)  # a few hundred names recur span after span
def is_content_attribute(name: str) -> bool:
    """True for an attribute that holds (or may hold) prompt, completion or message text (see module)."""
    if name in _SAFE:
        return False
    if name in _CONTENT_EXACT or name.startswith(_CONTENT_PREFIXES):
        return True
    parts = name.lower().split(".")
    if len(parts) > 1 and (parts[-1] in _DESCRIPTOR_WORDS or any("token" in part for part in parts)):
        return False
    return any(_MESSAGE_WORD.fullmatch(part) for part in parts)
