"""From a ``QuotaPlan`` to the concrete counters one request touches.

A *bucket* is ``(customer, capability)``; each of its limits is one counter:

* ``requests_per_*`` and ``tokens_per_*`` are **moving windows** (a log of
  entries with a timestamp and an amount; a request costs 1, a token
  reservation costs the tokens reserved). What counts is the sum of the
  entries younger than the window, so there is no boundary at which twice the
  limit can pass, as with a fixed window.
* ``concurrent_streams`` is a set of **leases** scored by their expiry; only
  streaming requests take one.

Both stores (memory and Redis) receive the same list of ``Counter`` objects and
apply the same algorithm; this module is the only place that knows the key
layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.policy.decision import QuotaKind, QuotaLimit, QuotaPlan

WINDOW_MS: dict[QuotaKind, int] = {
    "requests_per_minute": 60_000,
    "requests_per_day": 86_400_000,
    "tokens_per_minute": 60_000,
    "tokens_per_day": 86_400_000,
}

CounterType = Literal["window", "lease"]
KEY_PREFIX = "gwq"


def is_token_kind(kind: QuotaKind) -> bool:
    return kind in ("tokens_per_minute", "tokens_per_day")


def is_request_kind(kind: QuotaKind) -> bool:
    return kind in ("requests_per_minute", "requests_per_day")


@dataclass(frozen=True, slots=True)
class Counter:
    """One limit of one bucket, with what this request would take from it."""

    limit: QuotaLimit
    key: str
    type: CounterType
    window_ms: int
    """Window length for ``window`` counters; 0 for leases."""
    cost: int
    """1 for requests and leases, the reserved tokens for token windows."""


def counter_key(customer_id: str, capability: str, kind: QuotaKind) -> str:
    # The customer id is a Redis Cluster hash tag, so every key a request
    # touches lives in one slot and one Lua script may use them all.
    return f"{KEY_PREFIX}:{{{customer_id}}}:{capability}:{kind}"


def counter_for(customer_id: str, limit: QuotaLimit, cost: int) -> Counter:
    key = counter_key(customer_id, limit.capability, limit.kind)
    if limit.kind == "concurrent_streams":
        return Counter(limit, key, "lease", 0, 1)
    return Counter(limit, key, "window", WINDOW_MS[limit.kind], cost)


def counters_for_admission(
    customer_id: str, plan: QuotaPlan, streaming: bool, tokens_wanted: int
) -> list[Counter]:
    """The counters ``admit`` checks and consumes.

    Stream slots bind only streaming requests; a plan may name the same limit
    twice (merged capabilities), in which case the lowest limit applies once.
    """
    chosen: dict[tuple[str, QuotaKind], QuotaLimit] = {}
    for limit in plan.limits:
        if limit.kind == "concurrent_streams" and not streaming:
            continue
        slot = (limit.capability, limit.kind)
        if slot not in chosen or limit.limit < chosen[slot].limit:
            chosen[slot] = limit
    counters = []
    for limit in chosen.values():
        cost = max(tokens_wanted, 0) if is_token_kind(limit.kind) else 1
        counters.append(counter_for(customer_id, limit, cost))
    return counters


def counters_for_usage(customer_id: str, plan: QuotaPlan) -> list[Counter]:
    """Every counter of the plan, for read-only usage reports (cost 0)."""
    seen: dict[tuple[str, QuotaKind], Counter] = {}
    for limit in plan.limits:
        slot = (limit.capability, limit.kind)
        if slot not in seen or limit.limit < seen[slot].limit.limit:
            seen[slot] = counter_for(customer_id, limit, 0)
    return list(seen.values())
