"""Noticing that the shared quota counters were lost, and putting back our share.

A Redis restarted without persistence (a crashed cache node), flushed, or
evicting keys comes back with empty counters: every customer's window would
start again from zero, so a customer already at its limit would be admitted
again within the same window.

The store holds a *generation* marker (no TTL) and each process checks it
once an ``interval``: when it is gone, the first process to look plants a new
value; every process that remembers another value knows the counters went
with the old one. Each of them then adds back its own contributions
(``gateway.quota.ledger``), once per generation, so the counts are whole
again; only the process that planted the new generation reports the reset
(audit record), so replicas and workers report it once.

What stays lost: a reset while no gateway ran (the first check of a process
cannot tell it from a fresh store), the share of a process that died, what was
admitted in the interval before the reset was noticed (counted twice then: the
safe side), and entries dropped at the ledger's cap.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from prometheus_client import Counter as PromCounter

from gateway.ops.background import BackgroundTask, every
from gateway.quota.store import StoreDown

log = logging.getLogger(__name__)

MARKER_KEY = "gwq2:marker"
INTERVAL_S = 1.0
IN_CHECK: contextvars.ContextVar[bool] = contextvars.ContextVar("quota_in_check", default=False)
"""Set while the watch checks: the store's new-connection look must not wait on it."""

COUNTER_RESETS = PromCounter(
    "gateway_quota_counter_resets",
    "Times this process found the shared quota counters lost (Redis restarted empty, "
    "flushed or evicting)",
)
RESTORED_SLOTS = PromCounter(
    "gateway_quota_restored_slots",
    "Counter slots this process put back after the shared quota counters were lost",
)
PRUNE_EVERY = 10
"""Checks between two prunes of the ledger (closed windows dropped)."""
GRACE_MS = int(INTERVAL_S * 2500)
"""After a new generation, how long a process that found it holds its admits:
every live process looks within one ``INTERVAL_S`` (or at its first new
connection) and puts its share back, so until then a count is only partial."""


class MarkerStore(Protocol):
    async def generation(self, key: str, candidate: str) -> tuple[bool, str, int]:
        """The marker, planted from ``candidate`` if absent: (planted now, value, age ms)."""
        ...

    async def restore(self, marker: str, done_key: str, generation: str, now_ms: int) -> int:
        """Add this process's open slots back into ``generation``, once."""
        ...

    def forget_closed(self, now_ms: int) -> None: ...

    known_generation: str | None


class CounterResetWatch:
    def __init__(self, store: MarkerStore, on_reset: Callable[[], Awaitable[None]],
                 interval: float = INTERVAL_S,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self._store = store
        self._on_reset = on_reset
        self._interval = interval
        self._clock = clock
        self._process = os.urandom(8).hex()
        self._done_key = f"{MARKER_KEY}:restored:{self._process}"
        self._generation: str | None = None
        """The generation this process's contributions live in."""
        self._pending: str | None = None
        """A generation we must still restore into (the last attempt failed)."""
        self._checks = 0
        self._lock = asyncio.Lock()  # the loop and the store's new-connection check
        self._task = BackgroundTask("quota-reset-watch")

    async def start(self) -> None:
        self._task.start(lambda: every(self._interval, self._look, log,
                                       "quota counter reset watch", first_at_once=True))

    async def stop(self) -> None:
        await self._task.stop()

    async def check(self) -> bool:
        """One look at the marker; True if it shows the counters were lost (our
        share is then put back, or will be at the next look if the store failed)."""
        token = IN_CHECK.set(True)
        try:
            async with self._lock:
                return await self._check()
        finally:
            IN_CHECK.reset(token)

    async def _check(self) -> bool:
        now_ms = int(self._clock() * 1000)
        self._checks += 1
        if self._checks % PRUNE_EVERY == 0:
            self._store.forget_closed(now_ms)
        try:
            planted, value, age_ms = await self._store.generation(MARKER_KEY, os.urandom(8).hex())
        except StoreDown:
            return False  # an outage: the admit path fails closed and counts it
        lost = self._generation is not None and value != self._generation
        self._generation = self._store.known_generation = value
        if lost:
            self._pending = value
            COUNTER_RESETS.inc()
            log.warning("the quota store lost its counters (Redis restarted without "
                        "persistence, was flushed or evicted keys); each gateway puts "
                        "back what it admitted in the open windows")  # fmt: skip
        if self._pending is not None:
            await self._put_back(now_ms)
        if lost and planted:  # the first process to notice reports it, once
            await self._on_reset()
        if lost and age_ms < GRACE_MS:
            # The other processes' shares are not back until each has looked:
            # hold this one's admits (they wait on this check) until they have.
            await asyncio.sleep((GRACE_MS - age_ms) / 1000)
        return lost

    async def _put_back(self, now_ms: int) -> None:
        generation = self._pending
        assert generation is not None
        try:
            n = await self._store.restore(MARKER_KEY, self._done_key, generation, now_ms)
        except StoreDown as exc:
            # It may have run (a timeout): the "restored" key makes the retry a no-op then.
            log.error("could not put this process's quota counts back yet: %s", exc)
            return
        self._pending = None
        if n >= 0:
            RESTORED_SLOTS.inc(n)
            log.warning("put back %d quota counter slots this process had admitted", n)

    async def _look(self) -> None:
        await self.check()
