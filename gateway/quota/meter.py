"""The meter and settle stages: ``QuotaMeter`` over a memory or Redis store.

``admit`` turns the plan into counters, asks the store to check and consume
all of them atomically (a refusal consumes nothing anywhere), and returns an
``Admission`` carrying headers, the audit summary and a ``Reservation`` (the
token entries and the stream lease). ``settle`` rewrites the token
reservation to real usage and releases the stream slot; it is idempotent, so
the pipeline may call it from a ``finally`` without bookkeeping.

Stream leases expire after ``lease_ttl_seconds`` unless refreshed. The meter
refreshes its own leases from one heartbeat task per stream (cancelled by
``settle``), so the pipeline never has to; a crashed replica stops
refreshing and its slots come back within one TTL. A heartbeat gives up
after ``max_stream_seconds`` so a stream whose settle was never called
cannot hold a slot forever.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import Counter as PromCounter

from gateway.policy.decision import QuotaPlan
from gateway.quota.buckets import counters_for_admission, counters_for_usage
from gateway.quota.headers import limit_dict, ratelimit_headers, summary
from gateway.quota.memory import MemoryStore
from gateway.quota.store import QuotaStore, StoreDown, TokenSettlement
from gateway.settings import Settings
from gateway.stages import Admission, QuotaStoreUnavailable, Usage

log = logging.getLogger(__name__)

MAX_TOKENS = 10**12
"""Token amounts are clamped here: far above any real limit, and well inside
the integers Lua's doubles and Redis' INCRBY handle exactly."""

STORE_ERRORS = PromCounter(
    "gateway_quota_store_errors",
    "Quota store calls that failed (store unreachable or timed out), by operation",
    ["operation"],
)
FAIL_OPEN_ADMISSIONS = PromCounter(
    "gateway_quota_fail_open_admissions",
    "Requests admitted without a quota check because the store was down and the tier fails open",
)


@dataclass(slots=True)
class Reservation:
    """``Admission.lease``: what settle must undo or adjust."""

    customer_id: str
    entry_id: str
    token_windows: list[TokenSettlement]
    reserved_tokens: int
    lease_keys: list[str]
    settled: bool = False
    heartbeat: asyncio.Task[None] | None = field(default=None, repr=False)


def _ms(now: datetime) -> int:
    return int(now.timestamp() * 1000)


class Meter:
    """``gateway.stages.QuotaMeter`` implementation."""

    def __init__(
        self,
        store: QuotaStore,
        *,
        lease_ttl_seconds: float = 60.0,
        max_stream_seconds: float = 4 * 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.lease_ttl_ms = int(lease_ttl_seconds * 1000)
        self.max_stream_seconds = max_stream_seconds
        self.clock = clock
        """Seconds since the epoch, for settle and heartbeats (admit gets ``now``)."""
        self.store_failures = 0
        """Failed store calls in this process (also ``gateway_quota_store_errors_total``)."""
        self._heartbeats: set[asyncio.Task[None]] = set()

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _store_failed(self, operation: str, exc: StoreDown) -> None:
        self.store_failures += 1
        STORE_ERRORS.labels(operation).inc()
        log.error("quota store %s failed: %s", operation, exc)

    async def admit(
        self, customer_id: str, plan: QuotaPlan, streaming: bool, tokens_wanted: int, now: datetime
    ) -> Admission:
        tokens_wanted = min(max(tokens_wanted, 0), MAX_TOKENS)
        counters = counters_for_admission(customer_id, plan, streaming, tokens_wanted)
        if not counters:  # the tier meters nothing this request touches
            return Admission(allowed=True, summary={"buckets": [], "refused_by": None})
        now_ms = _ms(now)
        entry_id = uuid.uuid4().hex
        try:
            result = await self.store.admit(counters, now_ms, entry_id, now_ms + self.lease_ttl_ms)
        except StoreDown as exc:
            self._store_failed("admit", exc)
            if not plan.fail_open:
                raise QuotaStoreUnavailable(f"quota store unavailable: {exc}") from exc
            FAIL_OPEN_ADMISSIONS.inc()
            return Admission(
                allowed=True,
                fail_open=True,
                summary={"fail_open": True, "store_error": str(exc), "buckets": []},
            )
        token_windows = [
            TokenSettlement(c.key, c.window_ms)
            for c in counters
            if c.type == "window" and c.limit.kind.startswith("tokens_")
        ]
        reserved = tokens_wanted if token_windows else 0
        headers = ratelimit_headers(counters, result.states)
        if not result.allowed:
            refusing = [
                (c, s) for c, s in zip(counters, result.states, strict=True) if s.retry_ms >= 0
            ]
            # The request passes only when every refusing counter would accept it.
            counter, state = max(refusing, key=lambda p: p[1].retry_ms)
            return Admission(
                allowed=False,
                refused_by=counter.limit,
                retry_after_seconds=max(1, math.ceil(state.retry_ms / 1000)),
                headers=headers,
                summary=summary(
                    counters,
                    result.states,
                    reserved_tokens=0,
                    refused=(counter, state),
                    streaming=streaming,
                ),
            )
        lease_keys = [c.key for c in counters if c.type == "lease"]
        reservation = Reservation(customer_id, entry_id, token_windows, reserved, lease_keys)
        if lease_keys:
            reservation.heartbeat = asyncio.create_task(
                self._heartbeat(reservation), name=f"quota-lease-{entry_id}"
            )
            self._heartbeats.add(reservation.heartbeat)
            reservation.heartbeat.add_done_callback(self._heartbeats.discard)
        return Admission(
            allowed=True,
            headers=headers,
            summary=summary(
                counters,
                result.states,
                reserved_tokens=reserved,
                refused=None,
                streaming=streaming,
            ),
            reserved_tokens=reserved,
            lease=reservation,
        )

    async def settle(self, admission: Admission, usage: Usage | None) -> None:
        reservation = admission.lease
        if not isinstance(reservation, Reservation) or reservation.settled:
            return
        reservation.settled = True
        if reservation.heartbeat is not None:
            reservation.heartbeat.cancel()
        now_ms = self._now_ms()
        actual = usage.total if usage is not None else None
        if actual is not None:
            actual = min(max(actual, 0), MAX_TOKENS)
        try:
            if reservation.token_windows:
                await self.store.settle_tokens(
                    reservation.token_windows,
                    reservation.entry_id,
                    reservation.reserved_tokens,
                    actual,
                    now_ms,
                )
            if reservation.lease_keys:
                await self.store.release_leases(reservation.lease_keys, reservation.entry_id)
        except StoreDown as exc:
            # The response has been sent; raising would only hide the pipeline's own
            # outcome. The reservation stays counted until its window passes and the
            # lease expires within one TTL: over-counting, never under-counting.
            self._store_failed("settle", exc)

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
                reservation.lease_keys, reservation.entry_id, now_ms + self.lease_ttl_ms, now_ms
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
                    reservation.entry_id,
                    reservation.customer_id,
                )
                return
        log.warning(
            "stream lease %s not settled after %ss; letting it expire",
            reservation.entry_id,
            self.max_stream_seconds,
        )

    async def usage(self, customer_id: str, plan: QuotaPlan) -> dict[str, object]:
        """Current use of every bucket of the plan (admin API)."""
        counters = counters_for_usage(customer_id, plan)
        try:
            states = await self.store.peek(counters, self._now_ms())
        except StoreDown as exc:
            self._store_failed("usage", exc)
            raise QuotaStoreUnavailable(f"quota store unavailable: {exc}") from exc
        return {
            "customer_id": customer_id,
            "tier": plan.tier,
            "buckets": [
                {
                    **limit_dict(c.limit),
                    "used": s.used,
                    "remaining": max(c.limit.limit - s.used, 0),
                    "reset_seconds": math.ceil(s.reset_ms / 1000),
                    "window_seconds": c.window_ms // 1000 or None,
                }
                for c, s in zip(counters, states, strict=True)
            ],
        }

    async def ping(self) -> bool:
        return await self.store.ping()

    async def aclose(self) -> None:
        for task in list(self._heartbeats):
            task.cancel()
        await asyncio.gather(*self._heartbeats, return_exceptions=True)
        await self.store.aclose()


def build_meter(settings: Settings) -> Meter:
    """Redis when ``GATEWAY_REDIS_URL`` is set (shared by replicas), else in-process."""
    if settings.redis_url:
        from gateway.quota.redis_store import RedisStore

        return Meter(RedisStore(settings.redis_url))
    return Meter(MemoryStore())
