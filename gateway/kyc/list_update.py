"""Screening every customer again when the sanctions list in force changes.

The list is loaded when the gateway starts (there is no live reload): an
updated list is put in force by restarting with it. Names were screened only
when created, renamed or given new owners, and ``gateway customers rescreen``
after each update was a step to remember; a customer the new list names
stayed ``clear`` until someone ran it. ``gateway serve`` now runs the same
rescreen before any worker starts whenever a customer was last screened
against another list, or none (the list version, ``<sha256 prefix>-<date>``,
is stored with each record; only its content digest counts, so the same
list downloaded again another day is not new), or at another threshold (stored with each
record too: a name clear at 0.92 may be a potential match at 0.85; a raised
threshold holds nobody new, but the stored hits are then those of the
threshold in force), as ``customer.rescreen`` rows by the actor
``gateway:sanctions-list-update``. Started again with the same list and
threshold, every record is already screened so and nothing is done.

Past ``GATEWAY_RESCREEN_INLINE_MAX`` customers the rescreen runs beside the
serving gateway (``gateway.cli.serve_rescreen``); a customer not yet reached
is held meanwhile (``gateway.identity.screening_summary.awaiting_rescreen``).
Replicas starting together may both screen; the second finds nothing new to
hold: a batch locks its customers before writing and screens again those
changed since it read them (``gateway.kyc.rescreen``), the first's holds and
any review made since among them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.admin.auth import AdminActor
from gateway.kyc.rescreen import RescreenOutcome, rescreen_in_batches
from gateway.kyc.sanctions_lists import content_digest
from gateway.kyc.screening import Screener
from gateway.kyc.tables import Customer

LIST_UPDATE_ACTOR = AdminActor(name="gateway:sanctions-list-update", role="admin", token_id=None)


def screened_otherwise(screener: Screener) -> ColumnElement[bool]:
    """Customers last screened against another list than ``screener``'s, or
    at another threshold (or never, or before the threshold was kept)."""
    # The content digest, not the whole version: the same list downloaded
    # again another day is not new (sanctions_lists.same_list).
    same_content = f"{content_digest(screener.version)}-"
    return or_(Customer.screening_list_version.is_(None),
               ~Customer.screening_list_version.startswith(same_content, autoescape=True),
               Customer.screening_threshold.is_(None),
               Customer.screening_threshold != screener.threshold)  # fmt: skip


async def screened_against_another_list(session: AsyncSession, screener: Screener) -> int:
    """How many customers were last screened against another list or threshold."""
    query = select(func.count()).select_from(Customer).where(screened_otherwise(screener))
    found = await session.scalar(query)
    return int(found or 0)


async def rescreen_if_list_changed(
    sessions: async_sessionmaker[AsyncSession], screener: Screener, now: datetime
) -> RescreenOutcome | None:
    """Rescreen every customer when any was screened against another list or
    threshold; None when all are screened as ``screener`` screens already."""
    async with sessions() as session:
        if not await screened_against_another_list(session, screener):
            return None
    return await rescreen_in_batches(sessions, screener, LIST_UPDATE_ACTOR, now,
                                     where=screened_otherwise(screener))  # fmt: skip
