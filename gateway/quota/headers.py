"""``x-ratelimit-*`` headers and the decision record's ``quota`` summary.

Headers follow OpenAI's names and formats, because most clients already
parse them: ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``, the
reset as a Go-style duration (``"12ms"``, ``"59s"``, ``"6m0s"``, ``"23h59m59s"``).
Reset means what OpenAI means: the time until the counter is back at its full
limit (in a sliding window: until the newest counted slot leaves it). Each trio
describes the counter that bound tightest: the lowest remaining fraction among
the request counters, and separately among the token counters.

Both are built in one pass over the counters, on every request: plain small
dicts, nothing else. An Anthropic-shaped answer also carries the same numbers
under Anthropic's names (``anthropic_headers``), its resets as RFC 3339
instants, built only for those answers.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from gateway.policy.decision import QuotaLimit
from gateway.quota.buckets import Counter, PreparedPlan
from gateway.quota.store import CounterState

_DURATIONS: dict[int, str] = {}
"""Formatted durations: the same few values recur (a fresh window's reset is
exactly its length), so each is formatted once."""


def format_duration(ms: int) -> str:
    """Go's ``time.Duration`` string for ``ms`` milliseconds (whole seconds above 1 s)."""
    text = _DURATIONS.get(ms)
    if text is None:
        if len(_DURATIONS) >= 4096:
            _DURATIONS.clear()
        text = _DURATIONS[ms] = _format_duration(ms)
    return text


def _format_duration(ms: int) -> str:
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    seconds = -(-ms // 1000)  # ceil, in integers
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def limit_dict(limit: QuotaLimit) -> dict[str, object]:
    return {"capability": limit.capability, "kind": limit.kind, "limit": limit.limit}


def _names(suffix: str) -> tuple[str, str, str]:
    return (
        f"x-ratelimit-limit-{suffix}",
        f"x-ratelimit-remaining-{suffix}",
        f"x-ratelimit-reset-{suffix}",
    )


_REQUESTS = _names("requests")
_TOKENS = _names("tokens")


def _trio(
    headers: dict[str, str],
    names: tuple[str, str, str],
    order: tuple[int, ...],
    counters: Sequence[Counter],
    states: Sequence[CounterState],
    resets: dict[str, int],
    kind: str,
) -> None:
    """The trio of the tightest counter among ``order`` (longest window first,
    so that on a tie in the remaining fraction the longer window is named:
    its reset is the honest one)."""
    best = -1
    best_fraction = 2.0
    for i in order:
        limit = counters[i].limit.limit
        used = states[i].used
        fraction = (limit - used) / limit if used < limit else 0.0
        if fraction < best_fraction:
            best, best_fraction = i, fraction
    limit = counters[best].limit.limit
    state = states[best]
    headers[names[0]] = str(limit)
    headers[names[1]] = str(limit - state.used if state.used < limit else 0)
    headers[names[2]] = format_duration(state.reset_ms)
    resets[kind] = state.reset_ms


def headers_and_summary(
    plan: PreparedPlan,
    states: Sequence[CounterState],
    *,
    tokens: int,
    reserved_tokens: int,
    refused: int | None,
    streaming: bool,
    resets: dict[str, int],
) -> tuple[dict[str, str], dict[str, object]]:
    """The ratelimit headers and the decision record's ``quota`` field (small,
    JSON-able, no secrets). ``refused`` is the index of the counter reported as
    the refusing one; ``tokens`` is what each token counter was asked for.
    ``resets`` receives each trio's reset in ms (``"requests"``, ``"tokens"``)."""
    counters = plan.counters
    buckets: list[dict[str, object]] = []
    for c, s in zip(counters, states, strict=True):
        limit = c.limit
        buckets.append(
            {
                "capability": limit.capability,
                "kind": limit.kind,
                "limit": limit.limit,
                "used": s.used,
                "remaining": limit.limit - s.used if s.used < limit.limit else 0,
            }
        )
    headers: dict[str, str] = {}
    if plan.request_order:
        _trio(headers, _REQUESTS, plan.request_order, counters, states, resets, "requests")
    if plan.token_order:
        _trio(headers, _TOKENS, plan.token_order, counters, states, resets, "tokens")
    refused_by: dict[str, object] | None = None
    if refused is not None:
        counter = counters[refused]
        cost = tokens if counter.type == "tokens" else 1
        refused_by = {
            **limit_dict(counter.limit),
            "cost": cost,
            "retry_after_ms": states[refused].retry_ms,
            "exceeds_limit": cost > counter.limit.limit,
        }
    summary: dict[str, object] = {
        "buckets": buckets,
        "reserved_tokens": reserved_tokens,
        "streaming": streaming,
        "refused_by": refused_by,
    }
    return headers, summary


_ANTHROPIC_NAMES = {
    kind: (
        (f"x-ratelimit-limit-{kind}", f"anthropic-ratelimit-{kind}-limit".encode()),
        (f"x-ratelimit-remaining-{kind}", f"anthropic-ratelimit-{kind}-remaining".encode()),
    )
    for kind in ("requests", "tokens")
}


def anthropic_headers(
    headers: Mapping[str, str], resets_ms: Mapping[str, int], at_ms: int
) -> list[tuple[bytes, bytes]]:
    """The quota ``headers`` under Anthropic's names, for Anthropic-shaped answers:
    ``anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}``, the reset
    an RFC 3339 instant (whole seconds, rounded up) where OpenAI's is a duration.
    ``resets_ms`` are the trios' resets from ``at_ms`` (ms since the epoch)."""
    out: list[tuple[bytes, bytes]] = []
    for kind, reset_ms in resets_ms.items():
        for openai_name, name in _ANTHROPIC_NAMES[kind]:
            out.append((name, headers[openai_name].encode()))
        instant = time.gmtime(-(-(at_ms + reset_ms) // 1000))
        out.append(
            (f"anthropic-ratelimit-{kind}-reset".encode(),
             time.strftime("%Y-%m-%dT%H:%M:%SZ", instant).encode())
        )
    return out
