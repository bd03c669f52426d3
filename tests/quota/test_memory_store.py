"""MemoryStore specifics: idle counters are swept so memory stays bounded, and a
busy window holds one slot per second (per minute for a day), not one entry
per request."""

from __future__ import annotations

from gateway.quota import memory
from gateway.quota.buckets import prepare
from tests.quota.helpers import plan

P = plan(("default", "requests_per_minute", 5), ("default", "concurrent_streams", 2))


async def test_idle_customers_are_swept() -> None:
    store = memory.MemoryStore()
    t0 = 1_800_000_000_000
    for i in range(50):
        prepared = prepare(f"c{i}", P, True)
        assert (await store.admit(prepared, 0, t0, f"e{i}", t0 + 60_000)).allowed
    assert len(store._windows) == 50 and len(store._leases) == 50
    # Two minutes later, enough operations to trigger a sweep from one live customer.
    live = prepare("live", P, False)
    later = t0 + 120_000
    for n in range(memory.SWEEP_EVERY):
        await store.admit(live, 0, later + n * 60_000, "", later)
    assert set(store._windows) == {live.counters[0].key}
    assert store._leases == {}


async def test_a_busy_window_holds_one_slot_per_slot_width() -> None:
    busy = plan(("default", "requests_per_minute", 10**9), ("default", "tokens_per_day", 10**12))
    prepared = prepare("c1", busy, False)
    store = memory.MemoryStore()
    t0 = 1_800_000_000_000
    for n in range(3 * 60 * 100):  # 100 requests a second for three minutes
        assert (await store.admit(prepared, 10, t0 + n * 10, "", 0)).allowed
    minute, day = (store._windows[c.key] for c in prepared.counters)
    assert len(minute.slots) == 60 and minute.total == 60 * 100
    assert len(day.slots) == 3 and day.total == 3 * 60 * 100 * 10
