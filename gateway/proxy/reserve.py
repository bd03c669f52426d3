"""What a token quota holds back for a request before it is forwarded."""

from __future__ import annotations

from gateway.policy.facts import BodyFacts

_COUNT_TOKENS = "/v1/messages/count_tokens"
_EMBEDDINGS = "/v1/embeddings"


def tokens_to_reserve(endpoint: str, body: BodyFacts, default_max_tokens: int | None) -> int:
    """What a token quota holds back before forwarding (settled to real usage after).

    Counting tokens generates nothing and is not billed; an embedding has no
    output. Reserving ``default_max_tokens`` for them charged every call as
    if it generated a full answer (count_tokens answers carry no ``usage``,
    so that charge was never settled down). A request for several answers
    (``n``, ``best_of``, a prompt list) may generate ``max_tokens`` for each.
    """
    if endpoint == _COUNT_TOKENS:
        return 0
    if endpoint == _EMBEDDINGS:
        return body.input_tokens_estimate
    output = (body.max_tokens or default_max_tokens or 0) * body.answers
    return output + body.input_tokens_estimate
