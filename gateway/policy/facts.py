"""Typed facts about one request: parsed from the body once, at the edge.

``BodyFacts`` is what the proxy extracts from the JSON body (both API shapes).
``RequestFacts`` adds where the request came from, which endpoint it hit and
which capabilities the bundle's classifiers found; it is the request half of
``decide(principal, facts, bundle, now)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.geo.origin import Origin

ApiShape = Literal["openai", "anthropic"]


@dataclass(frozen=True, slots=True)
class BodyFacts:
    model: str
    stream: bool = False
    has_tools: bool = False
    max_tokens: int | None = None
    """``max_tokens``, ``max_completion_tokens`` or ``max_output_tokens``."""
    message_count: int = 0
    prompt_text: str = ""
    """All text of all messages/prompt/input, joined; used for classification only, never stored."""
    prompt_sha256: str = ""
    input_tokens_estimate: int = 0
    stream_usage_requested: bool = False
    """The client set ``stream_options.include_usage`` (OpenAI streams)."""
    stream_options_given: bool = False
    """The body has a top-level ``stream_options`` member (whatever it holds)."""


@dataclass(frozen=True, slots=True)
class RequestFacts:
    endpoint: str
    """The route path, e.g. ``/v1/chat/completions``."""
    api: ApiShape
    body: BodyFacts
    origin: Origin
    capabilities: frozenset[str] = frozenset()

    @property
    def model(self) -> str:
        return self.body.model
