"""What the gateway's own KYC event (``KycEvent``, the ``x-gateway-kyc-signature``
webhook) does to a customer record: applied unless it is older than the
verification already stored.

Separate from ``gateway.kyc.service``, the record operations every caller
shares (create, update, history): this is the webhook's ordering rule on top
of them, as ``gateway.kyc.verdicts`` is for a vendor's native events, which
answer with the same ``KycOutcome``. Works in the caller's session and leaves
the commit to it, like both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.auth import AdminActor
from gateway.kyc.customer_locks import lock_customers
from gateway.kyc.records import opt_utc
from gateway.kyc.schemas import CustomerPatch, KycEvent, rfc3339
from gateway.kyc.service import CustomerNotFound, note_unchanged, update_customer
from gateway.kyc.tables import Customer

KYC_EVENT_FIELDS = frozenset({"kyc_level", "kyc_verified_at", "kyc_expires_at"})


@dataclass(frozen=True, slots=True)
class KycOutcome:
    customer: Customer
    applied: bool
    reason: str | None = None
    """Why the event was not applied (None when it was)."""


async def apply_kyc_event(
    session: AsyncSession, event: KycEvent, actor: AdminActor, now: datetime
) -> KycOutcome:
    """Apply a vendor verdict unless it is older than the one already stored.

    Vendors deliver out of order (retries, parallel queues): an event whose
    ``kyc_verified_at`` is before the stored one must not roll the KYC state
    back. It is recorded (history and admin-action rows, action
    ``customer.kyc_webhook_stale``, no change) and not applied. An event
    without ``kyc_verified_at`` cannot be ordered and is applied.
    """
    # Locked before it is read (FOR UPDATE on PostgreSQL, the write lock on
    # SQLite, where the read ran outside any transaction and serialised
    # nothing): two deliveries for one customer are compared and applied one
    # after the other, and an older one read first cannot roll a newer back.
    await lock_customers(session, [event.customer_id])
    c = await session.get(Customer, event.customer_id, populate_existing=True)
    if c is None:
        raise CustomerNotFound(event.customer_id)
    stored = opt_utc(c.kyc_verified_at)
    if event.kyc_verified_at is not None and stored is not None and event.kyc_verified_at < stored:
        reason = (
            f"older than the stored verification: kyc_verified_at "
            f"{rfc3339(event.kyc_verified_at)} is before {rfc3339(stored)}"
        )
        note_unchanged(session, actor, "customer.kyc_webhook_stale", c, now)
        return KycOutcome(c, applied=False, reason=reason)
    # Only what the vendor sent: a field left out of the event is not in
    # model_fields_set and stays as stored (an explicit null still clears it).
    sent = event.model_fields_set & KYC_EVENT_FIELDS
    patch = CustomerPatch.model_validate({name: getattr(event, name) for name in sent})
    updated = await update_customer(
        session, event.customer_id, patch, actor, None, now, action="customer.kyc_webhook"
    )
    return KycOutcome(updated, applied=True)
