"""A transaction cut short by a cancellation gives its locks back at once.

Cancelled at any point of a write (inside a statement, between statements,
inside COMMIT), through ``engine.begin()`` or an ``AsyncSession``, on the
engine the gateway builds (``gateway.db.session.create_engine``), the write
lock (SQLite) or row locks (PostgreSQL) are free for the next writer as soon
as the cancelled task has ended: the next writer, with a short lock wait,
succeeds. The gateway answers 503 (fail closed) while its database is locked,
so a lock that outlives its task refuses every customer.

The cancellation is delivered exactly at the point named: an engine event
schedules ``task.cancel()`` just before the driver call it precedes, so the
task is waiting on that call when the cancellation lands (as when the
gateway's disconnect watch cancels a request whose client hung up).
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from gateway.db.session import create_engine
from gateway.db.sqlite_connection import RollbackOnClose
from gateway.settings import Settings
from tests.support.identity_app import make_settings

CANCEL_HERE = "/* cancel here */"
"""Marks the statement whose execution the cancellation interrupts."""

_ids = itertools.count(1)

POINTS = {
    # INSERT ... RETURNING and SELECT return rows: the driver has run the
    # statement's first step when the cancellation lands, and the step that
    # ends it (the fetch) is never run. The session-15 wedge.
    "inside a row-returning insert": (
        "INSERT INTO scratch (id, note) VALUES (:id, 'b') RETURNING id"),
    "inside a select after an insert": "SELECT id FROM scratch",
    "inside a plain insert": "INSERT INTO scratch (id, note) VALUES (:id, 'b')",
    "between two statements": None,
    "inside commit": None,
}


class Canceller:
    """Cancels ``target`` just before the statement marked CANCEL_HERE (or the
    COMMIT, when ``at_commit``) goes to the driver."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.target: asyncio.Task[Any] | None = None
        self.at_commit = False
        event.listen(engine.sync_engine, "before_cursor_execute", self._before_statement)
        event.listen(engine.sync_engine, "commit", self._before_commit)

    def _cancel(self) -> None:
        if self.target is not None:
            asyncio.get_running_loop().call_soon(self.target.cancel)
            self.target = None

    def _before_statement(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if CANCEL_HERE in statement:
            self._cancel()

    def _before_commit(self, _conn: Any) -> None:
        if self.at_commit:
            self._cancel()


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        settings = make_settings(tmp_path)
    else:
        server = request.getfixturevalue("postgres")  # tests/ops/conftest.py (skips if absent)
        settings = Settings(database_url=server.create_database(), demo=True)
    made = create_engine(settings, serving=True)  # as the serving gateway builds it
    async with made.begin() as conn:
        await conn.execute(text("CREATE TABLE scratch (id INTEGER PRIMARY KEY, note TEXT)"))
    yield made
    await made.dispose()


def _sqlite_path(engine: AsyncEngine) -> str:
    database = engine.url.database
    assert database is not None
    return database


async def _another_writer_gets_through(engine: AsyncEngine, row_id: int) -> None:
    """Write the row the cancelled transaction inserted, from a connection of
    its own that waits at most half a second for a lock."""
    if engine.dialect.name == "sqlite":
        other = sqlite3.connect(_sqlite_path(engine), timeout=0.5)
        try:
            other.execute("INSERT OR IGNORE INTO scratch (id, note) VALUES (?, 'other')",
                          (row_id,))  # fmt: skip
            other.commit()  # raised "database is locked" while the lock was kept
        finally:
            other.close()
        return
    url = engine.url.set(drivername="postgresql")
    conn = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        await conn.execute("SET lock_timeout = '500ms'")
        await conn.execute("INSERT INTO scratch (id, note) VALUES ($1, 'other') "
                           "ON CONFLICT DO NOTHING", row_id)  # fmt: skip
        # No session of this database is left holding a transaction open.
        idle_in_transaction = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state LIKE 'idle in transaction%'"
        )
        assert idle_in_transaction == 0
    finally:
        await conn.close()


