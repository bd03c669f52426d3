"""Customer record operations shared by the admin API, the CLI, the KYC webhook
and the demo seed. Each function works inside the caller's session and leaves
the commit to it, so a change, its history row and its admin-action row are
one transaction: all or nothing. What a KYC event does to a record is in
``gateway.kyc.own_events`` (the gateway's own shape) and ``gateway.kyc.verdicts``
(a vendor's).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.auth import AdminActor
from gateway.identity.admin_log import record_admin_action
from gateway.identity.secrets import new_id
from gateway.kyc.customer_insert import CustomerExists, insert_new
from gateway.kyc.customer_locks import lock_customers, version_of
from gateway.kyc.listing import MAX_PAGE, list_customers, list_history
from gateway.kyc.owner_screening import NamesScreened, owner_names, screen_names
from gateway.kyc.records import ownership_rows, snapshot, to_out
from gateway.kyc.reviews import (
    hit_pairs,
    hits_json,
    record_clearance,
    record_withdrawal,
    reviews_of,
    withdraw_reviews,
)
from gateway.kyc.schemas import CustomerCreate, CustomerPatch
from gateway.kyc.screening import Screener
from gateway.kyc.tables import Customer, CustomerHistory, ScreeningReview

__all__ = [  # callers use ``service.X``; paging and conversion live in listing and records
    "MAX_PAGE",
    "CustomerExists",
    "CustomerNotFound",
    "create_customer",
    "existing_customer_ids",
    "get_customer",
    "list_customers",
    "list_history",
    "note_unchanged",
    "to_out",
    "update_customer",
]

log = logging.getLogger(__name__)


class CustomerNotFound(LookupError):
    pass


def _diff(before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, Any]:
    skip = {"updated_at", "created_at"}
    old = before or {}
    return {
        k: {"before": old.get(k), "after": v}
        for k, v in after.items()
        if k not in skip and old.get(k) != v
    }


def _screen(
    c: Customer,
    screener: Screener | None,
    now: datetime,
    reviews: Sequence[ScreeningReview],
    warn_unscreened: bool = True,
) -> bool:
    """Screen the current names. A hit no review covers escalates to
    potential_match; a miss never de-escalates: only a compliance user clears
    a match (renaming does not). True when this screening held ``c``."""
    if screener is None:
        if warn_unscreened:
            log.warning("no sanctions list loaded: customer %s not screened", c.id)
        return False
    return _apply_screening(c, screen_names(screener, c), now, reviews, screener.threshold)


def _apply_screening(
    c: Customer,
    screened: NamesScreened,
    now: datetime,
    reviews: Sequence[ScreeningReview],
    threshold: float,
) -> bool:
    """Store the result, every hit with it; a ``clear`` customer is held when
    any hit is not covered by a review (``gateway.kyc.reviews``). A hit a
    review cleared is not raised again, or each rescreen, and each change
    that re-screens the names, would undo every false-positive review.
    True when this moved ``c`` from ``clear`` to ``potential_match``."""
    result = screened.best
    c.screening_list_version = result.list_version
    c.screening_best_match = result.best_match
    c.screening_score = result.score
    c.screened_at = now
    c.screening_threshold = threshold
    c.screening_hits = hits_json(screened.hits, reviews, threshold, c.name)
    unreviewed = any(not hit["reviewed"] for hit in c.screening_hits)
    if unreviewed and c.sanctions_status == "clear":
        c.sanctions_status = "potential_match"
        return True
    return False


def _record(
    session: AsyncSession,
    actor: AdminActor,
    action: str,
    c: Customer,
    before: dict[str, Any] | None,
    now: datetime,
) -> None:
    after = snapshot(c)
    session.add(
        CustomerHistory(
            customer_id=c.id,
            at=now,
            actor=actor.name,
            action=action,
            changes=_diff(before, after),
        )
    )
    record_admin_action(session, actor, action, "customer", c.id, before, after, now)


def note_unchanged(
    session: AsyncSession, actor: AdminActor, action: str, c: Customer, now: datetime
) -> None:
    """History and admin-action rows for an event recorded but not applied
    (no change: ``changes`` is empty, before and after are equal)."""
    _record(session, actor, action, c, snapshot(c), now)


async def get_customer(session: AsyncSession, customer_id: str) -> Customer:
    found = await session.get(Customer, customer_id)
    if found is None:
        raise CustomerNotFound(customer_id)
    return found


async def existing_customer_ids(session: AsyncSession, ids: list[str]) -> set[str]:
    """Which of ``ids`` are already customers (in chunks: bound parameters are limited)."""
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        found.update(await session.scalars(select(Customer.id).where(Customer.id.in_(chunk))))
    return found


async def create_customer(
    session: AsyncSession,
    data: CustomerCreate,
    actor: AdminActor,
    screener: Screener | None,
    now: datetime,
    *,
    warn_unscreened: bool = True,
    known_new: bool = False,
) -> Customer:
    """``warn_unscreened=False``: the caller says once that no list is loaded (the demo seed).
    ``known_new``: the caller has checked the id is free and flushes itself (a bulk
    import: a lookup and a flush per record cost ~2 ms each)."""
    cid = data.id or f"cus_{new_id()}"
    if not known_new and await session.get(Customer, cid) is not None:
        raise CustomerExists(cid)
    c = Customer(
        id=cid,
        name=data.name,
        kind=data.kind,
        citizenships=list(data.citizenships),
        residence=data.residence,
        incorporated_in=data.incorporated_in,
        kyc_level=data.kyc_level,
        kyc_verified_at=data.kyc_verified_at,
        kyc_expires_at=data.kyc_expires_at,
        tier=data.tier,
        attributes=list(data.attributes),
        # The stricter of this and the screening (``_screen`` only escalates):
        # a known confirmed match can be recorded at once, while "clear" never
        # waves through a name the list matches. Clearing is a PATCH (a review).
        sanctions_status=data.sanctions_status,
        status=data.status,
        created_at=now,
        updated_at=now,
        ownership=ownership_rows(data.ownership),
    )
    _screen(c, screener, now, (), warn_unscreened)  # a new record: no review yet
    if known_new:
        session.add(c)
    else:
        await insert_new(session, c)
    _record(session, actor, "customer.create", c, None, now)
    return c



async def update_customer(
    session: AsyncSession,
    customer_id: str,
    patch: CustomerPatch,
    actor: AdminActor,
    screener: Screener | None,
    now: datetime,
    action: str = "customer.update",
    *,
    warn_unscreened: bool = True,
) -> Customer:
    # Locked before it is read (``gateway.kyc.customer_locks``): a clearance
    # clears the hits it was shown, and a rescreen committed between a plain
    # read and this write had its new hits written over (the customer cleared
    # of a hit nobody saw); the rescreen now waits, then screens this again.
    current = await lock_customers(session, [customer_id])
    c = await get_customer(session, customer_id)
    if customer_id in current and current[customer_id] != version_of(c):
        await session.refresh(c)  # loaded earlier in this session, changed since
    before = snapshot(c)
    changes = patch.changes()
    renamed = "name" in changes and changes["name"] != c.name
    names_before = owner_names(c)
    # What a reviewer clearing in this request was shown: the hits stored before it.
    shown = hit_pairs(c.screening_hits)
    for field, value in changes.items():
        if field == "ownership":
            c.ownership = ownership_rows(value)
        elif field != "sanctions_status":
            setattr(c, field, value)
    # New owner names are screened as a new name of the customer's own is.
    if renamed or not set(owner_names(c)) <= set(names_before):
        reviews = await reviews_of(session, c.id) if screener is not None else []
        _screen(c, screener, now, reviews, warn_unscreened)
        if shown is None and c.screening_hits is not None:
            shown = frozenset()  # screened here for the first time: nothing was shown
    # An explicit sanctions decision (compliance review) comes last and wins;
    # clearing clears each hit the reviewer was shown, and only those: a hit
    # this same request's screening found (a listed owner added with the
    # "clear") was seen by nobody, and keeps the customer held.
    # Any other status withdraws every review: the customer is not clear.
    withdrawn: list[ScreeningReview] = []
    if "sanctions_status" in changes:
        c.sanctions_status = changes["sanctions_status"]
        if c.sanctions_status == "clear":
            record_clearance(session, c, actor.name, now, shown)
            if any(not hit.get("reviewed") for hit in c.screening_hits or ()):
                c.sanctions_status = "potential_match"
        else:
            withdrawn = await withdraw_reviews(session, c, actor.name, now, patch.reason)
    c.updated_at = now
    await session.flush()
    _record(session, actor, action, c, before, now)
    if withdrawn:
        record_withdrawal(session, actor, c.id, withdrawn, patch.reason, now)
    return c
