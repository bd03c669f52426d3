"""Redis-only behaviour: replicas in separate processes, outages, recovery."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from gateway.quota.meter import Meter, build_meter
from gateway.quota.redis_store import RedisStore
from gateway.settings import Settings
from gateway.stages import QuotaStoreUnavailable, Usage
from tests.quota.conftest import FakeClock
from tests.quota.helpers import at, plan, used
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.redis
ROOT = Path(__file__).resolve().parents[2]
RPM = plan(("default", "requests_per_minute", 3))
RPM_OPEN = plan(("default", "requests_per_minute", 3), fail_open=True)


def _errors(operation: str) -> float:
    value = REGISTRY.get_sample_value("gateway_quota_store_errors_total", {"operation": operation})
    return value or 0.0


async def test_two_processes_share_one_count(shared_redis: RedisServer) -> None:
    flush = RedisStore(shared_redis.url)
    await flush._redis.flushall()
    await flush.aclose()
    cmd = [sys.executable, "-m", "tests.quota.replica_worker", shared_redis.url, "40"]
    procs = [
        subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for proc in procs:  # both connected and waiting
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = [proc.communicate(timeout=60) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    allowed = [int(out) for out, _ in outputs]
    # 80 requests, 50 rpm, and 10000 tokens / 300 = 33 reservations: the token bucket binds.
    assert sum(allowed) == 33, allowed
    assert all(n > 0 for n in allowed), allowed  # both really raced


async def test_fail_closed_then_recovers_after_restart(
    redis_server: RedisServer, clock: FakeClock
) -> None:
    meter = Meter(RedisStore(redis_server.url), clock=clock)
    assert (await meter.admit("c1", RPM, False, 0, at(clock.now))).allowed
    redis_server.kill()
    before = _errors("admit")
    with pytest.raises(QuotaStoreUnavailable):
        await meter.admit("c1", RPM, False, 0, at(clock.now))
    assert meter.store_failures == 1
    assert _errors("admit") == before + 1
    assert not await meter.ping()

    open_admission = await meter.admit("c1", RPM_OPEN, False, 0, at(clock.now))
    assert open_admission.allowed and open_admission.fail_open
    assert meter.store_failures == 2
    await meter.settle(open_admission, Usage(tokens_in=1))  # nothing to settle: no error

    redis_server.start()  # same port, empty (no persistence)
    assert await meter.ping()
    # Same meter, no rebuild: the pool reconnects and scripts are re-loaded.
    for _ in range(3):
        assert (await meter.admit("c1", RPM, False, 0, at(clock.now))).allowed
    assert not (await meter.admit("c1", RPM, False, 0, at(clock.now))).allowed
    await meter.aclose()


async def test_a_stalled_redis_times_out_quickly(
    redis_server: RedisServer, clock: FakeClock
) -> None:
    meter = Meter(RedisStore(redis_server.url, socket_timeout=0.3), clock=clock)
    assert await meter.ping()
    assert redis_server.proc is not None
    os.kill(redis_server.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(QuotaStoreUnavailable):
            await meter.admit("c1", RPM, False, 0, at(clock.now))
        assert time.monotonic() - started < 2.0
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)
    # The timed-out connection is dropped, not reused with a stale reply on it.
    assert (await meter.admit("c1", RPM, False, 0, at(clock.now))).allowed
    report = await meter.usage("c1", RPM)
    assert used(report, "default", "requests_per_minute") in (1, 2)
    await meter.aclose()


async def test_settle_during_an_outage_is_counted_not_raised(
    redis_server: RedisServer, clock: FakeClock
) -> None:
    meter = Meter(RedisStore(redis_server.url), clock=clock)
    p = plan(("default", "tokens_per_minute", 1000), ("default", "concurrent_streams", 1))
    admission = await meter.admit("c1", p, True, 100, at(clock.now))
    redis_server.kill()
    await meter.settle(admission, Usage(tokens_in=5))
    assert meter.store_failures == 1
    with pytest.raises(QuotaStoreUnavailable):
        await meter.usage("c1", p)
    redis_server.start()
    await meter.aclose()


async def test_build_meter_picks_the_store(shared_redis: RedisServer) -> None:
    memory = build_meter(Settings(demo=True))
    shared = build_meter(Settings(demo=True, redis_url=shared_redis.url))
    assert type(memory.store).__name__ == "MemoryStore"
    assert isinstance(shared.store, RedisStore)
    assert await shared.ping() and await memory.ping()
    await shared.aclose()
    await memory.aclose()
