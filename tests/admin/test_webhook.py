from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select

from gateway.admin.kyc_webhook import sign
from gateway.kyc.tables import Customer, KycWebhookEvent
from tests.admin.conftest import WEBHOOK_SECRET, WEBHOOK_SECRET_OLD, AdminEnv

URL = "/admin/v1/kyc/webhook"


def event(**over: Any) -> bytes:
    body = {
        "id": "evt_1",
        "customer_id": "w1",
        "kyc_level": "id_verified",
        "kyc_verified_at": "2026-03-01T11:59:00Z",
        "kyc_expires_at": "2027-03-01T00:00:00Z",
    }
    body.update(over)
    return json.dumps(body).encode()


def header(body: bytes, ts: int, secret: str = WEBHOOK_SECRET) -> str:
    return f"t={ts},v1={sign(secret, ts, body)}"


async def post(env: AdminEnv, body: bytes, value: str, name: str = "x-gateway-kyc-signature"):  # type: ignore[no-untyped-def]
    return await env.client.post(
        URL, content=body, headers={name: value, "content-type": "application/json"}
    )


async def level(env: AdminEnv, cid: str = "w1") -> str:
    async with env.services.sessions() as session:
        c = await session.get(Customer, cid)
        assert c is not None
        return c.kyc_level


async def events(env: AdminEnv) -> int:
    async with env.services.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(KycWebhookEvent)) or 0)


async def test_webhook_flow(env: AdminEnv) -> None:
    await env.client.post(
        "/admin/v1/customers", json={"id": "w1", "name": "Wanda"}, headers=env.auth("admin")
    )
    now = int(env.clock.now.timestamp())
    body = event()
    # Failures first: nothing may change.
    failures = [
        (header(body, now, "wrong-secret"), 401),
        (header(body, now - 301), 401),  # stale
        (header(body, now + 301), 401),  # from the future
        (header(event(kyc_level="government_cleared"), now), 401),  # signature of other body
        ("garbage", 401),
    ]
    for value, status in failures:
        r = await post(env, body, value)
        assert r.status_code == status and r.json()["detail"], r.text
    r = await env.client.post(URL, content=body)
    assert r.status_code == 401
    unknown = event(id="evt_x", customer_id="nobody")
    r = await post(env, unknown, header(unknown, now))
    assert r.status_code == 404
    bad = event(kyc_level="Not A Level!")
    r = await post(env, bad, header(bad, now))
    assert r.status_code == 422
    assert await level(env) == "none" and await events(env) == 0

    # Rotation: previous secret, Persona header name, two space-separated pairs.
    value = f"{header(body, now, 'stale-one')} {header(body, now - 10, WEBHOOK_SECRET_OLD)}"
    r = await post(env, body, value, name="Persona-Signature")
    assert r.status_code == 200, r.text
    assert r.json()["duplicate"] is False
    assert r.json()["customer"]["kyc_level"] == "id_verified"
    assert r.json()["customer"]["kyc_expires_at"] == "2027-03-01T00:00:00Z"
    assert await level(env) == "id_verified" and await events(env) == 1

    # Replay of the same event: idempotent, no second change.
    r = await post(env, body, header(body, now), name="Stripe-Signature")
    assert r.status_code == 200 and r.json() == {"event_id": "evt_1", "duplicate": True}
    hist = await env.client.get("/admin/v1/customers/w1/history", headers=env.auth("admin"))
    assert [i["action"] for i in hist.json()["items"]] == [
        "customer.create",
        "customer.kyc_webhook",
    ]
    # Same id, different content: conflict.
    other = event(kyc_level="government_cleared")
    r = await post(env, other, header(other, now))
    assert r.status_code == 409 and await level(env) == "id_verified"


async def test_webhook_unconfigured_is_503(env: AdminEnv) -> None:
    env.services.settings = env.services.settings.model_copy(
        update={"kyc_webhook_secret": None, "kyc_webhook_secret_previous": None}
    )
    r = await post(env, event(), "t=1,v1=00")
    assert r.status_code == 503


async def _customer_w1(env: AdminEnv) -> None:
    r = await env.client.post(
        "/admin/v1/customers", json={"id": "w1", "name": "Wanda"}, headers=env.auth("admin")
    )
    assert r.status_code == 201, r.text


async def _send(env: AdminEnv, **over: Any) -> dict[str, Any]:
    """Sign and post an event given exactly by ``over`` (fields left out stay out)."""
    body = json.dumps({"customer_id": "w1", **over}).encode()
    r = await post(env, body, header(body, int(env.clock.now.timestamp())))
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


async def _stored(env: AdminEnv) -> Customer:
    async with env.services.sessions() as session:
        c = await session.get(Customer, "w1")
        assert c is not None
        return c


