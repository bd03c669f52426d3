"""Slotted sliding windows: an entry leaves with the newest entry of its slot
(held up to one slot longer than an exact log would hold it, never shorter),
so nothing is ever granted beyond the limit in any window. Memory and Redis."""

from __future__ import annotations

import random
from collections.abc import Callable

from gateway.quota.meter import Meter
from gateway.stages import Usage
from tests.quota.conftest import FakeClock
from tests.quota.helpers import at, plan, used

RPM2 = plan(("default", "requests_per_minute", 2))


async def test_an_entry_leaves_with_the_newest_of_its_slot(
    make_meter: Callable[..., Meter], clock: FakeClock
) -> None:
    meter = make_meter()
    t0 = clock.now  # a whole second: the start of a 1 s slot
    assert (await meter.admit("c1", RPM2, False, 0, at(t0 + 0.1))).allowed
    assert (await meter.admit("c1", RPM2, False, 0, at(t0 + 0.9))).allowed
    # An exact log would free the first request at t0 + 60.1; its slot is held
    # until the newest entry in it (t0 + 0.9) leaves.
    held = await meter.admit("c1", RPM2, False, 0, at(t0 + 60.2))
    assert not held.allowed and held.retry_after_seconds == 1
    assert held.summary["refused_by"]["retry_after_ms"] == 700  # type: ignore[index]
    both = await meter.admit("c1", RPM2, False, 0, at(t0 + 60.9))
    assert both.allowed
    clock.now = t0 + 60.9
    assert used(await meter.usage("c1", RPM2), "default", "requests_per_minute") == 1


async def test_settle_releases_from_the_slot_of_the_admission(
    make_meter: Callable[..., Meter], clock: FakeClock
) -> None:
    tpm = plan(("default", "tokens_per_minute", 1000))
    meter = make_meter()
    t0 = clock.now
    first = await meter.admit("c1", tpm, False, 400, at(t0 + 0.2))
    second = await meter.admit("c1", tpm, False, 400, at(t0 + 0.7))  # same slot
    clock.now = t0 + 5
    await meter.settle(first, Usage(tokens_in=100))
    await meter.settle(second, None)
    assert used(await meter.usage("c1", tpm), "default", "tokens_per_minute") == 100
    clock.now = t0 + 60.69  # the slot's newest entry (t0 + 0.7) is still inside
    assert used(await meter.usage("c1", tpm), "default", "tokens_per_minute") == 100
    clock.now = t0 + 60.7
    assert used(await meter.usage("c1", tpm), "default", "tokens_per_minute") == 0


async def test_never_more_than_the_limit_in_any_window(
    make_meter: Callable[..., Meter], clock: FakeClock
) -> None:
    """Random traffic against an exact moving log: whatever the slots admit,
    the exact log would also have admitted (the slots may refuse earlier)."""
    limit = 1000
    tpm = plan(("default", "tokens_per_minute", limit))
    meter = make_meter()
    rng = random.Random(1234)
    exact: list[list[float]] = []  # [ts, amount] of every admitted reservation
    t = clock.now
    granted = refused_early = 0
    for _ in range(400):
        t += rng.choice((0.001, 0.05, 0.3, 0.8, 2.5, 9.0))
        cost = rng.randint(1, 250)
        admission = await meter.admit("c1", tpm, False, cost, at(t))
        live = sum(amount for ts, amount in exact if ts > t - 60)
        if admission.allowed:
            assert live + cost <= limit, (t, live, cost)
            granted += 1
            entry = [t, float(cost)]
            exact.append(entry)
            if rng.random() < 0.5:  # settle at once with real usage below the reservation
                real = rng.randint(0, cost)
                clock.now = t
                await meter.settle(admission, Usage(tokens_out=real))
                entry[1] = real
        elif live + cost <= limit:
            refused_early += 1
    assert granted > 100 and refused_early < granted  # the test really exercised both
