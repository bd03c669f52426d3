"""The admin brute-force lockout shared through a real Redis, and its fallback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.admin.lockout import FailedAttempts
from gateway.ops import metrics
from tests.support.redis_server import RedisServer


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def _lockout_errors() -> float:
    value = metrics.CLUSTER_ERRORS.labels("admin_lockout")._value.get()
    return float(value)


async def test_failures_on_one_replica_lock_the_ip_out_of_all(redis: RedisServer) -> None:
    a = FailedAttempts(per_minute=5, redis_url=redis.url)
    b = FailedAttempts(per_minute=5, redis_url=redis.url)
    for _ in range(3):
        await a.record("203.0.113.7")
    for _ in range(2):
        await b.record("203.0.113.7")
    # Five failures in all, three here and two there: one limit, not one each.
    assert await a.blocked("203.0.113.7") and await b.blocked("203.0.113.7")
    assert not await b.blocked("203.0.113.8")
    # Without the shared window, neither process alone is over its limit.
    assert not await FailedAttempts(per_minute=5).blocked("203.0.113.7")


async def test_without_redis_each_process_keeps_its_own_window(redis: RedisServer) -> None:
    a = FailedAttempts(per_minute=5, redis_url=redis.url)
    b = FailedAttempts(per_minute=5, redis_url=redis.url)
    assert not await a.blocked("198.51.100.1")  # the shared window is in use
    redis.stop()
    errors = _lockout_errors()
    for _ in range(5):
        await a.record("198.51.100.1")  # counted locally; the shared hit fails, logged
    assert await a.blocked("198.51.100.1")  # the fallback still locks the IP out
    assert not await b.blocked("198.51.100.1")  # per replica only, while Redis is down
    assert _lockout_errors() > errors
    redis.start()
    await b.record("198.51.100.1")
    assert not await b.blocked("198.51.100.1")  # Redis came back empty: one failure
