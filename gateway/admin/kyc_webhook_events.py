"""The KYC webhook's processed event ids (``kyc_webhook_events``), which make a
redelivery idempotent (``gateway.admin.kyc_webhook``, "Replayed event id").

An event's id is stored in the transaction that applies it, committed here,
so a crash cannot apply an event without recording it; a concurrent delivery
of the same event that commits first makes this one the replay. A replay
with the same body answers as a duplicate; with another body it is 409.

Separate from the route, which authenticates and parses each sender's shape:
this is the one bookkeeping every shape shares.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import HTTPException
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.kyc.tables import KycWebhookEvent


def _canonical(payload: Any) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


async def record_event(
    session: AsyncSession, key: str, customer_id: str, payload: Any, now: datetime
) -> KycWebhookEvent | None:
    """Store the processed event id with the change and commit. None when done;
    the stored row when a concurrent delivery of the same event committed first
    (ours is then the replay and was rolled back)."""
    session.add(
        KycWebhookEvent(event_id=key, customer_id=customer_id, received_at=now, payload=payload)
    )
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        seen = await session.get(KycWebhookEvent, key)
        if seen is None:
            raise
        return seen
    return None


def answer_duplicate(seen: KycWebhookEvent, payload: Any, event_id: str) -> dict[str, Any]:
    if _canonical(seen.payload) != _canonical(payload):
        raise HTTPException(409, f"event id {event_id!r} was already used for other content")
    return {"event_id": event_id, "duplicate": True}
