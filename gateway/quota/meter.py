"""The meter and settle stages: ``QuotaMeter`` over a memory or Redis store.

``admit`` turns the plan into counters, asks the store to check and consume
all of them atomically (a refusal consumes nothing anywhere), and returns an
``Admission`` carrying headers, the audit summary and a ``Reservation`` (the
token reservation and the stream lease). ``settle`` takes back the unused part
of the reservation and releases the stream slot; it is idempotent, so the
pipeline may call it from a ``finally`` without bookkeeping.

This is on every request's path, so the per-request work is kept small: the
counters, keys and script arguments of a (customer, plan, streaming) are
derived once and cached (``PreparedPlan``); a lease id is made only for
streams, from a per-process random prefix and a counter; the headers and the
summary are built in one pass; settle skips the store when there is nothing
to change.

Stream leases and their heartbeats, and the accounting of failed store
calls, are in ``leases.py`` (``StreamLeases``, this meter's base class).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import time
from collections.abc import Callable
from datetime import datetime

from prometheus_client import Counter as PromCounter

from gateway.policy.decision import QuotaPlan
from gateway.quota.buckets import PreparedPlan, counters_for_usage, prepare
from gateway.quota.headers import headers_and_summary, limit_dict
from gateway.quota.leases import Reservation, StreamLeases
from gateway.quota.memory import MemoryStore
from gateway.quota.store import QuotaStore, StoreDown
from gateway.settings import Settings
from gateway.stages import Admission, QuotaStoreUnavailable, Usage

MAX_TOKENS = 10**12
"""Token amounts are clamped here: far above any real limit, and well inside
the integers Lua's doubles and Redis' INCRBY handle exactly."""

PLAN_CACHE_SIZE = 8192
"""Cached (customer, plan, streaming) entries; the cache is emptied when full
(a plan changes only with the policy, so it refills with what is in use)."""

FAIL_OPEN_ADMISSIONS = PromCounter(
    "gateway_quota_fail_open_admissions",
    "Requests admitted without a quota check because the store was down and the tier fails open",
)


class Meter(StreamLeases):
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
        self._plans: dict[tuple[object, ...], tuple[object, PreparedPlan]] = {}
        # Lease ids must be unique across replicas sharing one Redis: a random
        # per-process prefix, then a counter (uuid4 per request costs more).
        self._lease_prefix = os.urandom(8).hex() + "-"
        self._lease_seq = itertools.count(1)

    def _prepared(self, customer_id: str, plan: QuotaPlan, streaming: bool) -> PreparedPlan:
        # The policy engine builds a new QuotaPlan per request, and hashing it
        # (a dataclass of dataclasses) costs microseconds; its QuotaLimit objects
        # are the compiled bundle's own, so their ids make a cheap key. The entry
        # keeps the limits alive, so an id cannot be reused while it is cached.
        key = (customer_id, streaming, *map(id, plan.limits))
        entry = self._plans.get(key)
        if entry is None:
            if len(self._plans) >= PLAN_CACHE_SIZE:
                self._plans.clear()
            entry = self._plans[key] = (plan.limits, prepare(customer_id, plan, streaming))
        return entry[1]

    async def admit(
        self,
        customer_id: str,
        plan: QuotaPlan,
        streaming: bool,
        tokens_wanted: int,
        now: datetime,
        requests: int = 1,
    ) -> Admission:
        tokens = min(max(tokens_wanted, 0), MAX_TOKENS)
        prepared = self._prepared(customer_id, plan, streaming)
        if not prepared.counters:  # the tier meters nothing this request touches
            return Admission(allowed=True, summary={"buckets": [], "refused_by": None})
        now_ms = int(now.timestamp() * 1000)
        lease_id = f"{self._lease_prefix}{next(self._lease_seq)}" if prepared.lease_keys else ""
        try:
            result = await self.store.admit(
                prepared, tokens, now_ms, lease_id, now_ms + self.lease_ttl_ms, requests
            )
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
        states = result.states
        resets: dict[str, int] = {}
        if not result.allowed:
            # The request passes only when every refusing counter would accept it.
            refused = max(
                (i for i, s in enumerate(states) if s.retry_ms >= 0),
                key=lambda i: states[i].retry_ms,
            )
            headers, summary = headers_and_summary(
                prepared,
                states,
                tokens=tokens,
                reserved_tokens=0,
                refused=refused,
                streaming=streaming,
                resets=resets,
            )
            return Admission(
                allowed=False,
                refused_by=prepared.counters[refused].limit,
                retry_after_seconds=max(1, -(-states[refused].retry_ms // 1000)),
                headers=headers,
                summary=summary,
                resets_ms=resets,
                at_ms=now_ms,
            )
        reserved = tokens if prepared.token_windows else 0
        headers, summary = headers_and_summary(
            prepared,
            states,
            tokens=tokens,
            reserved_tokens=reserved,
            refused=None,
            streaming=streaming,
            resets=resets,
        )
        reservation = Reservation(customer_id, lease_id, prepared, now_ms, reserved)
        if lease_id:  # only streams hold a slot, so only they get a heartbeat task
            task = asyncio.create_task(self._heartbeat(reservation), name=f"quota-lease-{lease_id}")
            reservation.heartbeat = task
            self._heartbeats.add(task)
            task.add_done_callback(self._heartbeats.discard)
        return Admission(
            allowed=True,
            headers=headers,
            summary=summary,
            resets_ms=resets,
            at_ms=now_ms,
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
        actual = usage.total if usage is not None else None
        if actual is not None:
            actual = min(max(actual, 0), MAX_TOKENS)
        reserved = reservation.reserved_tokens
        # Nothing to change: no stream slot, and the reservation was exact (or
        # there is no token window to settle). Skip the store entirely.
        tokens_change = bool(reservation.plan.token_windows) and (actual or 0) != reserved
        if not tokens_change and not reservation.lease_id:
            return
        try:
            await self.store.settle(
                reservation.plan,
                reservation.admitted_ms,
                reserved,
                actual,
                reservation.lease_id,
                self._now_ms(),
            )
        except StoreDown as exc:
            # The response has been sent; raising would only hide the pipeline's own
            # outcome. The reservation stays counted until its window passes and the
            # lease expires within one TTL: over-counting, never under-counting.
            self._store_failed("settle", exc)

    async def charge(self, customer_id: str, plan: QuotaPlan, tokens: int) -> None:
        # A settle of a zero reservation to ``tokens``: the store adds the
        # difference at ``now`` in every token window, past the limit if it
        # must (an overdraft, as a settle above its reservation is).
        prepared = self._prepared(customer_id, plan, False)
        tokens = min(tokens, MAX_TOKENS)
        if tokens <= 0 or not prepared.token_windows:
            return
        now_ms = self._now_ms()
        try:
            await self.store.settle(prepared, now_ms, 0, tokens, "", now_ms)
        except StoreDown as exc:
            self._store_failed("charge", exc)
            raise QuotaStoreUnavailable(f"quota store unavailable: {exc}") from exc

    async def usage(self, customer_id: str, plan: QuotaPlan) -> dict[str, object]:
        """Current use of every bucket of the plan (admin API)."""
        prepared = counters_for_usage(customer_id, plan)
        try:
            states = await self.store.peek(prepared, self._now_ms())
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
                for c, s in zip(prepared.counters, states, strict=True)
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
