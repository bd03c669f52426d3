"""Item and container ids bound to their customer (gateway.proxy.reference_owners),
on a real SQLite file and a real PostgreSQL (insert-or-ignore is dialect SQL)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.db.session import create_engine, session_factory
from gateway.proxy.reference_owners import EVERYONE, ReferenceBinding, ReferenceOwners
from gateway.proxy.references import CITED_FILE, CONTAINER, FILE, ITEM
from gateway.settings import Settings
from tests.identity.conftest import make_db, make_settings
from tests.support import postgres_server


def now() -> datetime:
    return datetime(2026, 11, 28, tzinfo=UTC)


@pytest.fixture(scope="module")
def pg() -> Iterator[postgres_server.PostgresServer | None]:
    if not postgres_server.available():
        yield None
        return
    server = postgres_server.PostgresServer()
    server.start()
    yield server
    server.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def sessions(
    request: pytest.FixtureRequest, tmp_path: Path, pg: postgres_server.PostgresServer | None
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    if request.param == "sqlite":
        engine, made = await make_db(make_settings(tmp_path))
        yield made
    else:
        if pg is None:
            pytest.skip("PostgreSQL not installed")
        url = postgres_server.migrated_database(pg)
        engine = create_engine(Settings(database_url=url, upstream_url="http://127.0.0.1:9"))
        yield session_factory(engine)
    await engine.dispose()


async def test_the_first_owner_stands_in_every_process(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    here, there = ReferenceOwners(sessions, now), ReferenceOwners(sessions, now)
    await here.bind([(ITEM, "msg_1"), (CONTAINER, "cntr_1"), (ITEM, "msg_1")], "alice")
    # Bound again by another process (a retrieval, a replayed answer): no error,
    # and an id is never handed to another customer.
    await there.bind([(ITEM, "msg_1"), (ITEM, "msg_2")], "mallory")
    # Not even in the cache of the process that bound it second.
    assert await there.owners_of([(ITEM, "msg_1")]) == {(ITEM, "msg_1"): "alice"}
    fresh = ReferenceOwners(sessions, now)
    assert await fresh.owners_of([(ITEM, "msg_1"), (CONTAINER, "cntr_1"), (ITEM, "msg_2"),
                                  (CONTAINER, "msg_1"), (ITEM, "msg_9")]) == {
        (ITEM, "msg_1"): "alice", (CONTAINER, "cntr_1"): "alice", (ITEM, "msg_2"): "mallory"}


async def test_an_answer_binds_what_it_shows(sessions: async_sessionmaker[AsyncSession]) -> None:
    owners = ReferenceOwners(sessions, now)
    binding = ReferenceBinding(owners, "alice", "dec_1")
    await binding.relayed({"type": "message", "container": {"id": "container_1"}})
    await binding.relayed({"type": "message", "container": None})
    assert await ReferenceOwners(sessions, now).owners_of([(CONTAINER, "container_1")]) == {
        (CONTAINER, "container_1"): "alice"}


async def test_a_file_a_file_search_cited_is_everyones(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # Cited from a vector store every customer may search: no one's own, so
    # the first customer it is cited to does not keep it from the next.
    owners = ReferenceOwners(sessions, now)
    await owners.bind([(FILE, "cfile_mine"), (CITED_FILE, "file-handbook")], "alice")
    await owners.bind([(CITED_FILE, "file-handbook"), (CITED_FILE, "cfile_mine")], "bob")
    fresh = ReferenceOwners(sessions, now)
    assert await fresh.owners_of([(FILE, "cfile_mine"), (FILE, "file-handbook")]) == {
        (FILE, "cfile_mine"): "alice", (FILE, "file-handbook"): EVERYONE}
    assert await owners.owners_of([(FILE, "file-handbook")]) == {(FILE, "file-handbook"): EVERYONE}


async def test_a_caller_cancelled_mid_bind_neither_loses_the_binding_nor_holds_the_database(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A streamed answer's ids are bound at its end, in the request's task, which
    the gateway cancels when the client hangs up (the openai SDK closes the
    connection as soon as it reads ``[DONE]``). Cancelled between its INSERT and
    its COMMIT, the transaction was abandoned: the id stayed unbound (its owner
    got 404 naming it) and, on SQLite, the connection kept the write lock, so
    every audit commit after it failed 'database is locked' (503 for everyone).
    The write goes on to its end whatever happens to its caller."""
    owners = ReferenceOwners(sessions, now)
    ids = [f"file_{n}" for n in range(40)]
    for n, object_id in enumerate(ids):
        task = asyncio.ensure_future(owners.bind([(FILE, object_id)], "alice"))
        for _ in range(n + 1):  # cancel at every point of the transaction in turn
            await asyncio.sleep(0)  # (once the call has begun, as an awaited call has)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    # Every binding lands, and the database takes a write at once.
    fresh = ReferenceOwners(sessions, now)
    for _ in range(100):
        bound = await fresh.owners_of([(FILE, object_id) for object_id in ids])
        if len(bound) == len(ids):
            break
        await asyncio.sleep(0.02)
    assert sorted(o for (_, o) in bound) == sorted(ids)
    await asyncio.wait_for(fresh.bind([(FILE, "file_after")], "bob"), timeout=2)
