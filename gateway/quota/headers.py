"""``x-ratelimit-*`` headers and the decision record's ``quota`` summary.

Headers follow OpenAI's names and formats, because most clients already
parse them: ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``, the
reset as a Go-style duration (``"12ms"``, ``"59s"``, ``"6m0s"``, ``"23h59m59s"``).
Reset means what OpenAI means: the time until the counter is back at its full
limit (in a moving window: until the newest counted entry leaves it). Each trio
describes the counter that bound tightest: the lowest remaining fraction among
the request counters, and separately among the token counters.
"""

from __future__ import annotations

import math

from gateway.policy.decision import QuotaLimit
from gateway.quota.buckets import Counter, is_request_kind, is_token_kind
from gateway.quota.store import CounterState


def format_duration(ms: int) -> str:
    """Go's ``time.Duration`` string for ``ms`` milliseconds (whole seconds above 1 s)."""
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    seconds = math.ceil(ms / 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _tightest(
    pairs: list[tuple[Counter, CounterState]],
) -> tuple[Counter, CounterState] | None:
    if not pairs:
        return None
    # Lowest remaining fraction; on a tie the longer window, whose reset is the honest one.
    return min(
        pairs,
        key=lambda p: (
            max(p[0].limit.limit - p[1].used, 0) / p[0].limit.limit,
            -p[0].window_ms,
        ),
    )


def ratelimit_headers(counters: list[Counter], states: tuple[CounterState, ...]) -> dict[str, str]:
    pairs = list(zip(counters, states, strict=True))
    headers: dict[str, str] = {}
    for suffix, wanted in (("requests", is_request_kind), ("tokens", is_token_kind)):
        tight = _tightest([p for p in pairs if wanted(p[0].limit.kind)])
        if tight is None:
            continue
        counter, state = tight
        headers[f"x-ratelimit-limit-{suffix}"] = str(counter.limit.limit)
        headers[f"x-ratelimit-remaining-{suffix}"] = str(max(counter.limit.limit - state.used, 0))
        headers[f"x-ratelimit-reset-{suffix}"] = format_duration(state.reset_ms)
    return headers


def limit_dict(limit: QuotaLimit) -> dict[str, object]:
    return {"capability": limit.capability, "kind": limit.kind, "limit": limit.limit}


def summary(
    counters: list[Counter],
    states: tuple[CounterState, ...],
    *,
    reserved_tokens: int,
    refused: tuple[Counter, CounterState] | None,
    streaming: bool,
) -> dict[str, object]:
    """The decision record's ``quota`` field: small, JSON-able, no secrets."""
    buckets = [
        {
            **limit_dict(c.limit),
            "used": s.used,
            "remaining": max(c.limit.limit - s.used, 0),
        }
        for c, s in zip(counters, states, strict=True)
    ]
    out: dict[str, object] = {
        "buckets": buckets,
        "reserved_tokens": reserved_tokens,
        "streaming": streaming,
        "refused_by": None,
    }
    if refused is not None:
        counter, state = refused
        out["refused_by"] = {
            **limit_dict(counter.limit),
            "cost": counter.cost,
            "retry_after_ms": state.retry_ms,
            "exceeds_limit": counter.cost > counter.limit.limit,
        }
    return out
