"""``POST /admin/v1/kyc/webhook``: a KYC vendor reports a verification result.

Authenticated by signature, not bearer token. Header ``x-gateway-kyc-signature``
(``Persona-Signature`` and ``Stripe-Signature`` are accepted too) carries
``t=<unix ts>,v1=<hex HMAC-SHA256 of "{t}.{raw body}">``; several
space-separated pairs (secret rotation) and several ``v1`` in one pair are
accepted, matched against ``settings.kyc_webhook_secret`` and
``kyc_webhook_secret_previous`` in constant time. A signed timestamp further
than ``kyc_webhook_tolerance_seconds`` from now is a replay: 401.

Replayed event id (chosen behaviour): idempotent. The same event id with the
same body answers 200 ``{"duplicate": true}`` and changes nothing; the same id
with a *different* body is 409, since a vendor never reuses an id for other
content. Processed ids are stored in ``kyc_webhook_events`` in the same
transaction as the change, so a crash cannot apply an event without recording
it. Errors (401 signature, 404 unknown customer, 422 body or a ``kyc_level``
the policy bundle in force does not define, 503 unconfigured) change nothing.

Out-of-order delivery: an event whose ``kyc_verified_at`` is older than the
customer's stored one is not applied (it would roll the KYC state back). It
answers 200 ``{"applied": false, "reason": ...}`` so the vendor does not retry,
and is recorded like an applied one: its id in ``kyc_webhook_events`` (a
redelivery is a duplicate), a ``customer.kyc_webhook_stale`` row in the
customer's history and the admin-action log. Applied events answer
``{"applied": true, "customer": ...}``. Fields an event leaves out (e.g.
``kyc_expires_at``) keep their stored values.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from gateway.admin.auth import AdminActor
from gateway.admin.customers import vocabulary_of
from gateway.deps import ServicesDep, SessionDep
from gateway.identity.identifier import invalidate_customer
from gateway.kyc import service
from gateway.kyc.schemas import KycEvent
from gateway.kyc.tables import KycWebhookEvent
from gateway.kyc.vocabulary import unknown_names

router = APIRouter(prefix="/admin/v1", tags=["kyc"])

SIGNATURE_HEADERS = ("x-gateway-kyc-signature", "persona-signature", "stripe-signature")
VENDOR = AdminActor(name="kyc-webhook", role="vendor", token_id=None)


class SignatureError(Exception):
    pass


def sign(secret: str, timestamp: int, body: bytes) -> str:
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _pairs(header: str) -> list[tuple[int, list[str]]]:
    out: list[tuple[int, list[str]]] = []
    for group in header.split():
        ts: int | None = None
        sigs: list[str] = []
        for item in group.split(","):
            key, _, value = item.strip().partition("=")
            if key == "t" and value.isdigit():
                ts = int(value)
            elif key == "v1" and value:
                sigs.append(value.lower())
        if ts is not None and sigs:
            out.append((ts, sigs))
    return out


def verify_signature(
    header: str, body: bytes, secrets: Sequence[str], now: float, tolerance: float
) -> None:
    """Raise SignatureError unless some pair is signed by some secret and is fresh."""
    pairs = _pairs(header)
    if not pairs:
        raise SignatureError("malformed signature header")
    stale = False
    for ts, sigs in pairs:
        expected = [sign(secret, ts, body) for secret in secrets]
        # Check every combination: no early exit that would leak which one matched.
        matched = False
        for sig in sigs:
            for want in expected:
                matched |= hmac.compare_digest(sig.encode(), want.encode())
        if matched:
            if abs(now - ts) <= tolerance:
                return
            stale = True
    raise SignatureError("timestamp outside tolerance" if stale else "signature mismatch")


def _canonical(payload: Any) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


@router.post("/kyc/webhook")
async def kyc_webhook(request: Request, services: ServicesDep, session: SessionDep) -> Any:
    settings = services.settings
    secrets = [s for s in (settings.kyc_webhook_secret, settings.kyc_webhook_secret_previous) if s]
    if not secrets:
        raise HTTPException(503, "KYC webhook secret is not configured")
    header = next((request.headers[h] for h in SIGNATURE_HEADERS if h in request.headers), None)
    if header is None:
        raise HTTPException(401, "missing signature header")
    body = await request.body()
    now = services.clock()
    try:
        verify_signature(
            header, body, secrets, now.timestamp(), settings.kyc_webhook_tolerance_seconds
        )
    except SignatureError as exc:
        raise HTTPException(401, f"invalid signature: {exc}") from exc
    try:
        payload = json.loads(body)
        event = KycEvent.model_validate(payload)
    except (ValueError, ValidationError) as exc:
        raise HTTPException(422, f"invalid event: {exc}") from exc

    seen = await session.get(KycWebhookEvent, event.id)
    if seen is not None:
        return _duplicate(seen, payload)
    unknown = unknown_names({"kyc_level": event.kyc_level}, vocabulary_of(services))
    if unknown:
        raise HTTPException(422, f"invalid event: kyc_level: {unknown[0].message}")
    try:
        outcome = await service.apply_kyc_event(session, event, VENDOR, now)
    except service.CustomerNotFound as exc:
        raise HTTPException(404, f"customer {event.customer_id!r} not found") from exc
    session.add(
        KycWebhookEvent(
            event_id=event.id, customer_id=event.customer_id, received_at=now, payload=payload
        )
    )
    try:
        await session.commit()
    except IntegrityError:
        # A concurrent delivery of the same event committed first: ours is the replay.
        await session.rollback()
        seen = await session.get(KycWebhookEvent, event.id)
        if seen is None:
            raise
        return _duplicate(seen, payload)
    if not outcome.applied:
        # Nothing changed: no cache to drop. 200, or the vendor would retry it forever.
        return {
            "event_id": event.id,
            "duplicate": False,
            "applied": False,
            "reason": outcome.reason,
        }
    await invalidate_customer(services.identifier, event.customer_id)
    return {
        "event_id": event.id,
        "duplicate": False,
        "applied": True,
        "customer": service.to_out(outcome.customer).model_dump(mode="json"),
    }


def _duplicate(seen: KycWebhookEvent, payload: Any) -> dict[str, Any]:
    if _canonical(seen.payload) != _canonical(payload):
        raise HTTPException(409, f"event id {seen.event_id!r} was already used for other content")
    return {"event_id": seen.event_id, "duplicate": True}
