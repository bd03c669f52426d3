"""Screening customers again against the list in force, a batch at a time.

``gateway customers rescreen`` screens every customer; ``gateway serve``
(``gateway.kyc.list_update``) only those screened against another list or
threshold. Either reads ``RESCREEN_BATCH`` customers at a time in id order
(keyset pages: no offset to rescan), with the reviews of that batch alone, so
memory stays bounded however many customers there are; reading them all at
once grew with the customer base and held start-up until the last row was in.

As at creation, a hit only escalates (``clear`` to ``potential_match``,
recorded as ``customer.rescreen`` in the history and the admin-action log,
which every replica reads, so the held customer is served as ``public`` within
the change-poll interval); a miss clears nobody. A hit a review already
cleared, the same screened name on the same listed name, is not raised again
(``gateway.kyc.reviews``), or each run would undo every false-positive
review; any other hit holds the customer. Every record's screening details
(list version, threshold, best match, score, hits, time) are refreshed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.admin.auth import AdminActor
from gateway.kyc.owner_screening import screen_names
from gateway.kyc.records import snapshot, to_out
from gateway.kyc.reviews import covered, reviews_of_customers
from gateway.kyc.schemas import CustomerOut
from gateway.kyc.screening import Screener
from gateway.kyc.service import _apply_screening, _record
from gateway.kyc.tables import Customer

RESCREEN_BATCH = 500
"""Customers read, screened and (by ``rescreen_in_batches``) committed at a time."""


@dataclass(slots=True)
class RescreenOutcome:
    screened: int = 0
    held: list[CustomerOut] = field(default_factory=list)
    """Customers this run moved from ``clear`` to ``potential_match``, as they are now."""


async def _rescreen_page(
    session: AsyncSession,
    screener: Screener,
    actor: AdminActor,
    now: datetime,
    after: str | None,
    where: ColumnElement[bool] | None,
    outcome: RescreenOutcome,
    limit: int,
) -> str | None:
    """Screen the next ``limit`` customers after id ``after``; the last id
    screened (None: there was none left)."""
    query = select(Customer).order_by(Customer.id).limit(limit)
    if after is not None:
        query = query.where(Customer.id > after)
    if where is not None:
        query = query.where(where)
    rows = list((await session.scalars(query)).all())
    if not rows:
        return None
    reviews = await reviews_of_customers(session, [c.id for c in rows])
    for c in rows:
        screened = screen_names(screener, c)
        mine = reviews.get(c.id, ())
        # The snapshot only for a record this run holds (most are not).
        holds = c.sanctions_status == "clear" and any(
            not covered(hit, mine, screener.threshold, c.name) for hit in screened.hits
        )
        before = snapshot(c) if holds else None
        _apply_screening(c, screened, now, mine, screener.threshold)
        if before is not None:
            c.updated_at = now
            _record(session, actor, "customer.rescreen", c, before, now)
            outcome.held.append(to_out(c))
    await session.flush()
    outcome.screened += len(rows)
    return rows[-1].id


async def rescreen_customers(
    session: AsyncSession,
    screener: Screener,
    actor: AdminActor,
    now: datetime,
    *,
    batch: int = RESCREEN_BATCH,
) -> RescreenOutcome:
    """Every customer, in the caller's session and transaction (the caller
    commits: all or nothing). Each batch is flushed and let go of, so only
    the database holds what was screened."""
    outcome = RescreenOutcome()
    after: str | None = None
    while (after := await _rescreen_page(session, screener, actor, now, after, None,
                                         outcome, batch)) is not None:  # fmt: skip
        session.expunge_all()
    return outcome


async def rescreen_in_batches(
    sessions: async_sessionmaker[AsyncSession],
    screener: Screener,
    actor: AdminActor,
    now: datetime,
    *,
    where: ColumnElement[bool] | None = None,
    batch: int = RESCREEN_BATCH,
) -> RescreenOutcome:
    """The customers ``where`` selects (None: all), a transaction per batch:
    writers (the gateway's own audit rows, on SQLite) wait for a batch at
    most, not the whole run, and a run cut short keeps what it screened (one
    selecting those screened otherwise then resumes where it stopped)."""
    outcome = RescreenOutcome()
    after: str | None = None
    while True:
        async with sessions() as session:
            after = await _rescreen_page(session, screener, actor, now, after, where,
                                         outcome, batch)  # fmt: skip
            if after is None:
                return outcome
            await session.commit()
