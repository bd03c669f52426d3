"""A rescreen of every customer (``gateway customers rescreen``, and
``gateway serve`` with a list new to its customers) reads them a bounded
batch at a time: reading the whole base at once made start-up slow and its
memory grow with the number of customers."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.admin.auth import AdminActor
from gateway.kyc import rescreen, service
from gateway.kyc.list_update import rescreen_if_list_changed
from gateway.kyc.rescreen import rescreen_customers
from gateway.kyc.schemas import CustomerCreate
from gateway.kyc.screening import screener_from_path
from gateway.kyc.tables import ScreeningReview
from tests.support.identity_app import make_db, make_settings

NOW = datetime(2026, 6, 1, tzinfo=UTC)
ACTOR = AdminActor(name="test", role="admin", token_id=None)
CUSTOMERS = 1201  # more than two batches of 500
LISTED = "cus_01000"


@contextmanager
def customer_reads(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SELECTs of customer rows run while inside (a count is one row)."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        statement = str(args[2])
        rows = "FROM customers" in statement and "count(*)" not in statement
        if statement.lstrip().upper().startswith("SELECT") and rows:
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def _customers(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        for i in range(CUSTOMERS):
            name = "Zoltrava Shipping Ltd" if f"cus_{i:05d}" == LISTED else f"Customer {i:05d}"
            data = CustomerCreate(id=f"cus_{i:05d}", name=name)
            await service.create_customer(session, data, ACTOR, None, NOW,
                                          warn_unscreened=False, known_new=True)  # fmt: skip
        await session.commit()


def _list(tmp_path: Path) -> Path:
    path = tmp_path / "list.csv"
    path.write_text("name,alt_names,type,source\nZoltrava Shipping,,Entity,SYN-EL\n")
    return path


def _check_paged(reads: list[str]) -> None:
    assert reads, "no customer was read"
    for statement in reads:
        # A page, or a page's rows read again by id under the write lock.
        bounded = "LIMIT" in statement.upper() or "customers.id IN (" in statement
        assert bounded, statement
    assert len(reads) >= 3, reads


async def test_the_start_up_rescreen_reads_customers_in_batches(tmp_path: Path) -> None:
    engine, sessions = await make_db(make_settings(tmp_path))
    await _customers(sessions)
    screener = screener_from_path(_list(tmp_path), 0.9)
    with customer_reads(engine) as reads:
        outcome = await rescreen_if_list_changed(sessions, screener, NOW)
    _check_paged(reads)
    assert outcome is not None and outcome.screened == CUSTOMERS
    assert [c.id for c in outcome.held] == [LISTED]
    assert await rescreen_if_list_changed(sessions, screener, NOW) is None


async def test_rescreen_customers_reads_customers_in_batches(tmp_path: Path) -> None:
    engine, sessions = await make_db(make_settings(tmp_path))
    await _customers(sessions)
    screener = screener_from_path(_list(tmp_path), 0.9)
    with customer_reads(engine) as reads:
        async with sessions() as session:
            outcome = await rescreen_customers(session, screener, ACTOR, NOW)
            await session.commit()
    _check_paged(reads)
    assert outcome.screened == CUSTOMERS and [c.id for c in outcome.held] == [LISTED]


def _write_elsewhere(database: Path) -> str:
    """A write on a connection of its own, as the audit writer's or an admin
    request's: "ok", or why it could not take the write lock (waiting 0.2 s
    for it where theirs wait 5 s and 30 s: only whether it is free matters)."""
    connection = sqlite3.connect(database, timeout=0.2)
    try:
        connection.execute("UPDATE customers SET tier = tier WHERE id = 'cus_00000'")
        connection.commit()
        return "ok"
    except sqlite3.OperationalError as exc:
        return str(exc)
    finally:
        connection.close()


async def test_rescreen_customers_lets_other_writers_in_between_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It ran every batch in the caller's one transaction, so it held SQLite's
    write lock from its first batch to the caller's commit: 3000 customers
    screened against a 5000-name list held it ~28 s, and meanwhile the audit
    writer's commits failed (database is locked, past its 5 s busy timeout:
    requests fail closed) and an admin PATCH waited 28.5 s of its 30. Each
    batch is now committed, as the start-up rescreen's are."""
    engine, sessions = await make_db(make_settings(tmp_path))
    await _customers(sessions)
    screener = screener_from_path(_list(tmp_path), 0.9)
    real = rescreen.reviews_of_customers
    writes: list[str] = []

    async def reviews_then_write(
        session: AsyncSession, ids: Sequence[str]
    ) -> dict[str, list[ScreeningReview]]:
        # Once a batch has read its customers, before it locks them.
        found = await real(session, ids)
        writes.append(await asyncio.to_thread(_write_elsewhere, tmp_path / "gateway.db"))
        return found

    monkeypatch.setattr(rescreen, "reviews_of_customers", reviews_then_write)
    async with sessions() as session:
        outcome = await rescreen_customers(session, screener, ACTOR, NOW)
        await session.commit()
    await engine.dispose()
    assert outcome.screened == CUSTOMERS and [c.id for c in outcome.held] == [LISTED]
    assert writes == ["ok", "ok", "ok"]  # one per batch of 500
