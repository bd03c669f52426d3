"""Concurrent-stream leases: taken by streaming requests only, released on
settle, refreshed by a heartbeat, and reclaimed by expiry after a crash."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gateway.policy.decision import QuotaLimit
from gateway.quota.meter import Meter
from tests.quota.conftest import FakeClock
from tests.quota.helpers import at, plan, used

STREAMS = plan(("agentic", "concurrent_streams", 2))


async def test_slots_are_released_on_settle(
    make_meter: Callable[..., Meter], clock: FakeClock
) -> None:
    meter = make_meter()
    now = at(clock.now)
    first = await meter.admit("c1", STREAMS, True, 0, now)
    second = await meter.admit("c1", STREAMS, True, 0, now)
    assert first.allowed and second.allowed
    third = await meter.admit("c1", STREAMS, True, 0, now)
    assert third.refused_by == QuotaLimit("agentic", "concurrent_streams", 2)
    assert third.retry_after_seconds == 1
    # A non-streaming request does not take a slot.
    assert (await meter.admit("c1", STREAMS, False, 0, now)).allowed
    await meter.settle(first, None)  # e.g. client disconnected: the pipeline's finally
    assert used(await meter.usage("c1", STREAMS), "agentic", "concurrent_streams") == 1
    assert (await meter.admit("c1", STREAMS, True, 0, now)).allowed
    await meter.settle(first, None)  # twice: still one release only
    assert not (await meter.admit("c1", STREAMS, True, 0, now)).allowed


async def test_a_crashed_replicas_leases_expire(
    make_meter: Callable[..., Meter], clock: FakeClock
) -> None:
    crashed = make_meter(lease_ttl_seconds=60)
    survivor = make_meter(lease_ttl_seconds=60)
    t0 = clock.now
    for _ in range(2):
        assert (await crashed.admit("c1", STREAMS, True, 0, at(t0))).allowed
    for task in list(crashed._heartbeats):  # the replica dies: no more heartbeats
        task.cancel()
    assert not (await survivor.admit("c1", STREAMS, True, 0, at(t0 + 59))).allowed
    assert (await survivor.admit("c1", STREAMS, True, 0, at(t0 + 60))).allowed
    clock.now = t0 + 60
    assert used(await survivor.usage("c1", STREAMS), "agentic", "concurrent_streams") == 1


async def test_refresh_keeps_a_long_stream_alive(
    make_meter: Callable[..., Meter], clock: FakeClock
) -> None:
    meter = make_meter(lease_ttl_seconds=60)
    t0 = clock.now
    one = plan(("agentic", "concurrent_streams", 1))
    long_stream = await meter.admit("c1", one, True, 0, at(t0))
    for task in list(meter._heartbeats):
        task.cancel()
    clock.now = t0 + 50
    assert await meter.refresh(long_stream)  # now held until t0 + 110
    assert not (await meter.admit("c1", one, True, 0, at(t0 + 100))).allowed
    assert (await meter.admit("c1", one, True, 0, at(t0 + 110))).allowed
    # The first lease expired and was purged: refreshing cannot revive it.
    clock.now = t0 + 111
    assert not await meter.refresh(long_stream)


async def test_the_heartbeat_refreshes_by_itself(
    make_meter: Callable[..., Meter], clock: FakeClock
) -> None:
    meter = make_meter(lease_ttl_seconds=0.3)  # heartbeat every 0.1 s
    one = plan(("agentic", "concurrent_streams", 1))
    t0 = clock.now
    stream = await meter.admit("c1", one, True, 0, at(t0))
    clock.now = t0 + 0.2
    await asyncio.sleep(0.35)  # a few heartbeats: lease now ends at t0 + 0.5
    assert not (await meter.admit("c1", one, True, 0, at(t0 + 0.45))).allowed
    await meter.settle(stream, None)
    await asyncio.sleep(0.01)  # let the cancelled heartbeat finish and unregister
    assert not meter._heartbeats
    assert (await meter.admit("c1", one, True, 0, at(t0 + 0.45))).allowed
