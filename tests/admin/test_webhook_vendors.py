"""The KYC webhook fed the vendors' native events (Persona, Stripe Identity),
signed exactly as they sign them, through the real admin app and database.

Payloads follow the vendors' documented examples, with the fields a real
event carries that the gateway does not read (relationships, included
objects, ``livemode``, ``request``, …): see ``gateway.kyc.vendors``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from gateway.admin.kyc_webhook import sign
from gateway.kyc.tables import Customer, KycWebhookEvent
from tests.admin.conftest import WEBHOOK_SECRET, WEBHOOK_SECRET_OLD, AdminEnv
from tests.support.identity_app import make_settings

URL = "/admin/v1/kyc/webhook"
PERSONA_SECRET = "wbhsec_persona_current"
PERSONA_SECRET_OLD = "wbhsec_persona_previous"
STRIPE_SECRET = "whsec_stripe_current"
# The conftest clock reads 2026-03-01T12:00:00Z.
T_0950 = "2026-03-01T09:50:00.000Z"
T_1100 = "2026-03-01T11:00:00.000Z"
T_1159 = "2026-03-01T11:59:00.120Z"


def persona(
    name: str = "inquiry.approved",
    evt: str = "evt_XGuYWp7WuDzNxie5z16s7sGJ",
    reference: str | None = "w1",
    at: str = T_1159,
    status: str | None = None,
) -> bytes:
    """A Persona inquiry event as its webhooks send it (JSON:API, pretty-printed)."""
    inquiry = {
        "type": "inquiry",
        "id": "inq_2CVZ4HyVg7qaboXz2PUHknAn",
        "attributes": {
            "status": status or name.removeprefix("inquiry."),
            "reference-id": reference,
            "note": None,
            "behaviors": {"request-spoof-attempts": 0, "user-agent-spoof-attempts": 0},
            "tags": [],
            "creator": "API",
            "reviewer-comment": None,
            "created-at": "2026-03-01T11:40:00.000Z",
            "started-at": "2026-03-01T11:41:02.000Z",
            "completed-at": "2026-03-01T11:44:51.000Z",
            "failed-at": None,
            "decisioned-at": "2026-03-01T11:58:59.000Z",
            "expired-at": None,
            "redacted-at": None,
            "name-first": "Wanda",
            "name-last": "Maximoff",
            "birthdate": "1989-02-10",
            "fields": {"name-first": {"type": "string", "value": "Wanda"}},
        },
        "relationships": {
            "account": {"data": {"type": "account", "id": "act_ySMwhCvFSKbS8sW4jnHvEs1V"}},
            "template": {"data": None},
            "inquiry-template": {"data": {"type": "inquiry-template", "id": "itmpl_z2so7W2"}},
            "reports": {"data": []},
            "verifications": {
                "data": [
                    {"type": "verification/government-id", "id": "ver_KnqQRXmxmtquRE65CHTzymhR"},
                    {"type": "verification/selfie", "id": "ver_2aguhcwq66zcmqipmrqjxw68"},
                ]
            },
            "sessions": {"data": [{"type": "inquiry-session", "id": "iqse_Bd1HwKh4f"}]},
            "documents": {"data": []},
            "selfies": {"data": []},
        },
    }
    body = {
        "data": {
            "type": "event",
            "id": evt,
            "attributes": {
                "name": name,
                "payload": {
                    "data": inquiry,
                    "included": [
                        {
                            "type": "verification/government-id",
                            "id": "ver_KnqQRXmxmtquRE65CHTzymhR",
                            "attributes": {
                                "status": "passed",
                                "country-code": "US",
                                "created-at": "2026-03-01T11:41:29.000Z",
                            },
                        }
                    ],
                },
                "created-at": at,
                "redacted-at": None,
            },
        }
    }
    return json.dumps(body, indent=2).encode()


def persona_verification(name: str = "verification.passed", evt: str = "evt_ver1") -> bytes:
    verification = {
        "type": "verification/government-id",
        "id": "ver_KnqQRXmxmtquRE65CHTzymhR",
        "attributes": {
            "status": name.removeprefix("verification."),
            "country-code": "US",
            "created-at": "2026-03-01T11:41:29.000Z",
            "checks": [],
        },
        "relationships": {
            "inquiry": {"data": {"type": "inquiry", "id": "inq_2CVZ4Hy"}},
            "template": {"data": None},
        },
    }
    body = {
        "data": {
            "type": "event",
            "id": evt,
            "attributes": {"name": name, "payload": {"data": verification}, "created-at": T_1159},
        }
    }
    return json.dumps(body).encode()


def stripe(
    kind: str = "verified",
    evt: str = "evt_1NuNAOLkdIwHu7ixUMi4ZCWr",
    reference: str | None = "w1",
    metadata: dict[str, str] | None = None,
    created: datetime = datetime(2026, 3, 1, 11, 59, tzinfo=UTC),
    last_error: dict[str, str] | None = None,
) -> bytes:
    """A Stripe Identity event as Stripe sends it."""
    session = {
        "id": "vs_1NuNAILkdIwHu7ixh7OtGMLw",
        "object": "identity.verification_session",
        "client_reference_id": reference,
        "client_secret": None,
        "created": int(created.timestamp()) - 300,
        "last_error": last_error,
        "last_verification_report": "vr_1NuNAfLkdIwHu7ixd0dzXs1j" if kind == "verified" else None,
        "livemode": False,
        "metadata": metadata or {},
        "options": {"document": {"require_matching_selfie": True}},
        "provided_details": {"email": "wanda@example.com"},
        "redaction": {"status": "redacted"} if kind == "redacted" else None,
        "related_customer": None,
        "status": {"created": "requires_input", "redacted": "verified"}.get(kind, kind),
        "type": "document",
        "url": None,
    }
    body = {
        "id": evt,
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(created.timestamp()),
        "data": {"object": session},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": f"identity.verification_session.{kind}",
    }
    return json.dumps(body).encode()


def now_ts(env: AdminEnv) -> int:
    return int(env.clock.now.timestamp())


def persona_header(body: bytes, ts: int, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    return {"Persona-Signature": f"t={ts},v1={sign(secret, ts, body)}"}


def stripe_header(body: bytes, ts: int, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    # Stripe adds a v0 signature (test mode); receivers check v1 only.
    return {"Stripe-Signature": f"t={ts},v1={sign(secret, ts, body)},v0=6ffbb59b2300aae6"}


async def send(env: AdminEnv, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return await env.client.post(
        URL, content=body, headers={**headers, "content-type": "application/json"}
    )


async def to_persona(env: AdminEnv, body: bytes, secret: str = WEBHOOK_SECRET) -> httpx.Response:
    return await send(env, body, persona_header(body, now_ts(env), secret))


async def to_stripe(env: AdminEnv, body: bytes, secret: str = WEBHOOK_SECRET) -> httpx.Response:
    return await send(env, body, stripe_header(body, now_ts(env), secret))


def ok(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


async def customer(env: AdminEnv, cid: str = "w1", **record: Any) -> None:
    r = await env.client.post(
        "/admin/v1/customers",
        json={"id": cid, "name": "Wanda", **record},
        headers=env.auth("admin"),
    )
    assert r.status_code == 201, r.text


async def stored(env: AdminEnv, cid: str = "w1") -> Customer:
    async with env.services.sessions() as session:
        c = await session.get(Customer, cid)
        assert c is not None
        return c


async def recorded(env: AdminEnv) -> list[str]:
    async with env.services.sessions() as session:
        rows = await session.scalars(select(KycWebhookEvent.event_id))
        return sorted(rows)


async def history(env: AdminEnv, cid: str = "w1") -> list[dict[str, Any]]:
    r = await env.client.get(f"/admin/v1/customers/{cid}/history", headers=env.auth("admin"))
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=value.tzinfo or UTC)


def use(env: AdminEnv, **settings: Any) -> None:
    env.services.settings = env.services.settings.model_copy(update=settings)


# --- pass --------------------------------------------------------------------


async def test_persona_approved_raises_the_level_and_sets_the_expiry(env: AdminEnv) -> None:
    await customer(env)
    out = ok(await to_persona(env, persona()))
    assert out["applied"] is True and out["duplicate"] is False
    assert out["event_id"] == "evt_XGuYWp7WuDzNxie5z16s7sGJ" and out["vendor"] == "persona"
    assert out["customer"]["kyc_level"] == "id_verified"
    # Verified at the event's created-at; valid 365 days from it (the defaults).
    assert out["customer"]["kyc_verified_at"] == "2026-03-01T11:59:00.120000Z"
    assert out["customer"]["kyc_expires_at"] == "2027-03-01T11:59:00.120000Z"
    assert await recorded(env) == ["persona:evt_XGuYWp7WuDzNxie5z16s7sGJ"]
    items = await history(env)
    assert [(i["action"], i["actor"]) for i in items] == [
        ("customer.create", "test-admin"),
        ("customer.kyc_webhook", "kyc-webhook:persona"),
    ]
    assert items[-1]["changes"]["kyc_level"] == {"before": "none", "after": "id_verified"}
    logged = await env.client.get(
        "/admin/v1/admin-actions",
        params={"action": "customer.kyc_webhook"},
        headers=env.auth("auditor"),
    )
    assert [(a["actor"], a["target_id"]) for a in logged.json()["items"]] == [
        ("kyc-webhook:persona", "w1")
    ]


async def test_persona_completed_is_a_pass_too(env: AdminEnv) -> None:
    await customer(env)
    out = ok(await to_persona(env, persona("inquiry.completed")))
    assert out["applied"] is True and out["customer"]["kyc_level"] == "id_verified"


async def test_stripe_verified_maps_client_reference_id_then_metadata(env: AdminEnv) -> None:
    await customer(env, "w1")
    await customer(env, "w2")
    out = ok(await to_stripe(env, stripe()))
    assert out["applied"] is True and out["vendor"] == "stripe"
    assert out["customer"]["id"] == "w1" and out["customer"]["kyc_level"] == "id_verified"
    assert out["customer"]["kyc_verified_at"] == "2026-03-01T11:59:00Z"
    assert out["customer"]["kyc_expires_at"] == "2027-03-01T11:59:00Z"
    # No client_reference_id: metadata.customer_id names the customer.
    body = stripe(evt="evt_meta", reference=None, metadata={"customer_id": "w2", "plan": "pro"})
    assert ok(await to_stripe(env, body))["customer"]["id"] == "w2"
    assert (await stored(env, "w2")).kyc_level == "id_verified"
    assert [i["actor"] for i in await history(env, "w2")][-1] == "kyc-webhook:stripe"


async def test_vendor_level_and_validity_are_settings(env: AdminEnv) -> None:
    await customer(env)
    use(env, kyc_vendor_level="email_verified", kyc_vendor_validity_days=30)
    out = ok(await to_stripe(env, stripe()))
    assert out["customer"]["kyc_level"] == "email_verified"
    assert out["customer"]["kyc_expires_at"] == "2026-03-31T11:59:00Z"


async def test_a_vendor_level_the_bundle_lacks_is_503_and_records_nothing(env: AdminEnv) -> None:
    await customer(env)
    use(env, kyc_vendor_level="passport_checked")
    r = await to_persona(env, persona())
    assert r.status_code == 503 and "passport_checked" in r.json()["detail"]
    assert await recorded(env) == [] and (await stored(env)).kyc_level == "none"
    # Fixed configuration: the vendor's retry of the same event applies.
    use(env, kyc_vendor_level="id_verified")
    assert ok(await to_persona(env, persona()))["applied"] is True


def test_vendor_settings_are_validated(tmp_path: Any) -> None:
    for bad in (
        {"kyc_vendor_level": "ID Verified"},
        {"kyc_vendor_validity_days": 0},
        {"kyc_webhook_tolerance_seconds": 0},
    ):
        with pytest.raises(ValidationError):
            make_settings(tmp_path, **bad)
    blank = make_settings(tmp_path, kyc_stripe_secret="  ", kyc_persona_secret="")
    assert blank.kyc_stripe_secret is None and blank.kyc_persona_secret is None
    defaults = make_settings(tmp_path)
    assert (defaults.kyc_vendor_level, defaults.kyc_vendor_validity_days) == ("id_verified", 365)


async def test_a_pass_never_lowers_a_higher_level_in_force(env: AdminEnv) -> None:
    await customer(env, kyc_level="kyb_verified", kyc_expires_at="2026-09-01T00:00:00Z")
    out = ok(await to_persona(env, persona()))
    assert out["applied"] is False and "kyb_verified" in out["reason"]
    c = await stored(env)
    assert c.kyc_level == "kyb_verified" and utc(c.kyc_expires_at) == datetime(
        2026, 9, 1, tzinfo=UTC
    )
    items = await history(env)
    assert items[-1]["action"] == "customer.kyc_webhook_kept" and items[-1]["changes"] == {}
    # Once that level has lapsed, a pass raises the customer again.
    env.clock.now = datetime(2026, 9, 2, tzinfo=UTC)
    out = ok(await to_persona(env, persona(evt="evt_later", at="2026-09-01T23:59:00Z")))
    assert out["applied"] is True and out["customer"]["kyc_level"] == "id_verified"


# --- fail and no outcome -------------------------------------------------------


async def test_persona_declined_and_failed_drop_the_level(env: AdminEnv) -> None:
    await customer(env)
    ok(await to_persona(env, persona("inquiry.completed", evt="evt_done", at=T_0950)))
    out = ok(await to_persona(env, persona("inquiry.declined", evt="evt_no", at=T_1100)))
    assert out["applied"] is True
    assert out["customer"]["kyc_level"] == "none"
    assert out["customer"]["kyc_expires_at"] is None
    assert out["customer"]["kyc_verified_at"] == "2026-03-01T11:00:00Z"
    # A failed re-verification withdraws even a level a compliance user set.
    await customer(env, "w2", kyc_level="government_cleared")
    out = ok(await to_persona(env, persona("inquiry.failed", evt="evt_fail", reference="w2")))
    assert out["applied"] is True and out["customer"]["kyc_level"] == "none"
    changes = (await history(env, "w2"))[-1]["changes"]
    assert changes["kyc_level"] == {"before": "government_cleared", "after": "none"}


async def test_an_older_pass_delivered_late_does_not_undo_a_decline(env: AdminEnv) -> None:
    await customer(env)
    ok(await to_persona(env, persona("inquiry.declined", evt="evt_no", at=T_1100)))
    out = ok(await to_persona(env, persona("inquiry.approved", evt="evt_yes", at=T_0950)))
    assert out["applied"] is False and "older than the stored verification" in out["reason"]
    assert (await stored(env)).kyc_level == "none"
    assert (await history(env))[-1]["action"] == "customer.kyc_webhook_stale"
    # Recorded: the redelivery is a duplicate, not a second evaluation.
    again = ok(await to_persona(env, persona("inquiry.approved", evt="evt_yes", at=T_0950)))
    assert again == {"event_id": "evt_yes", "duplicate": True}
    # And the same the other way round: an older decline does not drop a newer pass.
    ok(await to_stripe(env, stripe(created=datetime(2026, 3, 1, 11, 30, tzinfo=UTC))))
    out = ok(await to_persona(env, persona("inquiry.failed", evt="evt_old_fail", at=T_1100)))
    assert out["applied"] is False and (await stored(env)).kyc_level == "id_verified"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (persona("inquiry.created", evt="evt_c"), "carries no KYC outcome"),
        (persona("inquiry.expired", evt="evt_e"), "expired"),
        (persona("inquiry.marked-for-review", evt="evt_r", status="needs_review"), "review"),
        (persona_verification("verification.passed", evt="evt_vp"), "one check"),
        (persona_verification("verification.failed", evt="evt_vf"), "one check"),
        (stripe("created", evt="evt_sc"), "no verification outcome"),
        (stripe("processing", evt="evt_sp"), "no verification outcome"),
        (
            stripe(
                "requires_input",
                evt="evt_sr",
                last_error={"code": "document_expired", "reason": "The document is expired."},
            ),
            "document_expired",
        ),
        (stripe("canceled", evt="evt_sx"), "canceled"),
        (stripe("redacted", evt="evt_sd"), "redacted"),
    ],
)
async def test_events_without_an_outcome_keep_a_valid_verification(
    env: AdminEnv, body: bytes, reason: str
) -> None:
    await customer(env)
    ok(await to_stripe(env, stripe(evt="evt_first", created=datetime(2026, 3, 1, 9, tzinfo=UTC))))
    before = await stored(env)
    send_to = to_persona if b'"type": "event"' in body else to_stripe
    out = ok(await send_to(env, body))
    assert out["applied"] is False and reason in out["reason"], out
    after = await stored(env)
    assert (after.kyc_level, after.kyc_expires_at) == ("id_verified", before.kyc_expires_at)
    assert [i["action"] for i in await history(env)][-1] == "customer.kyc_webhook"
    # Recorded as seen: the vendor's redelivery is a duplicate.
    assert ok(await send_to(env, body))["duplicate"] is True
    assert len(await recorded(env)) == 2


async def test_no_outcome_events_need_no_known_customer(env: AdminEnv) -> None:
    charge = {
        "id": "evt_ch",
        "object": "event",
        "created": now_ts(env),
        "type": "charge.succeeded",
        "data": {"object": {"id": "ch_1", "object": "charge"}},
    }
    for body, send_to in (
        (persona("inquiry.created", reference="nobody"), to_persona),
        (persona("inquiry.started", evt="evt_s", reference=None), to_persona),
        (stripe("processing", reference="x" * 300), to_stripe),
        (json.dumps(charge).encode(), to_stripe),
    ):
        assert ok(await send_to(env, body))["applied"] is False
    assert len(await recorded(env)) == 4


# --- refusals ------------------------------------------------------------------


async def test_unknown_or_missing_customer_changes_and_records_nothing(env: AdminEnv) -> None:
    r = await to_persona(env, persona(reference="nobody"))
    assert r.status_code == 404 and "nobody" in r.json()["detail"]
    r = await to_stripe(env, stripe(reference="nobody"))
    assert r.status_code == 404
    r = await to_persona(env, persona(reference=None))
    assert r.status_code == 422 and "reference-id" in r.json()["detail"]
    r = await to_stripe(env, stripe(reference=None, metadata={"plan": "pro"}))
    assert r.status_code == 422 and "client_reference_id" in r.json()["detail"]
    assert await recorded(env) == []


async def test_a_body_that_is_not_the_vendors_shape_is_422(env: AdminEnv) -> None:
    await customer(env)
    persona_body = json.loads(persona())
    del persona_body["data"]["attributes"]["created-at"]
    session_missing = json.loads(stripe())
    session_missing["data"]["object"] = {"id": "vs_1", "object": "charge", "status": "verified"}
    own = json.dumps({"id": "evt_own", "customer_id": "w1", "kyc_level": "id_verified"}).encode()
    use(env, kyc_persona_secret=PERSONA_SECRET, kyc_stripe_secret=STRIPE_SECRET)
    cases = [
        (stripe(), to_persona, PERSONA_SECRET, "Persona", "data.type"),
        (persona(), to_stripe, STRIPE_SECRET, "Stripe Identity", "object"),
        (json.dumps(persona_body).encode(), to_persona, PERSONA_SECRET, "Persona", "created-at"),
        (json.dumps(session_missing).encode(), to_stripe, STRIPE_SECRET, "Stripe", "data.object"),
        (b"[1, 2]", to_stripe, STRIPE_SECRET, "Stripe", "body"),
        # The gateway's own shape, signed with the vendor's own secret.
        (own, to_persona, PERSONA_SECRET, "Persona", "x-gateway-kyc-signature"),
    ]
    for body, send_to, secret, label, where in cases:
        r = await send_to(env, body, secret)
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert f"not a {label}" in detail and where in detail, detail
    assert await recorded(env) == [] and (await stored(env)).kyc_level == "none"


async def test_a_verdict_dated_in_the_future_is_422(env: AdminEnv) -> None:
    await customer(env)
    r = await to_persona(env, persona(at="2026-03-02T12:00:00Z"))
    assert r.status_code == 422 and "future" in r.json()["detail"]
    # Within the replay window it is clock skew, not the future.
    assert ok(await to_persona(env, persona(at="2026-03-01T12:04:00Z")))["applied"] is True


async def test_duplicate_and_conflicting_event_ids(env: AdminEnv) -> None:
    await customer(env)
    first = ok(await to_persona(env, persona()))
    assert first["applied"] is True
    # Persona retries byte for byte (another signature time): a duplicate.
    env.clock.now += timedelta(seconds=90)
    assert ok(await to_persona(env, persona())) == {
        "event_id": "evt_XGuYWp7WuDzNxie5z16s7sGJ",
        "duplicate": True,
    }
    # Same id, other content: 409, nothing changes.
    r = await to_persona(env, persona("inquiry.declined"))
    assert r.status_code == 409 and (await stored(env)).kyc_level == "id_verified"
    # Another vendor's event with the same id is another event.
    later = datetime(2026, 3, 1, 11, 59, 30, tzinfo=UTC)
    out = ok(await to_stripe(env, stripe(evt="evt_XGuYWp7WuDzNxie5z16s7sGJ", created=later)))
    assert out["duplicate"] is False
    assert await recorded(env) == [
        "persona:evt_XGuYWp7WuDzNxie5z16s7sGJ",
        "stripe:evt_XGuYWp7WuDzNxie5z16s7sGJ",
    ]
    assert [i["action"] for i in await history(env)].count("customer.kyc_webhook") == 2


# --- signatures and secrets ----------------------------------------------------


async def test_vendor_signatures_are_checked(env: AdminEnv) -> None:
    await customer(env)
    body, ts = persona(), now_ts(env)
    for headers in (
        persona_header(body, ts, "wrong-secret"),
        persona_header(body, ts - 301),  # replay window
        persona_header(persona(reference="w2"), ts),  # signature of another body
        stripe_header(body, ts + 301),
        {"Persona-Signature": "t=abc,v1="},
    ):
        r = await send(env, body, headers)
        assert r.status_code == 401 and "signature" in r.json()["detail"], r.text
    assert await recorded(env) == []
    # Rotation: two space-separated pairs, the second signed with the previous secret.
    good = persona_header(body, ts, WEBHOOK_SECRET_OLD)["Persona-Signature"]
    bad = persona_header(body, ts, "retired")["Persona-Signature"]
    assert ok(await send(env, body, {"Persona-Signature": f"{bad} {good}"}))["applied"] is True
    # Stripe while a rolled secret is valid: several v1 in one pair.
    sbody = stripe()
    value = f"t={ts},v1={sign('rolled', ts, sbody)},v1={sign(WEBHOOK_SECRET, ts, sbody)}"
    assert ok(await send(env, sbody, {"Stripe-Signature": value}))["duplicate"] is False


async def test_per_vendor_secrets(env: AdminEnv) -> None:
    await customer(env)
    use(env, kyc_persona_secret=PERSONA_SECRET, kyc_persona_secret_previous=PERSONA_SECRET_OLD)
    body = persona()
    # Persona's header now answers to Persona's secrets only.
    assert (await to_persona(env, body, WEBHOOK_SECRET)).status_code == 401
    assert ok(await to_persona(env, body, PERSONA_SECRET_OLD))["applied"] is True
    assert ok(await to_persona(env, body, PERSONA_SECRET))["duplicate"] is True
    # Stripe has none of its own: the shared secret, as before.
    assert ok(await to_stripe(env, stripe(evt="evt_s1"), WEBHOOK_SECRET))["duplicate"] is False
    # Persona's secret does not sign the gateway's own events.
    own = json.dumps({"id": "evt_own", "customer_id": "w1", "kyc_level": "government_cleared"})
    ts = now_ts(env)
    value = f"t={ts},v1={sign(PERSONA_SECRET, ts, own.encode())}"
    r = await send(env, own.encode(), {"x-gateway-kyc-signature": value})
    assert r.status_code == 401 and (await stored(env)).kyc_level == "id_verified"
    # Only vendor secrets configured: the shared-secret routes are unconfigured.
    use(env, kyc_webhook_secret=None, kyc_webhook_secret_previous=None)
    r = await to_stripe(env, stripe(evt="evt_s2"), WEBHOOK_SECRET)
    assert r.status_code == 503 and "GATEWAY_KYC_STRIPE_SECRET" in r.json()["detail"]
    r = await send(env, own.encode(), {"x-gateway-kyc-signature": "t=1,v1=00"})
    assert r.status_code == 503 and "GATEWAY_KYC_WEBHOOK_SECRET" in r.json()["detail"]
    use(env, kyc_stripe_secret=STRIPE_SECRET)
    assert ok(await to_stripe(env, stripe(evt="evt_s2"), STRIPE_SECRET))["duplicate"] is False


async def test_own_events_under_a_vendor_header_still_work_on_the_shared_secret(
    env: AdminEnv,
) -> None:
    """What the header accepted before native events: a relay keeps working."""
    await customer(env)
    own = json.dumps(
        {
            "id": "evt_relay",
            "customer_id": "w1",
            "kyc_level": "kyb_verified",
            "kyc_verified_at": "2026-03-01T11:00:00Z",
        }
    ).encode()
    out = ok(await to_stripe(env, own))
    assert out["applied"] is True and out["customer"]["kyc_level"] == "kyb_verified"
    assert "vendor" not in out and await recorded(env) == ["evt_relay"]
    assert [i["actor"] for i in await history(env)][-1] == "kyc-webhook"


async def test_an_unsigned_vendor_body_is_401(env: AdminEnv) -> None:
    r = await env.client.post(URL, content=persona())
    assert r.status_code == 401
    async with env.services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(KycWebhookEvent)) == 0


async def test_an_applied_verdict_drops_the_cached_principal(env: AdminEnv) -> None:
    await customer(env)
    r = await env.client.post("/admin/v1/customers/w1/keys", json={}, headers=env.auth("admin"))
    key = r.json()["key"]
    assert (await env.identifier.identify(key, None)).kyc_level == "none"  # now cached
    ok(await to_stripe(env, stripe()))
    assert (await env.identifier.identify(key, None)).kyc_level == "id_verified"
    ok(await to_persona(env, persona("inquiry.declined", evt="evt_no", at="2026-03-01T11:59:30Z")))
    assert (await env.identifier.identify(key, None)).kyc_level == "none"
