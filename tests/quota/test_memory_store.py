"""MemoryStore specifics: idle counters are swept so memory stays bounded."""

from __future__ import annotations

from gateway.quota import memory
from gateway.quota.buckets import counters_for_admission
from tests.quota.helpers import plan

P = plan(("default", "requests_per_minute", 5), ("default", "concurrent_streams", 2))


async def test_idle_customers_are_swept() -> None:
    store = memory.MemoryStore()
    t0 = 1_800_000_000_000
    for i in range(50):
        counters = counters_for_admission(f"c{i}", P, True, 0)
        assert (await store.admit(counters, t0, f"e{i}", t0 + 60_000)).allowed
    assert len(store._windows) == 50 and len(store._leases) == 50
    # Two minutes later, enough operations to trigger a sweep from one live customer.
    live = counters_for_admission("live", P, False, 0)
    later = t0 + 120_000
    for n in range(memory.SWEEP_EVERY):
        await store.admit(live, later + n * 60_000, f"x{n}", later)
    assert set(store._windows) == {live[0].key}
    assert store._leases == {}
