"""From a ``QuotaPlan`` to the concrete counters one request touches.

A *bucket* is ``(customer, capability)``; each of its limits is one counter:

* ``requests_per_*`` and ``tokens_per_*`` are **sliding windows kept in
  slots**: the window is cut into slots (1 s for a minute window, 1 min for a
  day window), each holding the amount admitted in it and the timestamp of its
  newest entry. A slot counts while that newest timestamp is inside the window,
  so every entry is counted at least as long as an exact moving log would count
  it (never less): the granted amount never exceeds the limit in any window.
  A request costs 1; a token reservation costs the tokens reserved.
* ``concurrent_streams`` is a set of **leases** scored by their expiry; only
  streaming requests take one.

Both stores (memory and Redis) receive the same ``Counter`` objects and apply
the same algorithm; this module is the only place that knows the key layout.
What a (customer, plan, streaming) needs is derived once and cached
(``PreparedPlan``), since the same customer sends the same shape of request
over and over.
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

SLOT_MS: dict[int, int] = {60_000: 1_000, 86_400_000: 60_000}
"""Slot width per window: 60 slots per minute window, 1440 per day window. An
entry may be held up to one slot width longer than its exact expiry (never
shorter), which bounds both the memory per counter and the over-hold."""

CounterType = Literal["requests", "tokens", "lease"]
KEY_PREFIX = "gwq2"
"""``2``: the slotted layout. Keys of the earlier per-request log (``gwq:``) are
never read, so replicas of both versions cannot corrupt each other's counters."""

# Short codes the Lua script receives for each counter type.
TYPE_CODE: dict[CounterType, str] = {"requests": "r", "tokens": "t", "lease": "l"}


def is_token_kind(kind: QuotaKind) -> bool:
    return kind in ("tokens_per_minute", "tokens_per_day")


def is_request_kind(kind: QuotaKind) -> bool:
    return kind in ("requests_per_minute", "requests_per_day")


@dataclass(frozen=True, slots=True)
class Counter:
    """One limit of one bucket. A ``tokens`` counter costs the tokens reserved,
    the others cost 1."""

    limit: QuotaLimit
    key: str
    type: CounterType
    window_ms: int
    """Window length for window counters; 0 for leases."""
    slot_ms: int
    """Slot width for window counters; 0 for leases."""

    @property
    def is_window(self) -> bool:
        return self.type != "lease"


@dataclass(frozen=True, slots=True)
class PreparedPlan:
    """Everything per-request work needs that depends only on (customer, plan,
    streaming): built once, then reused from the meter's cache."""

    counters: tuple[Counter, ...]
    token_windows: tuple[Counter, ...]
    """The counters a token reservation lives in, for settle."""
    lease_keys: tuple[str, ...]
    keys: tuple[str, ...]
    """Redis keys, two per counter (slots zset, amounts hash), in counter order."""
    spec: tuple[str | int, ...]
    """Static Lua arguments, four per counter: type code, limit, window, slot."""
    settle_keys: tuple[str, ...]
    """Redis keys of the token windows, then the lease sets (settle script)."""
    settle_spec: tuple[int, ...]
    """Window and slot width of each token window (settle script)."""
    request_order: tuple[int, ...]
    """Indices of the request windows, longest window first (header tie-break)."""
    token_order: tuple[int, ...]
    """Indices of the token windows, longest window first."""


def counter_key(customer_id: str, capability: str, kind: QuotaKind) -> str:
    # The customer id is a Redis Cluster hash tag, so every key a request
    # touches lives in one slot and one Lua script may use them all.
    return f"{KEY_PREFIX}:{{{customer_id}}}:{capability}:{kind}"


def amounts_key(key: str) -> str:
    """The hash beside a window's slot set: amount per slot, and ``total``."""
    return f"{key}:a"


def counter_for(customer_id: str, limit: QuotaLimit) -> Counter:
    key = counter_key(customer_id, limit.capability, limit.kind)
    if limit.kind == "concurrent_streams":
        return Counter(limit, key, "lease", 0, 0)
    window = WINDOW_MS[limit.kind]
    kind: CounterType = "tokens" if is_token_kind(limit.kind) else "requests"
    return Counter(limit, key, kind, window, SLOT_MS[window])


def _lowest(limits: tuple[QuotaLimit, ...], streaming: bool) -> list[QuotaLimit]:
    """A plan may name the same limit twice (merged capabilities): the lowest
    applies, once. Stream slots bind only streaming requests."""
    chosen: dict[tuple[str, QuotaKind], QuotaLimit] = {}
    for limit in limits:
        if limit.kind == "concurrent_streams" and not streaming:
            continue
        slot = (limit.capability, limit.kind)
        if slot not in chosen or limit.limit < chosen[slot].limit:
            chosen[slot] = limit
    return list(chosen.values())


def prepare(customer_id: str, plan: QuotaPlan, streaming: bool) -> PreparedPlan:
    """The counters ``admit`` checks and consumes, and what settle needs."""
    counters = tuple(counter_for(customer_id, lim) for lim in _lowest(plan.limits, streaming))
    token_windows = tuple(c for c in counters if c.type == "tokens")
    lease_keys = tuple(c.key for c in counters if c.type == "lease")
    keys: list[str] = []
    spec: list[str | int] = []
    for c in counters:
        keys += (c.key, amounts_key(c.key))
        spec += (TYPE_CODE[c.type], c.limit.limit, c.window_ms, c.slot_ms)
    settle_keys: list[str] = []
    settle_spec: list[int] = []
    for c in token_windows:
        settle_keys += (c.key, amounts_key(c.key))
        settle_spec += (c.window_ms, c.slot_ms)

    def order(kind: CounterType) -> tuple[int, ...]:
        found = [i for i, c in enumerate(counters) if c.type == kind]
        return tuple(sorted(found, key=lambda i: -counters[i].window_ms))

    return PreparedPlan(
        counters,
        token_windows,
        lease_keys,
        tuple(keys),
        tuple(spec),
        tuple(settle_keys) + lease_keys,
        tuple(settle_spec),
        order("requests"),
        order("tokens"),
    )


def counters_for_usage(customer_id: str, plan: QuotaPlan) -> PreparedPlan:
    """Every counter of the plan (stream slots included), for read-only reports."""
    return prepare(customer_id, plan, streaming=True)
