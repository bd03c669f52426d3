"""A Message Batch's catch-up charge, covered once, on a real PostgreSQL
(migrated by ``gateway db upgrade``): downloads racing on several replicas
each hold their own connection, so the compare-and-set really races."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.db.session import create_engine, session_factory
from gateway.proxy.batch_state import BatchOwners
from gateway.settings import Settings
from tests.support import postgres_server

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not postgres_server.available(), reason="PostgreSQL not installed"),
]


def now() -> datetime:
    return datetime(2026, 11, 28, tzinfo=UTC)


@pytest.fixture(scope="module")
def pg() -> Iterator[postgres_server.PostgresServer]:
    server = postgres_server.PostgresServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
async def replicas(
    pg: postgres_server.PostgresServer,
) -> AsyncIterator[list[async_sessionmaker[AsyncSession]]]:
    url = postgres_server.migrated_database(pg)
    engines: list[AsyncEngine] = [
        create_engine(Settings(database_url=url, upstream_url="http://127.0.0.1:9"))
        for _ in range(4)
    ]
    yield [session_factory(engine) for engine in engines]
    for engine in engines:
        await engine.dispose()


async def test_racing_replicas_cover_a_batchs_usage_once(
    replicas: list[async_sessionmaker[AsyncSession]],
) -> None:
    owners = [BatchOwners(sessions, now) for sessions in replicas]
    groups: list[Any] = [{"capabilities": ["coding"], "reserved": 30},
                         {"capabilities": [], "reserved": 10, "custom_ids": ["b"]}]  # fmt: skip
    await owners[0].bind("msgbatch_pg", "alice", ("haiku-lite",), "dec_1", frozenset(), groups)
    await owners[0].bind("msgbatch_none", "alice", ("haiku-lite",), "dec_2", frozenset())
    bound = await owners[1].binding_of("msgbatch_none")
    assert bound is not None and bound.unsettled is None
    rounds = []
    for _ in range(3):
        raced = await asyncio.gather(*(o.cover("msgbatch_pg", [50, 12]) for o in owners))
        rounds.append(sum(extra for found in raced for _, extra in found))
    assert rounds == [20 + 2, 0, 0], rounds
    assert await owners[2].cover("msgbatch_pg", [50, 12]) == []
    assert [e for _, e in await owners[3].cover("msgbatch_pg", [60, 12])] == [10, 0]
