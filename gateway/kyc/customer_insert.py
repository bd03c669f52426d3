"""Inserting a new customer under an id the caller chose (the admin API's
``POST /admin/v1/customers`` with an ``id``, ``gateway customers add --id``).

The caller looks the id up first, and two creates of one id at once both
find it free: the loser's INSERT then hits the primary key, an integrity
error that the admin API answered with a 500. Only a look-up after the
failed INSERT says whether the id was taken meanwhile (a 409) or another
constraint failed (re-raised).
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.kyc.customer_locks import sqlite_write_lock
from gateway.kyc.tables import Customer


class CustomerExists(ValueError):
    """A customer with this id is stored already (``str()``: the id)."""


async def insert_new(session: AsyncSession, c: Customer) -> None:
    """Insert ``c`` (flushed), or raise CustomerExists when its id is taken.

    The INSERT runs in a savepoint, so the caller's session and transaction
    stay usable after it fails. On SQLite the transaction is begun first
    (the write lock, which the INSERT takes anyway): a savepoint that opens
    SQLite's transaction commits it when it is released, and the customer
    would be committed apart from its history and admin-action rows."""
    await sqlite_write_lock(session)
    try:
        async with session.begin_nested():
            session.add(c)
    except IntegrityError:
        if await session.get(Customer, c.id) is None:
            raise  # another constraint failed: not a taken id
        raise CustomerExists(c.id) from None
