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

A batch reads and screens its customers, then locks them for writing and
reads again those changed meanwhile (``gateway.kyc.customer_locks``): an
officer's clearance, or a confirmed match, committed between the batch's
read and its write was overwritten by the verdict computed before it (held
again as ``potential_match``, or a confirmed match turned into one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.admin.auth import AdminActor
from gateway.kyc.customer_locks import lock_customers, version_of
from gateway.kyc.owner_screening import NamesScreened, screen_names
from gateway.kyc.records import snapshot, to_out
from gateway.kyc.reviews import covered, reviews_of_customers
from gateway.kyc.schemas_out import CustomerOut
from gateway.kyc.screening import Screener
from gateway.kyc.service import _apply_screening, _record
from gateway.kyc.tables import Customer, ScreeningReview

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
    last = rows[-1].id
    reviews = await reviews_of_customers(session, [c.id for c in rows])
    # Screened before the write lock is taken: the CPU-bound part of a batch
    # keeps no writer waiting.
    screened = {c.id: screen_names(screener, c) for c in rows}
    rows = await _reread_changed(session, screener, rows, reviews, screened)
    for c in rows:
        mine = reviews.get(c.id, ())
        # The snapshot only for a record this run holds (most are not).
        holds = c.sanctions_status == "clear" and any(
            not covered(hit, mine, screener.threshold, c.name) for hit in screened[c.id].hits
        )
        before = snapshot(c) if holds else None
        _apply_screening(c, screened[c.id], now, mine, screener.threshold)
        if before is not None:
            c.updated_at = now
            _record(session, actor, "customer.rescreen", c, before, now)
            outcome.held.append(to_out(c))
    await session.flush()
    outcome.screened += len(rows)
    return last


async def _reread_changed(
    session: AsyncSession,
    screener: Screener,
    rows: list[Customer],
    reviews: dict[str, list[ScreeningReview]],
    screened: dict[str, NamesScreened],
) -> list[Customer]:
    """Lock ``rows`` for writing (``gateway.kyc.customer_locks``) and read
    again, with their reviews, those changed since they were read (an
    officer's clearance, a confirmed match, a rename, another run's hold):
    their screening and status are decided on what is stored now, not
    written over it. Updates ``reviews`` and ``screened`` in place; the rows
    still there, locked until the transaction ends."""
    current = await lock_customers(session, [c.id for c in rows])
    changed = [c for c in rows if c.id in current and current[c.id] != version_of(c)]
    for c in changed:
        await session.refresh(c)
    if changed:
        fresh = await reviews_of_customers(session, [c.id for c in changed])
        for c in changed:
            reviews[c.id] = fresh.get(c.id, [])
            screened[c.id] = screen_names(screener, c)
    return [c for c in rows if c.id in current]


async def rescreen_customers(
    session: AsyncSession,
    screener: Screener,
    actor: AdminActor,
    now: datetime,
    *,
    batch: int = RESCREEN_BATCH,
) -> RescreenOutcome:
    """Every customer, in the caller's session: each batch is committed (what
    the session held before it too) and let go of, so only the database
    holds what was screened. One transaction for the run held SQLite's write
    lock from the first batch to the caller's commit: 3000 customers against
    a 5000-name list held it ~28 s, and the audit writer's commits failed
    past their 5 s busy timeout (requests fail closed) while an admin write
    waited 28.5 s of its 30. ``rescreen_in_batches`` takes sessions instead."""
    outcome = RescreenOutcome()
    after: str | None = None
    while (after := await _rescreen_page(session, screener, actor, now, after, None,
                                         outcome, batch)) is not None:  # fmt: skip
        await session.commit()
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
