"""What a compliance review cleared, hit by hit.

A customer has several screened names (its own and its owners', see
``gateway.kyc.owner_screening``) and each may match a listed name. A review
that clears a ``potential_match`` clears the hits it was shown, each a
(screened name, listed name) pair, recorded in ``screening_reviews``. A later
screening holds the customer again if any of its hits is not covered by such
a review: a new listed name, or a known listed name matching another of the
customer's names, is a lead nobody has looked at yet. Keeping only the
strongest hit let a weaker new one hide behind a cleared one.

An officer who sets the customer to any status but ``clear`` withdraws every
review of it (``withdraw_reviews``): a clearance says a hit is harmless, the
new status says the customer is not; keeping the clearances let a rescreen
and a later change read those pairs as harmless still. Withdrawn reviews
stay in the table (who cleared, who withdrew, when, why) and clear nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.auth import AdminActor
from gateway.identity.admin_log import record_admin_action
from gateway.kyc.schemas import rfc3339
from gateway.kyc.tables import Customer, CustomerHistory, ScreeningReview


@dataclass(frozen=True, slots=True)
class Hit:
    """One screened name at or above the threshold against one listed name."""

    screened_name: str
    listed_name: str | None
    """None: nothing of the screened name was left to compare (held, fail closed)."""
    score: float
    source: str | None


def covered(
    hit: Hit, reviews: Iterable[ScreeningReview], threshold: float, own_name: str
) -> bool:
    """Does a review already clear ``hit`` (of a customer named ``own_name``)?"""
    for review in reviews:
        if review.listed_name != hit.listed_name:
            continue
        if review.screened_name == hit.screened_name:
            return True
        # Migrated from the single stored best match: the screened name is
        # unknown. As before, it covers that listed name when the cleared
        # score was a hit at today's threshold (a stored score below it was
        # no hit, so no review of it was made); and only on the customer's
        # own name: owners' names were not screened then, so nobody reviewed
        # an owner's hit on that listed name.
        if (
            review.screened_name is None
            and hit.screened_name == own_name
            and review.score is not None
            and (review.score >= threshold)
        ):
            return True
    return False


def hits_json(
    hits: Sequence[Hit], reviews: Sequence[ScreeningReview], threshold: float, own_name: str
) -> list[dict[str, Any]]:
    """The stored form of ``hits`` (``Customer.screening_hits``)."""
    return [
        {
            "screened_name": h.screened_name,
            "listed_name": h.listed_name,
            "score": h.score,
            "source": h.source,
            "reviewed": covered(h, reviews, threshold, own_name),
        }
        for h in hits
    ]


def hit_pairs(hits: list[dict[str, Any]] | None) -> frozenset[tuple[str, str | None]] | None:
    """The (screened name, listed name) pairs of stored hits (None: none kept yet)."""
    if hits is None:
        return None
    return frozenset((h["screened_name"], h["listed_name"]) for h in hits)


def record_clearance(
    session: AsyncSession,
    c: Customer,
    actor_name: str,
    now: datetime,
    shown: frozenset[tuple[str, str | None]] | None = None,
) -> list[ScreeningReview]:
    """A compliance user set ``c`` to ``clear``: each hit it was shown and no
    review covers yet is now cleared (a row each, marked reviewed).

    ``shown``: the hits the record held before the request that clears it;
    a hit not among them stays unreviewed (None: every hit was shown). A
    record not screened since hits were kept has only its best match: that
    listed name is cleared for whichever name matched it.
    """
    added: list[ScreeningReview] = []
    if c.screening_hits is None:
        if c.screening_best_match is not None:
            added.append(
                _review(c, None, c.screening_best_match, c.screening_score, actor_name, now)
            )
    else:
        marked: list[dict[str, Any]] = []
        for hit in c.screening_hits:
            if shown is not None and (hit["screened_name"], hit["listed_name"]) not in shown:
                marked.append(hit)
                continue
            if not hit.get("reviewed"):
                added.append(
                    _review(c, hit["screened_name"], hit["listed_name"], hit["score"],
                            actor_name, now)
                )  # fmt: skip
            marked.append({**hit, "reviewed": True})
        # A new list: the JSON column is only written when the value is replaced.
        c.screening_hits = marked
    session.add_all(added)
    return added


def _review(
    c: Customer,
    screened: str | None,
    listed: str | None,
    score: float | None,
    actor_name: str,
    now: datetime,
) -> ScreeningReview:
    return ScreeningReview(
        customer_id=c.id, screened_name=screened, listed_name=listed, score=score,
        cleared_at=now, cleared_by=actor_name,
    )  # fmt: skip


IN_FORCE = ScreeningReview.withdrawn_at.is_(None)


async def reviews_of(session: AsyncSession, customer_id: str) -> list[ScreeningReview]:
    """The customer's reviews in force (not withdrawn)."""
    query = select(ScreeningReview).where(ScreeningReview.customer_id == customer_id, IN_FORCE)
    return list((await session.scalars(query)).all())


async def reviews_of_customers(
    session: AsyncSession, customer_ids: Sequence[str]
) -> dict[str, list[ScreeningReview]]:
    """The reviews in force of a batch of customers (one query: a rescreen's
    batch is small enough for its ids to be bound parameters)."""
    found: dict[str, list[ScreeningReview]] = {}
    query = (select(ScreeningReview)
             .where(IN_FORCE, ScreeningReview.customer_id.in_(customer_ids))
             .order_by(ScreeningReview.id))  # fmt: skip
    for review in await session.scalars(query):
        found.setdefault(review.customer_id, []).append(review)
    return found


async def withdraw_reviews(
    session: AsyncSession, c: Customer, actor_name: str, now: datetime, reason: str | None
) -> list[ScreeningReview]:
    """Withdraw every review of ``c`` in force: each stored hit is unreviewed
    again, and the next ``clear`` is a new review of it. The reviews withdrawn
    (none: nothing was in force)."""
    withdrawn = await reviews_of(session, c.id)
    for review in withdrawn:
        review.withdrawn_at = now
        review.withdrawn_by = actor_name
        review.withdrawn_reason = reason
    if c.screening_hits is not None and any(h.get("reviewed") for h in c.screening_hits):
        # A new list: the JSON column is only written when the value is replaced.
        c.screening_hits = [{**hit, "reviewed": False} for hit in c.screening_hits]
    return withdrawn


def withdrawn_json(reviews: Sequence[ScreeningReview]) -> list[dict[str, Any]]:
    """What was withdrawn, as the audit rows keep it."""
    return [
        {
            "screened_name": r.screened_name,
            "listed_name": r.listed_name,
            "score": r.score,
            "cleared_by": r.cleared_by,
            "cleared_at": rfc3339(r.cleared_at),
        }
        for r in reviews
    ]


WITHDRAW_ACTION = "customer.screening_withdraw"


def record_withdrawal(
    session: AsyncSession,
    actor: AdminActor,
    customer_id: str,
    withdrawn: Sequence[ScreeningReview],
    reason: str | None,
    now: datetime,
) -> None:
    """History and admin-action rows of a withdrawal: who (the rows' actor),
    when, why (``reason``) and each review withdrawn, with who had cleared it."""
    after = {"withdrawn": withdrawn_json(withdrawn), "reason": reason}
    changes = {key: {"before": None, "after": value} for key, value in after.items()}
    session.add(CustomerHistory(customer_id=customer_id, at=now, actor=actor.name,
                                action=WITHDRAW_ACTION, changes=changes))  # fmt: skip
    record_admin_action(session, actor, WITHDRAW_ACTION, "customer", customer_id, None, after, now)
