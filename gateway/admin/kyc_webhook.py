"""``POST /admin/v1/kyc/webhook``: a KYC vendor reports a verification result.

Authenticated by signature, not bearer token (``gateway.kyc.signatures``:
``t=<unix ts>,v1=<hex HMAC-SHA256 of "{t}.{raw body}">``, constant-time
compare, several pairs or ``v1`` values accepted). A signed timestamp further
than ``kyc_webhook_tolerance_seconds`` from now is a replay: 401, with the
same answer as a wrong signature ("invalid signature"), so a replayed capture
learns nothing; the server log says which it was.

The header names the sender and so the body's shape:

- ``x-gateway-kyc-signature``: the gateway's own event (``KycEvent``: id,
  customer_id, kyc_level, times), checked against ``kyc_webhook_secret`` and
  ``kyc_webhook_secret_previous``.
- ``Persona-Signature`` / ``Stripe-Signature``: the vendor's native event,
  parsed by ``gateway.kyc.vendors`` and applied by ``gateway.kyc.verdicts``
  (what pass and fail do, and which events carry no outcome, is documented
  there). Checked against the vendor's own secret pair
  (``kyc_persona_secret[_previous]``, ``kyc_stripe_secret[_previous]``) when
  set, else against ``kyc_webhook_secret[_previous]`` as before. A body that
  is not the vendor's shape is 422. While a vendor has no secret of its own,
  its header may still carry the gateway's own event (recognised by a
  top-level ``kyc_level``), as it could before native events were read: a
  relay signing with the shared secret keeps working. A vendor's own secret
  never authorises the own shape, which can set any level: whoever holds
  Persona's secret can only say what Persona says.

Replayed event id (chosen behaviour): idempotent. The same event id with the
same body answers 200 ``{"duplicate": true}`` and changes nothing; the same id
with a *different* body is 409, since a vendor never reuses an id for other
content. Processed ids are stored in ``kyc_webhook_events``
(``gateway.admin.kyc_webhook_events``) in the same transaction as the change,
so a crash cannot apply an event without recording it; native ids are
stored as ``persona:<id>`` / ``stripe:<id>``, so they never collide with each
other nor with own-shape ids a relay may have copied from the vendor. Errors
(401 signature, 404 unknown customer, 422 body, a ``kyc_level`` the policy
bundle in force does not define or an outcome naming no customer, 503
unconfigured) change and record nothing, so the vendor retries.

Out-of-order delivery: an event older than the customer's stored
``kyc_verified_at`` is not applied (it would roll the KYC state back). It
answers 200 ``{"applied": false, "reason": ...}`` so the vendor does not retry,
and is recorded like an applied one: its id in ``kyc_webhook_events`` (a
redelivery is a duplicate), a ``customer.kyc_webhook_stale`` row in the
customer's history and the admin-action log. So an event dated after now
(beyond the signature tolerance), own or native, is 422: applied, it would
outrank every later one, a downgrade included, until its date. Native events that carry no
outcome (Stripe ``created``, Persona ``inquiry.expired``, …) answer the same
200 ``applied: false`` with a reason and are recorded in
``kyc_webhook_events`` only; they need no known customer. Applied events
answer ``{"applied": true, "customer": ...}`` and drop the customer from the
principal cache. Own-shape fields an event leaves out (e.g.
``kyc_expires_at``) keep their stored values.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.auth import AdminActor
from gateway.admin.customers import vocabulary_of
from gateway.admin.kyc_webhook_events import answer_duplicate, record_event
from gateway.deps import ServicesDep, SessionDep
from gateway.identity.invalidation import invalidate_customer
from gateway.kyc import service, vendors, verdicts
from gateway.kyc.own_events import KycOutcome, apply_kyc_event
from gateway.kyc.schemas import KycEvent, rfc3339
from gateway.kyc.signatures import MALFORMED, SignatureError, sign, verify_signature
from gateway.kyc.tables import KycWebhookEvent
from gateway.kyc.vocabulary import unknown_names
from gateway.services import Services
from gateway.settings import Settings

__all__ = ["SIGNATURE_HEADERS", "router", "sign"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/admin/v1", tags=["kyc"])

OWN_HEADER = "x-gateway-kyc-signature"
VENDOR_HEADERS: dict[str, vendors.Vendor] = {
    "persona-signature": "persona",
    "stripe-signature": "stripe",
}
SIGNATURE_HEADERS = (OWN_HEADER, *VENDOR_HEADERS)
VENDOR = AdminActor(name="kyc-webhook", role="vendor", token_id=None)
SECRET_VARS = {"persona": "GATEWAY_KYC_PERSONA_SECRET", "stripe": "GATEWAY_KYC_STRIPE_SECRET"}
MAX_CUSTOMER_ID = 128


def _shared_secrets(settings: Settings) -> list[str]:
    return [s for s in (settings.kyc_webhook_secret, settings.kyc_webhook_secret_previous) if s]


def _vendor_secrets(settings: Settings, vendor: vendors.Vendor) -> list[str]:
    pair = (
        (settings.kyc_persona_secret, settings.kyc_persona_secret_previous)
        if vendor == "persona"
        else (settings.kyc_stripe_secret, settings.kyc_stripe_secret_previous)
    )
    return [s for s in pair if s]


def _secrets(settings: Settings, vendor: vendors.Vendor | None) -> list[str]:
    own = [] if vendor is None else _vendor_secrets(settings, vendor)
    return own or _shared_secrets(settings)


def _own_shape(payload: Any) -> bool:
    # Neither vendor's event has a top-level kyc_level; the gateway's own always does.
    return isinstance(payload, dict) and "kyc_level" in payload


@router.post("/kyc/webhook")
async def kyc_webhook(request: Request, services: ServicesDep, session: SessionDep) -> Any:
    settings = services.settings
    if not any(_secrets(settings, v) for v in (None, "persona", "stripe")):
        raise HTTPException(503, "KYC webhook secret is not configured")
    name = next((h for h in SIGNATURE_HEADERS if h in request.headers), None)
    if name is None:
        raise HTTPException(401, "missing signature header")
    vendor = VENDOR_HEADERS.get(name)
    secrets = _secrets(settings, vendor)
    if not secrets:
        if vendor is None:
            raise HTTPException(
                503,
                f"KYC webhook secret is not configured: set GATEWAY_KYC_WEBHOOK_SECRET for "
                f"{OWN_HEADER}",
            )
        raise HTTPException(
            503,
            f"no secret is configured for {vendors.LABELS[vendor]} webhooks: "
            f"set {SECRET_VARS[vendor]} (or GATEWAY_KYC_WEBHOOK_SECRET)",
        )
    body = await request.body()
    now = services.clock()
    try:
        verify_signature(
            request.headers[name], body, secrets, now.timestamp(),
            settings.kyc_webhook_tolerance_seconds,
        )  # fmt: skip
    except SignatureError as exc:
        # A stale timestamp and a wrong signature get one answer: "stale" would
        # confirm to whoever replays a captured request that its signature is
        # genuine. The operator's log keeps which it was.
        log.warning("KYC webhook refused (%s): %s", name, exc)
        detail = f"invalid signature: {MALFORMED}" if str(exc) == MALFORMED else "invalid signature"
        raise HTTPException(401, detail) from exc
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise HTTPException(422, f"invalid event: {exc}") from exc
    if vendor is None or (not _vendor_secrets(settings, vendor) and _own_shape(payload)):
        return await _own_event(payload, services, session, now)
    return await _vendor_event(vendor, payload, services, session, now)


async def _own_event(
    payload: Any, services: Services, session: AsyncSession, now: datetime
) -> dict[str, Any]:
    try:
        event = KycEvent.model_validate(payload)
    except ValidationError as exc:
        raise HTTPException(422, f"invalid event: {exc}") from exc
    seen = await session.get(KycWebhookEvent, event.id)
    if seen is not None:
        return answer_duplicate(seen, payload, event.id)
    tolerance = timedelta(seconds=services.settings.kyc_webhook_tolerance_seconds)
    if event.kyc_verified_at is not None and event.kyc_verified_at > now + tolerance:
        raise HTTPException(
            422, f"invalid event: kyc_verified_at {rfc3339(event.kyc_verified_at)} is in the "
            "future: not applied",
        )
    unknown = unknown_names({"kyc_level": event.kyc_level}, vocabulary_of(services))
    if unknown:
        raise HTTPException(422, f"invalid event: kyc_level: {unknown[0].message}")
    try:
        outcome = await apply_kyc_event(session, event, VENDOR, now)
    except service.CustomerNotFound as exc:
        raise HTTPException(404, f"customer {event.customer_id!r} not found") from exc
    raced = await record_event(session, event.id, event.customer_id, payload, now)
    if raced is not None:
        return answer_duplicate(raced, payload, event.id)
    return await _answer(services, {"event_id": event.id, "duplicate": False}, outcome, None)


async def _vendor_event(
    vendor: vendors.Vendor,
    payload: Any,
    services: Services,
    session: AsyncSession,
    now: datetime,
) -> dict[str, Any]:
    label = vendors.LABELS[vendor]
    try:
        event = vendors.parse(vendor, payload)
    except vendors.ShapeError as exc:
        raise HTTPException(
            422,
            f"not a {label} webhook event: {exc}. The {label} signature header carries "
            f"{label}'s own event JSON; the gateway's own event shape is signed with "
            f"{OWN_HEADER}",
        ) from exc
    key = f"{vendor}:{event.event_id}"
    seen = await session.get(KycWebhookEvent, key)
    if seen is not None:
        return answer_duplicate(seen, payload, event.event_id)
    answer: dict[str, Any] = {
        "event_id": event.event_id,
        "vendor": vendor,
        "event_type": event.event_type,
        "duplicate": False,
    }
    if isinstance(event, vendors.NoVerdict):
        # Stored for look-up only; a reference too long to be a customer id is dropped.
        ref = event.customer_id or ""
        ref = ref if len(ref) <= MAX_CUSTOMER_ID else ""
        raced = await record_event(session, key, ref, payload, now)
        if raced is not None:
            return answer_duplicate(raced, payload, event.event_id)
        return {**answer, "applied": False, "reason": event.reason}
    customer_id = _customer_of(event, services.settings, now)
    levels = vocabulary_of(services).kyc_levels
    level = services.settings.kyc_vendor_level
    if event.kind == "pass" and level not in levels:
        # The operator's configuration, not the vendor's event, is wrong: 503
        # and nothing recorded, so the vendor's retry applies it once fixed.
        log.error("GATEWAY_KYC_VENDOR_LEVEL %r is not a KYC level of the policy bundle", level)
        raise HTTPException(
            503,
            f"GATEWAY_KYC_VENDOR_LEVEL {level!r} is not a KYC level of the loaded policy "
            f"bundle (allowed: {', '.join(levels)}); the event was not applied",
        )
    actor = AdminActor(name=f"{VENDOR.name}:{vendor}", role=VENDOR.role, token_id=None)
    validity = timedelta(days=services.settings.kyc_vendor_validity_days)
    try:
        outcome = await verdicts.apply_verdict(
            session, event, customer_id, levels, level, validity, actor, now
        )
    except service.CustomerNotFound as exc:
        raise HTTPException(404, f"customer {customer_id!r} not found") from exc
    raced = await record_event(session, key, customer_id, payload, now)
    if raced is not None:
        return answer_duplicate(raced, payload, event.event_id)
    log.info("KYC %s %s (%s, %s) for customer %s: %s", label, event.event_type, event.subject,
             event.kind, customer_id, "applied" if outcome.applied else outcome.reason)  # fmt: skip
    return await _answer(services, answer, outcome, customer_id)


def _customer_of(event: vendors.Verdict, settings: Settings, now: datetime) -> str:
    """The customer a verdict is about, or a 422 saying why it cannot be applied."""
    if event.customer_id is None:
        where = "reference-id" if event.vendor == "persona" else (
            "client_reference_id (or metadata.customer_id)")  # fmt: skip
        raise HTTPException(
            422,
            f"{event.event_type} for {event.subject} names no customer: create it with the "
            f"gateway customer id as its {where}",
        )
    # Events are created before they are sent: one dated after the signed,
    # fresh timestamp is a vendor clock fault; applied, it would outrank every
    # later event (kyc_verified_at) until its date.
    if event.at > now + timedelta(seconds=settings.kyc_webhook_tolerance_seconds):
        raise HTTPException(
            422, f"{event.event_type} is dated {rfc3339(event.at)}, in the future: not applied"
        )
    return event.customer_id


async def _answer(
    services: Services, answer: dict[str, Any], outcome: KycOutcome, customer_id: str | None
) -> dict[str, Any]:
    if not outcome.applied:
        # Nothing changed: no cache to drop. 200, or the vendor would retry it forever.
        return {**answer, "applied": False, "reason": outcome.reason}
    await invalidate_customer(services.identifier, customer_id or outcome.customer.id)
    customer = service.to_out(outcome.customer).model_dump(mode="json")
    return {**answer, "applied": True, "customer": customer}
