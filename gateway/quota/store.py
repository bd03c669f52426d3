"""The counter store behind the meter: one protocol, two implementations.

``MemoryStore`` (this process only) and ``RedisStore`` (shared by every
replica) run the same algorithm, so the same tests run against both:

* ``admit`` checks **every** counter first and consumes only when all of them
  accept: a refusal consumes nothing anywhere. In Redis this is one Lua
  script (atomic on the server); in memory it is one synchronous block with no
  ``await`` inside, which asyncio never interleaves.
* ``settle`` rewrites the request's token entries to the real usage.
* Leases are released by id, refreshed while the stream lives, and purged by
  expiry on every admit, so a crashed replica's slots come back by themselves.

All times are integer milliseconds since the epoch, from the caller's clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway.quota.buckets import Counter


class StoreDown(Exception):
    """The store cannot be reached (connection refused, timeout, reset)."""


@dataclass(frozen=True, slots=True)
class CounterState:
    """One counter as the store saw it."""

    used: int
    """Amount in the window (or leases held), including this request if admitted."""
    reset_ms: int
    """Until the window holds nothing (OpenAI's "reset"); 0 for an empty window or leases."""
    retry_ms: int
    """When refusing: until this counter would accept the request; -1 if it accepts."""


@dataclass(frozen=True, slots=True)
class AdmitResult:
    allowed: bool
    states: tuple[CounterState, ...]
    """One per counter, in the order given."""


@dataclass(frozen=True, slots=True)
class TokenSettlement:
    """Where a token reservation lives, so that settle can rewrite it."""

    key: str
    window_ms: int


class QuotaStore(Protocol):
    async def admit(
        self, counters: list[Counter], now_ms: int, entry_id: str, lease_expiry_ms: int
    ) -> AdmitResult: ...

    async def peek(self, counters: list[Counter], now_ms: int) -> tuple[CounterState, ...]:
        """Current use of each counter, consuming nothing."""
        ...

    async def settle_tokens(
        self,
        windows: list[TokenSettlement],
        entry_id: str,
        reserved: int,
        actual: int | None,
        now_ms: int,
    ) -> None:
        """Release ``reserved - actual`` from the entry, or charge the extra at ``now_ms``;
        ``actual=None`` releases it all."""
        ...

    async def refresh_leases(
        self, keys: list[str], lease_id: str, expiry_ms: int, now_ms: int
    ) -> bool:
        """Push the lease's expiry; False if it is gone (expired and purged)."""
        ...

    async def release_leases(self, keys: list[str], lease_id: str) -> None: ...

    async def ping(self) -> bool: ...

    async def aclose(self) -> None: ...


def entry_member(entry_id: str, amount: int) -> str:
    """The window entry's member name: its amount rides in the name so that
    purging an expired entry knows what to subtract without a second lookup."""
    return f"{entry_id}:{amount}"


def extra_entry_id(entry_id: str) -> str:
    """The entry that carries usage beyond the reservation, charged at settle time."""
    return f"{entry_id}+x"
