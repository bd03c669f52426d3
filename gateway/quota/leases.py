"""The quota meter's store calls outside admit and settle: what a stream's
slot needs to stay held, and how a failed store call is counted.

Stream leases expire after ``lease_ttl_seconds`` unless refreshed. The meter
refreshes its own leases from one heartbeat task per stream (cancelled by
``settle``), so the pipeline never has to; a crashed replica stops
refreshing and its slots come back within one TTL. A heartbeat gives up
after ``max_stream_seconds`` so a stream whose settle was never called
cannot hold a slot forever.

Separate from ``meter.py``, which keeps the per-request admit and settle:
this part runs for streams only, in a task of its own. ``StreamLeases`` is
``Meter``'s base class (not an object it calls through), so a request's
calls into it cost what they cost when they were ``Meter``'s own methods.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import Counter as PromCounter

from gateway.quota.buckets import PreparedPlan
from gateway.quota.store import QuotaStore, StoreDown
from gateway.stages import Admission

log = logging.getLogger("gateway.quota.meter")
"""The meter's logger, as before these methods left ``meter.py``."""

STORE_ERRORS = PromCounter(
    "gateway_quota_store_errors",
    "Quota store calls that failed (store unreachable or timed out), by operation",
    ["operation"],
)


@dataclass(slots=True)
class Reservation:
    """``Admission.lease``: what settle must undo or adjust."""

    customer_id: str
    lease_id: str
    """The stream lease's id; empty when the request holds no stream slot."""
    plan: PreparedPlan
    admitted_ms: int
    """When the reservation was taken: settle finds its slot from it."""
    reserved_tokens: int
    settled: bool = False
    heartbeat: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def lease_keys(self) -> tuple[str, ...]:
        return self.plan.lease_keys if self.lease_id else ()


class StreamLeases:
    """Lease refresh and heartbeats, and store failure accounting, for ``Meter``
    (which sets these attributes in its ``__init__``)."""

    store: QuotaStore
    lease_ttl_ms: int
    max_stream_seconds: float
    clock: Callable[[], float]
    store_failures: int

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _store_failed(self, operation: str, exc: StoreDown) -> None:
        self.store_failures += 1
        STORE_ERRORS.labels(operation).inc()
        log.error("quota store %s failed: %s", operation, exc)

    async def refresh(self, admission: Admission) -> bool:
        """Extend the stream lease by one TTL; False if it was lost (expired)."""
        reservation = admission.lease
        if not isinstance(reservation, Reservation) or not reservation.lease_keys:
            return False
        return await self._refresh(reservation) is True

    async def _refresh(self, reservation: Reservation) -> bool | None:
        """True: extended; False: the lease is gone; None: the store did not answer."""
        if reservation.settled:
            return False
        now_ms = self._now_ms()
        try:
            return await self.store.refresh_leases(
                reservation.lease_keys, reservation.lease_id, now_ms + self.lease_ttl_ms, now_ms
            )
        except StoreDown as exc:
            self._store_failed("refresh", exc)
            return None

    async def _heartbeat(self, reservation: Reservation) -> None:
        interval = self.lease_ttl_ms / 3000
        deadline = time.monotonic() + self.max_stream_seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(interval)
            alive = await self._refresh(reservation)
            if alive is False:
                # Expired and purged (e.g. Redis restarted empty, or the loop was
                # blocked past the TTL): the slot may already be someone else's.
                log.warning(
                    "stream lease %s of %s lost; the stream goes on without a slot",
                    reservation.lease_id,
                    reservation.customer_id,
                )
                return
        log.warning(
            "stream lease %s not settled after %ss; letting it expire",
            reservation.lease_id,
            self.max_stream_seconds,
        )
