"""What a KYC vendor's verdict (``gateway.kyc.vendors.Verdict``) does to a
customer record. Works in the caller's session and leaves the commit to it,
like ``gateway.kyc.service``: the change, its history row and its admin-action
row are one transaction.

- **Stale**: a verdict whose event time is before the stored
  ``kyc_verified_at`` is not applied (vendors deliver out of order) and is
  recorded as ``customer.kyc_webhook_stale``, as on the gateway's own path.
- **Pass**: ``kyc_level`` becomes the configured vendor level
  (``GATEWAY_KYC_VENDOR_LEVEL``), ``kyc_verified_at`` the event time and
  ``kyc_expires_at`` the event time plus ``GATEWAY_KYC_VENDOR_VALIDITY_DAYS``
  (re-verification periods are a policy choice; no regime fixes one). A pass
  never lowers a customer: one holding a higher level that is still in force
  (e.g. ``kyb_verified`` set by a compliance user) keeps it, its expiry too,
  and the event is recorded as ``customer.kyc_webhook_kept``. An ID check does
  not re-establish a KYB or a clearance, and extending that higher level's
  expiry on the strength of an ID check would be worse.
- **Fail** (Persona declined/failed): ``kyc_level`` drops to the bundle's
  lowest level (``none`` in the bundled policy), whatever it was, and
  ``kyc_expires_at`` is cleared: a failed re-verification withdraws the
  verified level, fail closed. ``kyc_verified_at`` becomes the event time:
  it is the time of the last verdict applied, pass or fail, and it is what
  keeps an older pass delivered late from restoring access. The previous
  values are in the history row, so a compliance user can restore them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.auth import AdminActor
from gateway.kyc.customer_locks import lock_customers
from gateway.kyc.own_events import KycOutcome
from gateway.kyc.schemas import CustomerPatch, as_utc, rfc3339
from gateway.kyc.service import CustomerNotFound, note_unchanged, update_customer
from gateway.kyc.tables import Customer
from gateway.kyc.vendors import Verdict

APPLIED = "customer.kyc_webhook"
STALE = "customer.kyc_webhook_stale"
KEPT = "customer.kyc_webhook_kept"


async def apply_verdict(
    session: AsyncSession,
    verdict: Verdict,
    customer_id: str,
    levels: tuple[str, ...],
    pass_level: str,
    validity: timedelta,
    actor: AdminActor,
    now: datetime,
) -> KycOutcome:
    """``levels`` are the bundle's KYC levels, lowest first; ``pass_level`` is one of them."""
    # Locked before it is read (``gateway.kyc.customer_locks``; SQLite has no
    # FOR UPDATE): two deliveries for one customer are compared and applied in turn.
    await lock_customers(session, [customer_id])
    c = await session.get(Customer, customer_id, populate_existing=True)
    if c is None:
        raise CustomerNotFound(customer_id)
    stored = None if c.kyc_verified_at is None else as_utc(c.kyc_verified_at)
    if stored is not None and verdict.at < stored:
        note_unchanged(session, actor, STALE, c, now)
        return KycOutcome(c, applied=False, reason=(
            f"older than the stored verification: {verdict.event_type} of "
            f"{rfc3339(verdict.at)} is before kyc_verified_at {rfc3339(stored)}"
        ))  # fmt: skip
    if verdict.kind == "pass":
        held = _higher_in_force(c, levels, pass_level, now)
        if held is not None:
            note_unchanged(session, actor, KEPT, c, now)
            return KycOutcome(c, applied=False, reason=held)
        changes = {
            "kyc_level": pass_level,
            "kyc_verified_at": verdict.at,
            "kyc_expires_at": verdict.at + validity,
        }
    else:
        changes = {
            "kyc_level": levels[0] if levels else "none",
            "kyc_verified_at": verdict.at,
            "kyc_expires_at": None,
        }
    patch = CustomerPatch.model_validate(changes)
    updated = await update_customer(session, customer_id, patch, actor, None, now, action=APPLIED)
    return KycOutcome(updated, applied=True)


def _higher_in_force(
    c: Customer, levels: tuple[str, ...], pass_level: str, now: datetime
) -> str | None:
    """Why the customer's level stays (it is above ``pass_level`` and unexpired), or None."""
    rank = {level: i for i, level in enumerate(levels)}
    if rank.get(c.kyc_level, -1) <= rank[pass_level]:
        return None
    expires = None if c.kyc_expires_at is None else as_utc(c.kyc_expires_at)
    if expires is not None and expires <= now:
        return None  # lapsed: the engine serves it as public already, the pass raises it
    until = "without expiry" if expires is None else f"until {rfc3339(expires)}"
    return (
        f"the customer holds KYC level {c.kyc_level!r} {until}, above the vendor level "
        f"{pass_level!r}; a vendor pass does not lower it"
    )
