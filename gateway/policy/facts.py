"""Typed facts about one request: parsed from the body once, at the edge.

``BodyFacts`` is what the proxy extracts from the JSON body (both API shapes).
``RequestFacts`` adds where the request came from, which endpoint it hit and
which capabilities the bundle's classifiers found; it is the request half of
``decide(principal, facts, bundle, now)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from gateway.geo.origin import Origin

ApiShape = Literal["openai", "anthropic"]


@dataclass(frozen=True, slots=True)
class BodyFacts:
    model: str
    stream: bool = False
    has_tools: bool = False
    """The body defines tools (``tools``, ``functions``, ``mcp_servers``) or its
    conversation holds tool calls or results (``proxy/body.py``: tool use)."""
    max_tokens: int | None = None
    """``max_tokens``, ``max_completion_tokens`` or ``max_output_tokens`` (the
    largest), or the tier's ``default_max_tokens`` when the body names none
    (``with_output_bound``)."""
    answers: int = 1
    """How many answers of up to ``max_tokens`` each are asked for (``n``,
    ``best_of``, a list of prompts): the token reservation holds that many."""
    message_count: int = 0
    logprobs: bool = False
    """Token log-probabilities are asked for (``requests_logprobs``)."""
    reasoning: bool = False
    """The model's reasoning is asked for (``requests_reasoning``)."""
    prompt_text: str = ""
    """All text of all messages/prompt/input, joined; used for classification only, never stored."""
    prompt_sha256: str = ""
    input_tokens_estimate: int = 0
    stream_usage_requested: bool = False
    """The client set ``stream_options.include_usage`` (OpenAI streams)."""
    stream_options_given: bool = False
    """The body has a top-level ``stream_options`` member (whatever it holds)."""
    max_tokens_defaulted: bool = False
    """``max_tokens`` is the tier's default, written into the forwarded body."""
    continues: tuple[str, ...] = ()
    """Ids of upstream-stored state the request continues (``previous_response_id``,
    ``conversation``): ``gateway.proxy.stored_state`` checks they are the caller's."""
    references: tuple[tuple[str, str], ...] = ()
    """Upstream items and containers the request names by id, as (kind, id)
    (``gateway.proxy.references``): ``reference_owners`` checks they are the caller's."""
    answers_audio: bool = False
    """A chat completion asking for audio: the audio id of its answer is bound
    to the caller (``gateway.proxy.reference_owners``)."""
    stored_prompt: tuple[str, str | None] | None = None
    """A Responses request's stored prompt (``prompt.id``, ``prompt.version``):
    noted in the decision record's facts (``stored_prompt``)."""


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


# The field that bounds the length of an answer, on each endpoint that
# generates one. OpenAI deprecated ``max_tokens`` on chat completions and its
# reasoning models refuse it; ``max_completion_tokens`` is accepted by all.
OUTPUT_BOUND_FIELDS = {
    "/v1/chat/completions": "max_completion_tokens",
    "/v1/completions": "max_tokens",
    "/v1/responses": "max_output_tokens",
    "/v1/messages": "max_tokens",
}


def with_output_bound(body: BodyFacts, endpoint: str, default: int | None) -> BodyFacts:
    """The body as it will be served: bounded by the tier's ``default_max_tokens``
    when it names no bound of its own.

    Without a bound an upstream generates up to the model's limit, so a request
    that left ``max_tokens`` out would dodge every ``max_tokens_over`` rule
    (long-horizon work) and reserve only its input against token quotas, and
    concurrent ones could overdraw a quota by the model's whole output length
    each. The proxy writes the same bound into the body it forwards
    (``OUTPUT_BOUND_FIELDS``), so what is classified, reserved and decided is
    what the upstream is asked to do; policy tests apply it the same way.
    """
    if body.max_tokens is not None or default is None or endpoint not in OUTPUT_BOUND_FIELDS:
        return body
    return replace(body, max_tokens=default, max_tokens_defaulted=True)
