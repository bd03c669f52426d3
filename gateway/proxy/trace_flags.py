"""The body fields that ask for log-probabilities or reasoning traces.

``gateway.proxy.body`` reads them into ``BodyFacts.logprobs`` and
``BodyFacts.reasoning``, which the bundled policy classifies as ``traces``.
"""

from __future__ import annotations

from typing import Any

from gateway.proxy.errors import ProxyError

# Fields that ask for what makes an answer worth distilling (regimes-and-kyc.md
# 5.2: hide log-probabilities from low-trust tiers; 5.3: reasoning traces).
# They are flags, not text, so no prompt rule could see them.
_LOGPROBS_INCLUDE = "message.output_text.logprobs"


def asks_logprobs(body: dict[str, Any]) -> bool:
    """Chat ``logprobs: true``, completions ``logprobs: N`` (0 still returns the
    chosen token's), ``top_logprobs`` above 0, or Responses' ``include`` of the
    output's log-probabilities.

    A flag of another type is a 400, not "not asked": an upstream that
    validates leniently (pydantic's lax mode) reads ``"true"`` or ``5.0`` as
    asking, and would return what the tier was refused."""
    value = body.get("logprobs")
    if value is not None and (
        type(value) not in (bool, int) or (type(value) is int and value < 0)
    ):
        raise ProxyError(
            400, "'logprobs' must be a boolean or a non-negative integer", param="logprobs"
        )
    if value is True or type(value) is int:
        return True
    top = body.get("top_logprobs")
    if top is not None and (type(top) is not int or top < 0):
        raise ProxyError(400, "'top_logprobs' must be a non-negative integer", param="top_logprobs")
    if type(top) is int and top > 0:
        return True
    include = body.get("include")
    return type(include) is list and _LOGPROBS_INCLUDE in include


def asks_reasoning(body: dict[str, Any]) -> bool:
    """Anthropic ``thinking`` not ``disabled`` (thinking blocks come back), or a
    ``reasoning`` object asking for a summary of the reasoning (Responses)."""
    thinking = body.get("thinking")
    if type(thinking) is dict and thinking.get("type") != "disabled":
        return True
    reasoning = body.get("reasoning")
    if type(reasoning) is not dict:
        return False
    summary = reasoning.get("summary") or reasoning.get("generate_summary")
    return summary is not None and summary != "none"
