"""The 429 answer for a request the quota stage refused."""

from __future__ import annotations

from gateway.proxy.errors import ProxyError
from gateway.proxy.exchange import Exchange
from gateway.quota.describe import describe_refusal, never_fits
from gateway.quota.headers import anthropic_headers
from gateway.stages import Admission

_LONGEST_SDK_WAIT_SECONDS = 60
"""A quota refusal whose wait is longer than this (longer than any per-minute
window's) carries ``x-should-retry: false``: the SDKs raise at once, with
``retry-after`` in hand, instead of sleeping through it in their own retry."""


def quota_refusal(ex: Exchange, admission: Admission) -> ProxyError:
    """The 429 for a request the quota stage refused (recorded on ``ex``)."""
    message = describe_refusal(admission)
    ex.refuse("quota-exceeded", message)
    headers = dict(admission.headers)
    if ex.api == "anthropic":
        headers.update(
            (k.decode(), v.decode())
            for k, v in anthropic_headers(admission.headers, admission.resets_ms, admission.at_ms)
        )
    retry_after = admission.retry_after_seconds or 1
    headers["retry-after"] = str(retry_after)
    if never_fits(admission) or retry_after > _LONGEST_SDK_WAIT_SECONDS:
        # The OpenAI and Anthropic SDKs retry a 429 (twice, by default) unless
        # told not to; this one no wait can cure, or the wait is hours (a daily
        # window): the Anthropic SDK sleeps whatever retry-after says, inside
        # the caller's call.
        headers["x-should-retry"] = "false"
    return ProxyError(429, message, code="rate_limit_exceeded", headers=headers)