async def _write_with_begin(engine: AsyncEngine, row_id: int, point: str) -> None:
    async with engine.begin() as conn:
        await _statements(conn.execute, row_id, point)


async def _write_with_session(engine: AsyncEngine, row_id: int, point: str) -> None:
    async with AsyncSession(engine) as session:
        await _statements(session.execute, row_id, point)
        await session.commit()


async def _statements(execute: Callable[..., Awaitable[Any]], row_id: int, point: str) -> None:
    await execute(text("INSERT INTO scratch (id, note) VALUES (:id, 'a')"), {"id": row_id})
    second = POINTS[point]
    if second is not None:
        await execute(text(second + " " + CANCEL_HERE), {"id": row_id + 100_000})
    elif point == "between two statements":
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(1)  # cancelled here, as the task awaits something else


WRITERS = {"engine.begin": _write_with_begin, "AsyncSession": _write_with_session}


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize("point", list(POINTS))
async def test_a_cancelled_write_leaves_the_database_writable(
    engine: AsyncEngine, writer: str, point: str
) -> None:
    canceller = Canceller(engine)
    canceller.at_commit = point == "inside commit"
    for attempt in range(3):  # a pooled connection, then ones made after invalidation
        row_id = next(_ids)
        task = asyncio.ensure_future(WRITERS[writer](engine, row_id, point))
        canceller.target = task if point != "between two statements" else None
        done, _ = await asyncio.wait([task], timeout=10)
        assert done, f"the cancelled write did not end (attempt {attempt})"
        assert task.cancelled(), task
        del task, done  # as a finished request's task is dropped
        await _another_writer_gets_through(engine, row_id)
    # And the engine's own pool still writes (within its lock wait, not 30 s).
    async with asyncio.timeout(5), engine.begin() as conn:
        await conn.execute(text("INSERT INTO scratch (id, note) VALUES (:id, 'after')"),
                           {"id": next(_ids)})  # fmt: skip


@pytest.mark.parametrize("writer", sorted(WRITERS))
async def test_a_cancelled_read_does_not_hold_back_the_wal(tmp_path: Path, writer: str) -> None:
    """A read cancelled mid-statement (an export whose client hung up: Starlette
    cancels a streamed body on disconnect) holds no write lock, but a closed
    connection kept its read snapshot while the statement lived, so no
    checkpoint could reset the WAL past it: it grew until the garbage collector
    ran. Its connection is closed clean: a TRUNCATE checkpoint completes."""
    made = create_engine(make_settings(tmp_path), serving=True)
    try:
        async with made.begin() as conn:
            await conn.execute(text("CREATE TABLE scratch (id INTEGER PRIMARY KEY, note TEXT)"))
            await conn.execute(text("INSERT INTO scratch (id, note) VALUES (1, 'a')"))
        canceller = Canceller(made)

        async def read() -> None:
            if writer == "engine.begin":
                async with made.connect() as conn:
                    await conn.execute(text("SELECT id FROM scratch " + CANCEL_HERE))
            else:
                async with AsyncSession(made) as session:
                    await session.execute(text("SELECT id FROM scratch " + CANCEL_HERE))

        task = canceller.target = asyncio.ensure_future(read())
        done, _ = await asyncio.wait([task], timeout=10)
        assert done and task.cancelled(), task
        del task, done
        other = sqlite3.connect(_sqlite_path(made), timeout=0.5)
        try:
            other.execute("INSERT INTO scratch (id, note) VALUES (2, 'other')")
            other.commit()
            busy, _, _ = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            other.close()
        assert busy == 0  # 1: a reader's snapshot still pins the WAL
    finally:
        await made.dispose()


def test_closing_twice_is_harmless_as_for_sqlite3(tmp_path: Path) -> None:
    """aiosqlite may close a connection twice (a graceful close queued, then
    the forced stop of a terminate that was itself cancelled): an error there
    kept the driver's thread from ever exiting."""
    conn = sqlite3.connect(tmp_path / "twice.db", factory=RollbackOnClose)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")  # a transaction left open
    conn.close()
    conn.close()
