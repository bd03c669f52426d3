"""Pages of customer records and of a customer's history: keyset pages by id,
stable under concurrent inserts, with an opaque cursor (also the admin-action
log's, ``gateway.admin.actions``)."""

from __future__ import annotations

import base64

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.kyc.schemas import as_utc
from gateway.kyc.schemas_out import HistoryOut
from gateway.kyc.tables import Customer, CustomerHistory

MAX_PAGE = 500


def encode_cursor(value: str | int) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = base64.b64decode(padded.encode(), altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("invalid cursor") from exc
    if not value or "\x00" in value:  # NUL: PostgreSQL cannot compare it (a 500)
        raise ValueError("invalid cursor")
    return value


async def list_customers(
    session: AsyncSession,
    cursor: str | None,
    limit: int,
    status: str | None = None,
    sanctions_status: str | None = None,
) -> tuple[list[Customer], str | None]:
    """Keyset page ordered by id: stable under concurrent inserts, no OFFSET scans."""
    query = select(Customer).order_by(Customer.id).limit(limit + 1)
    if cursor:
        query = query.where(Customer.id > decode_cursor(cursor))
    if status:
        query = query.where(Customer.status == status)
    if sanctions_status:
        query = query.where(Customer.sanctions_status == sanctions_status)
    rows = list((await session.execute(query)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1].id) if more and rows else None


async def list_history(
    session: AsyncSession, customer_id: str, cursor: str | None, limit: int
) -> tuple[list[HistoryOut], str | None]:
    query = (
        select(CustomerHistory)
        .where(CustomerHistory.customer_id == customer_id)
        .order_by(CustomerHistory.id)
        .limit(limit + 1)
    )
    if cursor:
        try:
            after = int(decode_cursor(cursor))
        except ValueError as exc:
            raise ValueError("invalid cursor") from exc
        query = query.where(CustomerHistory.id > after)
    rows = list((await session.execute(query)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        HistoryOut(
            id=r.id,
            customer_id=r.customer_id,
            at=as_utc(r.at),
            actor=r.actor,
            action=r.action,
            changes=r.changes,
        )
        for r in rows
    ]
    return items, encode_cursor(rows[-1].id) if more and rows else None