async def test_fields_the_vendor_leaves_out_stay_as_they_are(env: AdminEnv) -> None:
    await _customer_w1(env)
    await _send(env, id="e1", kyc_level="id_verified", kyc_verified_at="2026-03-01T10:00:00Z",
                kyc_expires_at="2027-03-01T00:00:00Z")  # fmt: skip
    # A level-only event (no times): the expiry and verification time are kept.
    out = await _send(env, id="e2", kyc_level="kyb_verified")
    assert out["customer"]["kyc_level"] == "kyb_verified"
    assert out["customer"]["kyc_expires_at"] == "2027-03-01T00:00:00Z"
    assert out["customer"]["kyc_verified_at"] == "2026-03-01T10:00:00Z"
    # A newer verification without an expiry keeps the expiry too.
    out = await _send(env, id="e3", kyc_level="kyb_verified",
                      kyc_verified_at="2026-03-01T11:00:00Z")  # fmt: skip
    assert out["customer"]["kyc_expires_at"] == "2027-03-01T00:00:00Z"
    assert out["customer"]["kyc_verified_at"] == "2026-03-01T11:00:00Z"
    # An explicit null is the vendor saying "no expiry": that one clears it.
    out = await _send(env, id="e4", kyc_level="kyb_verified", kyc_expires_at=None)
    assert out["customer"]["kyc_expires_at"] is None
    hist = await env.client.get("/admin/v1/customers/w1/history", headers=env.auth("admin"))
    changes = [i["changes"] for i in hist.json()["items"] if i["action"] == "customer.kyc_webhook"]
    assert "kyc_expires_at" not in changes[1] and "kyc_expires_at" not in changes[2]



async def test_an_older_verification_does_not_roll_back_a_newer_one(env: AdminEnv) -> None:
    await _customer_w1(env)
    newer = await _send(env, id="new", kyc_level="government_cleared",
                        kyc_verified_at="2026-03-01T11:00:00Z",
                        kyc_expires_at="2027-03-01T00:00:00Z")  # fmt: skip
    assert newer["applied"] is True
    # Delivered late: verified an hour before the one already applied.
    stale = await _send(env, id="old", kyc_level="id_verified",
                        kyc_verified_at="2026-03-01T10:00:00+00:00",
                        kyc_expires_at="2026-04-01T00:00:00Z")  # fmt: skip
    assert stale["applied"] is False and stale["duplicate"] is False
    assert "older" in stale["reason"] and stale["event_id"] == "old"
    c = await _stored(env)
    assert c.kyc_level == "government_cleared"
    assert c.kyc_expires_at is not None and c.kyc_expires_at.year == 2027
    # Recorded like every other outcome: the event id (a redelivery is a duplicate),
    # the customer's history and the admin-action log.
    assert await events(env) == 2
    again = json.dumps({"customer_id": "w1", "id": "old", "kyc_level": "id_verified",
                        "kyc_verified_at": "2026-03-01T10:00:00+00:00",
                        "kyc_expires_at": "2026-04-01T00:00:00Z"}).encode()  # fmt: skip
    r = await post(env, again, header(again, int(env.clock.now.timestamp())))
    assert r.json() == {"event_id": "old", "duplicate": True}
    hist = await env.client.get("/admin/v1/customers/w1/history", headers=env.auth("admin"))
    items = hist.json()["items"]
    assert [i["action"] for i in items] == [
        "customer.create", "customer.kyc_webhook", "customer.kyc_webhook_stale"]  # fmt: skip
    assert items[-1]["changes"] == {} and items[-1]["actor"] == "kyc-webhook"
    logged = await env.client.get(
        "/admin/v1/admin-actions", params={"action": "customer.kyc_webhook_stale"},
        headers=env.auth("auditor"),
    )  # fmt: skip
    assert [a["target_id"] for a in logged.json()["items"]] == ["w1"]
    # The same time as the stored one is not older: applied.
    same = await _send(env, id="same", kyc_level="kyb_verified",
                       kyc_verified_at="2026-03-01T11:00:00Z")  # fmt: skip
    assert same["applied"] is True and (await _stored(env)).kyc_level == "kyb_verified"


async def test_out_of_range_times_in_an_event_are_422(env: AdminEnv) -> None:
    await _customer_w1(env)
    for value in ("9999-12-31T23:59:59-01:00", "0001-01-01T00:30:00+01:00"):
        for field in ("kyc_expires_at", "kyc_verified_at"):
            body = event(id=f"evt-{field}-{value[:4]}", customer_id="w1", **{field: value})
            r = await post(env, body, header(body, int(env.clock.now.timestamp())))
            assert r.status_code == 422, r.text
            assert field in r.json()["detail"]
    assert await events(env) == 0 and await level(env) == "none"


async def test_unknown_kyc_level_in_an_event_is_422(env: AdminEnv) -> None:
    await _customer_w1(env)
    body = event(id="evt_typo", kyc_level="goverment_cleared")
    r = await post(env, body, header(body, int(env.clock.now.timestamp())))
    assert r.status_code == 422, r.text
    assert "goverment_cleared" in r.json()["detail"] and "government_cleared" in r.json()["detail"]
    assert await events(env) == 0 and await level(env) == "none"
