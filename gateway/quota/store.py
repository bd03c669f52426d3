"""The counter store behind the meter: one protocol, two implementations.

``MemoryStore`` (this process only) and ``RedisStore`` (shared by every
replica) run the same algorithm, so the same tests run against both:

* ``admit`` checks **every** counter first and consumes only when all of them
  accept: a refusal consumes nothing anywhere. In Redis this is one Lua
  script (atomic on the server); in memory it is one synchronous block with no
  ``await`` inside, which asyncio never interleaves.
* ``settle`` takes the unused part of the reservation back out of the slot it
  was admitted into (or charges the extra at settle time) and releases the
  stream lease: one call, one Redis round trip.
* Leases are released by id, refreshed while the stream lives, and purged by
  expiry on every admit, so a crashed replica's slots come back by themselves.

All times are integer milliseconds since the epoch, from the caller's clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

from gateway.quota.buckets import PreparedPlan


class StoreDown(Exception):
    """The store cannot be reached (connection refused, timeout, reset)."""


class CounterState(NamedTuple):
    """One counter as the store saw it (a tuple: cheap to build per request)."""

    used: int
    """Amount in the window (or leases held), including this request if admitted."""
    reset_ms: int
    """Until the window holds nothing (OpenAI's "reset"); 0 for an empty window or leases."""
    retry_ms: int
    """When refusing: until this counter would accept the request; -1 if it accepts."""


class AdmitResult(NamedTuple):
    allowed: bool
    states: Sequence[CounterState]
    """One per counter of the plan, in its order."""


class QuotaStore(Protocol):
    async def admit(
        self,
        plan: PreparedPlan,
        tokens: int,
        now_ms: int,
        lease_id: str,
        lease_expiry_ms: int,
        requests: int = 1,
    ) -> AdmitResult:
        """Check every counter; consume all (``tokens`` in token windows,
        ``requests`` (1 but for a Message Batch) in request windows, lease
        ``lease_id`` in lease sets) only if all accept."""
        ...

    async def peek(self, plan: PreparedPlan, now_ms: int) -> Sequence[CounterState]:
        """Current use of each counter, consuming nothing."""
        ...

    async def settle(
        self,
        plan: PreparedPlan,
        admitted_ms: int,
        reserved: int,
        actual: int | None,
        lease_id: str,
        now_ms: int,
    ) -> None:
        """Release ``reserved - actual`` from the slot the reservation was admitted
        into (``actual=None`` releases it all), or charge the extra at ``now_ms``;
        release lease ``lease_id`` (if not empty) from every lease set."""
        ...

    async def refresh_leases(
        self, keys: Sequence[str], lease_id: str, expiry_ms: int, now_ms: int
    ) -> bool:
        """Push the lease's expiry; False if it is gone (expired and purged)."""
        ...

    async def ping(self) -> bool: ...

    async def aclose(self) -> None: ...
