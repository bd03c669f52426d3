"""Locking a batch of customer rows for writing, and reading them again under
the lock: what a read-then-write of many customers (``gateway.kyc.rescreen``)
needs so that a change committed between its read and its write is not
overwritten with a verdict computed from what was there before.

- **PostgreSQL**: ``SELECT ... FOR UPDATE`` of the rows, in id order (two
  batches lock in the same order, so they wait for each other and never
  deadlock); under READ COMMITTED it waits for a writer in progress and
  returns the row as that writer committed it.
- **SQLite**: ``BEGIN IMMEDIATE`` takes the database's write lock before the
  rows are read again; pysqlite otherwise begins a transaction only at the
  first write, so the batch's reads ran outside any and saw nothing since.
  A connection already in a transaction holds the lock already: pysqlite
  began it before a write (a session that wrote before it locks).

The version of a row is what a change to it moves: its ``version`` counter,
which every ORM write of the row adds one to (``gateway.kyc.tables``).
Timestamps alone missed a change: two writes with one clock reading (a
coarse clock, one stepped back, a fixed test clock) left ``updated_at``,
``sanctions_status`` and ``screened_at`` as the first left them.
``updated_at``, ``sanctions_status`` and ``screened_at`` are still compared:
a replica of a release before the counter, during a rolling upgrade, writes
the row without moving it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.kyc.tables import Customer

Version = tuple[int, datetime, str, datetime | None]


def version_of(c: Customer) -> Version:
    """The version of a customer as loaded."""
    return (c.version, c.updated_at, c.sanctions_status, c.screened_at)


async def lock_customers(session: AsyncSession, ids: Sequence[str]) -> dict[str, Version]:
    """Lock the customers ``ids`` until the session's transaction ends; the
    version of each as it is now (an id no longer there is left out)."""
    await sqlite_write_lock(session)
    query = (select(Customer.id, Customer.version, Customer.updated_at,
                    Customer.sanctions_status, Customer.screened_at)
             .where(Customer.id.in_(ids)).order_by(Customer.id)
             .with_for_update())  # fmt: skip
    rows = await session.execute(query)
    return {cid: (version, updated, status, screened)
            for cid, version, updated, status, screened in rows}  # fmt: skip


async def sqlite_write_lock(session: AsyncSession) -> None:
    """SQLite: the database's write lock for the session's transaction (a
    no-op on PostgreSQL, whose rows are locked one by one)."""
    connection = await session.connection()
    if connection.dialect.name != "sqlite":
        return
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    # In a transaction already: pysqlite began it before a write, which took the lock.
    if driver is not None and not driver.in_transaction:
        await connection.exec_driver_sql("BEGIN IMMEDIATE")
