"""KYC vendors' native webhook events, parsed into what the gateway acts on.

Pure functions, no I/O: a signature-checked JSON body goes in, a ``Verdict``
(the vendor passed or failed the customer's identity check), a ``NoVerdict``
(an event that carries no outcome the gateway acts on) or a ``ShapeError``
(not this vendor's event shape: a 422) comes out.

**Persona** (header ``Persona-Signature``). Events are JSON:API documents:
``{"data": {"type": "event", "id": "evt_…", "attributes": {"name":
"inquiry.approved", "created-at": "…", "payload": {"data": {"type": "inquiry",
"id": "inq_…", "attributes": {"status": …, "reference-id": …, …}}}}}}``
(docs.withpersona.com/docs/webhooks, "Example event from webhook"; the
per-event pages under api-reference/webhooks/inquiry-events show the same
envelope). Inquiry statuses (docs.withpersona.com/docs/inquiries-objects,
"Inquiry Model Lifecycle"): ``completed`` when all required checks pass,
``failed`` when one fails, ``expired`` when a pending inquiry times out (24 h
by default), and the optional post-inquiry decisions ``approved`` /
``declined`` / ``needs_review``. Persona recommends the reference id be the
customer's id in your system (docs.withpersona.com/reference-ids), so the
customer is the inquiry's ``reference-id``; an outcome without one cannot be
attributed and is a 422. Delivery order is not guaranteed and the event's
``created-at`` is what orders events server side (docs.withpersona.com
v2021-05-14 webhooks, "Order of received events"): it is the verdict's time.

- pass: ``inquiry.approved``, ``inquiry.completed``. An operator who runs
  Persona's manual review or workflows subscribes the webhook to
  approved/declined only (Persona sends only the enabled events), so a
  completed-then-declined inquiry never raises access in between.
- fail: ``inquiry.declined``, ``inquiry.failed``.
- recorded, no change: ``inquiry.expired`` (abandoned, no verdict on the
  person), ``inquiry.marked-for-review`` (no verdict yet), and
  ``verification.*``: their payload is a single check (``verification/…``)
  whose inquiry is a relationship id, not a customer, and one failed check
  is not the inquiry's outcome (the user may retry within the inquiry).
  Persona's own guidance: most integrations do not need verification events
  and should listen to the inquiry's approved/declined (docs.withpersona.com,
  "Verification submitted" webhook page).

**Stripe Identity** (header ``Stripe-Signature``). A Stripe Event
``{"id": "evt_…", "object": "event", "type": …, "created": <unix>, "data":
{"object": <VerificationSession>}}`` (docs.stripe.com/api/events/object); the
session has ``status``, ``client_reference_id`` ("can be a customer ID … to
reconcile this verification with your internal systems"), ``metadata`` and
``last_error`` (docs.stripe.com/api/identity/verification_sessions/object).
A failed check returns the session to ``requires_input`` with ``last_error``
set and the user may try again (docs.stripe.com/identity/how-sessions-work).
The customer is ``client_reference_id``, else ``metadata.customer_id``.

- pass: ``identity.verification_session.verified``.
- recorded, no change: ``requires_input`` (retryable; a previous, still valid
  verification stays in force), ``canceled`` (the operator invalidated the
  session: no verdict on the person), ``redacted`` (personal data erased; the
  outcome stands), ``created``, ``processing``, and any non-Identity event an
  endpoint subscribed to everything may receive. Stripe has no terminal
  failure, so nothing from Stripe lowers a level; a compliance user does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.kyc.schemas import UtcIn

Vendor = Literal["persona", "stripe"]
VerdictKind = Literal["pass", "fail"]
LABELS: dict[Vendor, str] = {"persona": "Persona", "stripe": "Stripe Identity"}


class ShapeError(ValueError):
    """The body is not this vendor's event; the message says what is missing."""


@dataclass(frozen=True, slots=True)
class Verdict:
    vendor: Vendor
    event_id: str
    event_type: str
    kind: VerdictKind
    at: datetime
    """The vendor's event time: orders late deliveries and starts the validity."""
    customer_id: str | None
    """None: the vendor object names no customer (the caller answers 422)."""
    subject: str
    """The vendor object decided on (``inq_…``, ``vs_…``), for messages and logs."""


@dataclass(frozen=True, slots=True)
class NoVerdict:
    vendor: Vendor
    event_id: str
    event_type: str
    customer_id: str | None
    reason: str


VendorEvent = Verdict | NoVerdict
M = TypeVar("M", bound=BaseModel)

_Lenient = ConfigDict(extra="ignore", populate_by_name=True)
EventId = Field(min_length=1, max_length=200)


# --- Persona ----------------------------------------------------------------


class _PersonaObject(BaseModel):
    model_config = _Lenient
    type: str
    id: str
    attributes: dict[str, Any] = Field(default_factory=dict)


