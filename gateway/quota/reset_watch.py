"""Noticing that the shared quota counters were lost.

A Redis restarted without persistence (a crashed cache node), flushed, or
evicting keys comes back with empty counters: every customer's window starts
again from zero, so a customer already at its limit is admitted again within
the same window. The gateway cannot restore the counts, but it must not let
that pass unseen: an auditor comparing the log with the policy's limits has
to be able to tell over-admission from a wrong limit.

Each process keeps a marker key in the store (no TTL) and checks it once a
``interval``: a marker it had seen that is gone means the counters went with
it. ``SET NX`` re-plants it atomically, so among replicas (and workers) only
the first to notice reports the reset, once. A reset while no gateway ran is
not seen (the first check of a process cannot tell it from a fresh store).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import Protocol

from prometheus_client import Counter as PromCounter

from gateway.ops.background import BackgroundTask, every
from gateway.quota.store import StoreDown

log = logging.getLogger(__name__)

MARKER_KEY = "gwq2:marker"
INTERVAL_S = 1.0

COUNTER_RESETS = PromCounter(
    "gateway_quota_counter_resets",
    "Times this process found the shared quota counters lost (Redis restarted empty, "
    "flushed or evicting)",
)


class MarkerStore(Protocol):
    async def plant_marker(self, key: str, value: str) -> bool:
        """``SET key value NX``: True if the key was absent (and is now set)."""
        ...


class CounterResetWatch:
    def __init__(self, store: MarkerStore, on_reset: Callable[[], Awaitable[None]],
                 interval: float = INTERVAL_S) -> None:  # fmt: skip
        self._store = store
        self._on_reset = on_reset
        self._interval = interval
        self._value = os.urandom(8).hex()  # which process planted it: for a human reading Redis
        self._seen = False
        self._task = BackgroundTask("quota-reset-watch")

    async def start(self) -> None:
        self._task.start(lambda: every(self._interval, self._look, log,
                                       "quota counter reset watch", first_at_once=True))

    async def stop(self) -> None:
        await self._task.stop()

    async def check(self) -> bool:
        """One look at the marker; True if it shows the counters were lost."""
        try:
            planted = await self._store.plant_marker(MARKER_KEY, self._value)
        except StoreDown:
            return False  # an outage: the admit path fails closed and counts it
        lost = planted and self._seen
        self._seen = True
        return lost

    async def _look(self) -> None:
        if await self.check():
            COUNTER_RESETS.inc()
            log.warning("the quota store lost its counters (Redis restarted without "
                        "persistence, was flushed or evicted keys): every quota window "
                        "starts again from zero now")  # fmt: skip
            await self._on_reset()
