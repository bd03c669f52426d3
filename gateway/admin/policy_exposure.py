"""``POST /admin/v1/policy/impact`` with ``"customers": true``: ``gateway policy
impact --customers`` against the bundle in force, over HTTP.

Every active customer record is judged by the candidate and by the bundle in
force at the same instant (``gateway.policy.exposure``), so customers who did
not call in any window are counted too. The records are read on the event
loop in pages and judged in a worker thread (``thread_feed``): neither the
whole customer table nor the CPU work sits in the serving loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.admin.thread_feed import feed_thread
from gateway.identity.principal import Principal
from gateway.identity.store import principal_from
from gateway.kyc.tables import Customer
from gateway.policy.compiled import CompiledBundle
from gateway.policy.exposure import exposure, unknown_customers
from gateway.policy.exposure_doc import exposure_document

PAGE = 500


async def _principals(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Principal]:
    """Every customer record as the identify stage builds it, in id order, a page
    per short session (no long read transaction)."""
    after: str | None = None
    while True:
        query = select(Customer).order_by(Customer.id).limit(PAGE)
        if after is not None:
            query = query.where(Customer.id > after)
        async with sessions() as session:
            rows = list((await session.execute(query)).scalars())
        for row in rows:
            yield principal_from(row, None, "test")
        if len(rows) < PAGE:
            return
        after = rows[-1].id


async def customers_impact(
    sessions: async_sessionmaker[AsyncSession],
    candidate: CompiledBundle,
    in_force: CompiledBundle,
    at: datetime,
) -> dict[str, Any]:
    """The ``--customers`` report of ``candidate`` against ``in_force``, both at ``at``."""
    known: set[str] = set()

    def noted(principals: Iterable[Principal]) -> Iterator[Principal]:
        for principal in principals:
            known.add(principal.customer_id)  # every record, suspended ones too
            yield principal

    report = await feed_thread(
        _principals(sessions), lambda items: exposure(noted(items), candidate, at, in_force, at)
    )
    unknown = unknown_customers(candidate.source, known)
    return exposure_document(report, candidate, in_force.version, at, unknown)
