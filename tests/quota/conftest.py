"""Fixtures for quota tests: a real redis-server, and stores of both kinds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from gateway.quota.memory import MemoryStore
from gateway.quota.meter import Meter
from gateway.quota.redis_store import RedisStore
from gateway.quota.store import QuotaStore
from tests.support.redis_server import RedisServer


@pytest.fixture(scope="session")
def shared_redis() -> Iterator[RedisServer]:
    """One server for the whole session; tests that kill Redis use ``redis_server``."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A server of this test's own, free to be killed and restarted."""
    with RedisServer() as server:
        yield server


class FakeClock:
    """Seconds since the epoch, moved by hand."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def make_store(
    request: pytest.FixtureRequest, shared_redis: RedisServer
) -> AsyncIterator[Callable[[], QuotaStore]]:
    """A factory of stores that share one state: two calls = two replicas."""
    made: list[QuotaStore] = []
    if request.param == "memory":
        memory = MemoryStore()

        def factory() -> QuotaStore:
            # Memory is per process: "replicas" share the one object.
            return memory
    else:
        flush = RedisStore(shared_redis.url)
        await flush._redis.flushall()
        await flush.aclose()

        def factory() -> QuotaStore:
            store = RedisStore(shared_redis.url)
            made.append(store)
            return store

    yield factory
    for store in made:
        await store.aclose()


@pytest.fixture
async def make_meter(
    make_store: Callable[[], QuotaStore], clock: FakeClock
) -> AsyncIterator[Callable[..., Meter]]:
    meters: list[Meter] = []

    def factory(**kwargs: object) -> Meter:
        meter = Meter(make_store(), clock=clock, **kwargs)  # type: ignore[arg-type]
        meters.append(meter)
        return meter

    yield factory
    for meter in meters:
        for task in list(meter._heartbeats):
            task.cancel()