class _PersonaPayload(BaseModel):
    model_config = _Lenient
    data: _PersonaObject


class _PersonaEventAttributes(BaseModel):
    model_config = _Lenient
    name: str = Field(min_length=1)
    created_at: UtcIn = Field(alias="created-at")
    payload: _PersonaPayload


class _PersonaEventData(BaseModel):
    model_config = _Lenient
    type: Literal["event"]
    id: str = EventId
    attributes: _PersonaEventAttributes


class _PersonaEvent(BaseModel):
    model_config = _Lenient
    data: _PersonaEventData


PERSONA_VERDICTS: dict[str, VerdictKind] = {
    "inquiry.approved": "pass",
    "inquiry.completed": "pass",
    "inquiry.declined": "fail",
    "inquiry.failed": "fail",
}
PERSONA_NO_CHANGE: dict[str, str] = {
    "inquiry.expired": "the inquiry expired before a verdict; a previous verification stays "
    "in force",
    "inquiry.marked-for-review": "the inquiry awaits review; its approved or declined event "
    "decides",
}


def persona_event(payload: Any) -> VendorEvent:
    event = _parse(_PersonaEvent, payload).data
    name = event.attributes.name
    obj = event.attributes.payload.data
    reference = obj.attributes.get("reference-id")
    customer = reference if isinstance(reference, str) and reference else None
    kind = PERSONA_VERDICTS.get(name)
    if kind is None:
        if name.startswith("verification."):
            reason = (
                "a verification event reports one check of an inquiry, not its outcome; "
                "the inquiry's approved/completed/declined/failed event decides"
            )
        else:
            reason = PERSONA_NO_CHANGE.get(name, f"{name} carries no KYC outcome")
        return NoVerdict("persona", event.id, name, customer, reason)
    if obj.type != "inquiry":
        raise ShapeError(
            f"data.attributes.payload.data.type: {name} must carry an inquiry, not {obj.type!r}"
        )
    return Verdict("persona", event.id, name, kind, event.attributes.created_at, customer, obj.id)


# --- Stripe Identity ----------------------------------------------------------


class _StripeData(BaseModel):
    model_config = _Lenient
    object: dict[str, Any]


class _StripeEvent(BaseModel):
    model_config = _Lenient
    id: str = EventId
    object: Literal["event"]
    type: str = Field(min_length=1)
    # Seconds since the epoch; the bound keeps datetime conversion in range.
    created: int = Field(ge=0, le=253_402_300_799)
    data: _StripeData


class _StripeSession(BaseModel):
    model_config = _Lenient
    id: str
    object: Literal["identity.verification_session"]
    status: str
    client_reference_id: str | None = None
    metadata: dict[str, Any] | None = None
    last_error: dict[str, Any] | None = None


SESSION_EVENT = "identity.verification_session."
STRIPE_NO_CHANGE: dict[str, str] = {
    "created": "a session was created; no verification outcome yet",
    "processing": "the session is being processed; no verification outcome yet",
    "canceled": "the session was canceled; no verdict on the person, a previous "
    "verification stays in force",
    "redacted": "the session's personal data was redacted; its outcome stands",
}


def stripe_event(payload: Any) -> VendorEvent:
    event = _parse(_StripeEvent, payload)
    if not event.type.startswith(SESSION_EVENT):
        return NoVerdict(
            "stripe", event.id, event.type, None, f"{event.type} is not a Stripe Identity event"
        )
    try:
        session = _StripeSession.model_validate(event.data.object)
    except ValidationError as exc:
        raise ShapeError(_errors(exc, "data.object.")) from None
    customer = _stripe_customer(session)
    status = event.type.removeprefix(SESSION_EVENT)
    if status == "verified":
        at = datetime.fromtimestamp(event.created, UTC)
        return Verdict("stripe", event.id, event.type, "pass", at, customer, session.id)
    if status == "requires_input":
        code = (session.last_error or {}).get("code")
        why = f"the last check failed ({code})" if code else "the session needs the user's input"
        reason = f"{why}; the user may retry, a previous verification stays in force"
    else:
        reason = STRIPE_NO_CHANGE.get(status, f"{event.type} carries no KYC outcome")
    return NoVerdict("stripe", event.id, event.type, customer, reason)


def _stripe_customer(session: _StripeSession) -> str | None:
    if session.client_reference_id:
        return session.client_reference_id
    fallback = (session.metadata or {}).get("customer_id")
    return fallback if isinstance(fallback, str) and fallback else None


# --- shared -------------------------------------------------------------------


def parse(vendor: Vendor, payload: Any) -> VendorEvent:
    return persona_event(payload) if vendor == "persona" else stripe_event(payload)


def _parse(model: type[M], payload: Any) -> M:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise ShapeError(_errors(exc, "")) from None


def _errors(exc: ValidationError, prefix: str) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = prefix + ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc or 'body'}: {err['msg']}")
    return "; ".join(parts)
