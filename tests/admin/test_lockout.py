"""The admin brute-force lockout shared through a real Redis, and its fallback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.admin.auth import AdminAuthenticator
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


async def test_a_shared_lockout_still_admits_the_bootstrap_token(redis: RedisServer) -> None:
    # Guesses through one replica lock the address out of every replica; the
    # operators behind that address (an untrusted load balancer) keep their
    # bootstrap token on all of them, and guesses are refused without a look
    # at the token store (which this authenticator would fail to reach).
    def no_store() -> object:
        raise AssertionError("a refused guess must not read the token store")

    bootstrap = "bootstrap-token-" + "0123456789abcdef" * 2
    a = AdminAuthenticator(no_store, bootstrap, 30.0, 5, redis_url=redis.url)  # type: ignore[arg-type]
    b = AdminAuthenticator(no_store, bootstrap, 30.0, 5, redis_url=redis.url)  # type: ignore[arg-type]
    for _ in range(5):
        await a.record_failure("203.0.113.9")
    assert await b.blocked("203.0.113.9")
    actor = await b.authenticate_locked_out(bootstrap)
    assert actor is not None and actor.role == "admin"
    for guess in ("guess", bootstrap[:-1], "gat_0123456789abcdef_" + "a" * 52):
        assert await b.authenticate_locked_out(guess) is None
