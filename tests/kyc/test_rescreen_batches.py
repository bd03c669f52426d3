"""A rescreen of every customer (``gateway customers rescreen``, and
``gateway serve`` with a list new to its customers) reads them a bounded
batch at a time: reading the whole base at once made start-up slow and its
memory grow with the number of customers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.admin.auth import AdminActor
from gateway.kyc import service
from gateway.kyc.list_update import rescreen_if_list_changed
from gateway.kyc.rescreen import rescreen_customers
from gateway.kyc.schemas import CustomerCreate
from gateway.kyc.screening import screener_from_path
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
