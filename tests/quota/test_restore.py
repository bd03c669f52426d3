"""Redis lost the counters: each process puts back what it admitted itself.

Real redis-server; two ``Meter``s over two ``RedisStore``s stand for two
gateway processes (each keeps its own contributions), each with its own
``CounterResetWatch``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.quota.meter import Meter
from gateway.quota.redis_store import RedisStore
from gateway.quota.reset_watch import CounterResetWatch
from gateway.stages import Usage
from tests.quota.conftest import FakeClock
from tests.quota.helpers import at, plan, used
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.redis
DAY = plan(("default", "requests_per_minute", 100), ("default", "tokens_per_day", 1000))


class Process:
    """One gateway process: its meter, store and reset watch."""

    def __init__(self, url: str, clock: FakeClock) -> None:
        self.store = RedisStore(url)
        self.meter = Meter(self.store, clock=clock)
        self.resets = 0
        self.watch = CounterResetWatch(self.store, self._on_reset, clock=clock)
        self.store.check_generation = self.watch.check  # as the app wires it

    async def _on_reset(self) -> None:
        self.resets += 1


@pytest.fixture
async def processes(
    redis_server: RedisServer, clock: FakeClock
) -> AsyncIterator[tuple[Process, Process]]:
    pair = (Process(redis_server.url, clock), Process(redis_server.url, clock))
    for p in pair:
        assert not await p.watch.check()  # the first look cannot tell a reset
    yield pair
    for p in pair:
        await p.meter.aclose()


async def _spend(p: Process, clock: FakeClock, reserve: int, actual: int) -> None:
    admission = await p.meter.admit("c1", DAY, False, reserve, at(clock.now))
    assert admission.allowed
    await p.meter.settle(admission, Usage(tokens_in=actual))


async def test_each_process_restores_its_own_share_once(
    processes: tuple[Process, Process], redis_server: RedisServer, clock: FakeClock
) -> None:
    a, b = processes
    await _spend(a, clock, 300, 200)  # settled below the reservation
    clock.advance(120)
    await _spend(b, clock, 100, 250)  # settled above it: the extra is charged
    await _spend(a, clock, 400, 400)
    clock.advance(5)
    report = await a.meter.usage("c1", DAY)
    assert used(report, "default", "tokens_per_day") == 850
    assert used(report, "default", "requests_per_minute") == 2

    await a.store._redis.flushall()  # no reconnect: found by the watch's looks
    assert await a.watch.check() and await b.watch.check()
    assert not await a.watch.check() and not await b.watch.check()  # once per reset
    report = await b.meter.usage("c1", DAY)
    assert used(report, "default", "tokens_per_day") == 850
    assert used(report, "default", "requests_per_minute") == 2
    # Only the first to notice writes the audit record; every one restores.
    assert a.resets + b.resets == 1
    # At 850 of 1000, a 200-token reservation is still refused.
    assert not (await a.meter.admit("c1", DAY, False, 200, at(clock.now))).allowed


async def test_restored_slots_expire_when_they_would_have(
    processes: tuple[Process, Process], redis_server: RedisServer, clock: FakeClock
) -> None:
    a, _ = processes
    start = clock.now
    await _spend(a, clock, 10, 10)
    clock.advance(30)
    await _spend(a, clock, 10, 10)
    await a.store._redis.flushall()
    clock.advance(10)
    assert await a.watch.check()
    minute = ("default", "requests_per_minute")
    clock.now = start + 59.5
    assert used(await a.meter.usage("c1", DAY), *minute) == 2
    clock.now = start + 60.5  # the first request's slot has left the minute
    assert used(await a.meter.usage("c1", DAY), *minute) == 1
    # Both went into one 1-minute slot of the day window, dated by the newest.
    clock.now = start + 30 + 86_399.5
    assert used(await a.meter.usage("c1", DAY), "default", "tokens_per_day") == 20
    clock.now = start + 30 + 86_400.5
    assert used(await a.meter.usage("c1", DAY), "default", "tokens_per_day") == 0


async def test_the_first_admit_after_a_restart_already_counts_the_restored_share(
    processes: tuple[Process, Process], redis_server: RedisServer, clock: FakeClock
) -> None:
    """No look of the watch in between: the new connection finds the new
    generation and puts our share back before the admit runs."""
    a, b = processes
    await _spend(a, clock, 950, 950)
    redis_server.restart()
    assert not (await a.meter.admit("c1", DAY, False, 100, at(clock.now))).allowed
    assert used(await b.meter.usage("c1", DAY), "default", "tokens_per_day") == 950
    assert not await a.watch.check() and not await b.watch.check()  # done, once each
    assert used(await a.meter.usage("c1", DAY), "default", "tokens_per_day") == 950
    assert a.resets + b.resets == 1


def test_the_ledger_forgets_closed_windows_and_stays_under_its_cap() -> None:
    from gateway.quota.buckets import prepare
    from gateway.quota.ledger import Ledger

    ledger = Ledger(max_entries=100)
    prepared = prepare("c1", DAY, False)  # a minute and a day window
    start = 1_800_000_000_000
    for i in range(80):  # one per second: 80 minute slots, 2 day slots
        ledger.admitted(prepared, 5, 1, start + i * 1000)
    assert len(ledger) == 82 and ledger.dropped == 0
    ledger.prune(start + 79_500)  # the minute slots of seconds 0..19 closed
    assert len(ledger) == 62
    for i in range(80, 200):
        ledger.admitted(prepared, 5, 1, start + i * 1000)
    assert len(ledger) == 100 and ledger.dropped > 0
    keys, args = ledger.restore_args(start + 199_500)
    windows, entries = args[: len(keys)], args[len(keys) :]
    assert sorted(windows) == [60_000, 86_400_000]
    day = keys.index(prepared.counters[1].key)
    day_amount = sum(entries[i + 3] for i in range(0, len(entries), 4) if entries[i] == day)
    assert day_amount == 200 * 5  # the day slots were not dropped: minute ones went first
