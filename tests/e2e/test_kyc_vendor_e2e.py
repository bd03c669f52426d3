"""A vendor's native KYC webhook changes what the real server decides."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import pytest

from gateway.kyc.signatures import sign
from tests.admin.test_webhook_vendors import persona
from tests.e2e.conftest import US_IP, GatewayFactory
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e
SECRET = "wbhsec_e2e_persona"


def chat(gateway: Proc, key: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers={"x-forwarded-for": US_IP, "authorization": f"Bearer {key}"},
        json={"model": "fable-5", "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )


def webhook(gateway: Proc, body: bytes) -> httpx.Response:
    ts = int(time.time())
    return httpx.post(
        f"{gateway.url}/admin/v1/kyc/webhook",
        content=body,
        headers={"Persona-Signature": f"t={ts},v1={sign(SECRET, ts, body)}",
                 "content-type": "application/json"},
        timeout=10,
    )  # fmt: skip


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def test_a_persona_approval_opens_the_tier_and_a_decline_closes_it(
    gateway_factory: GatewayFactory,
) -> None:
    # No change feed and a long cache TTL: only the webhook's own cache
    # invalidation can make the new level visible to the next request.
    gateway = gateway_factory(env={
        "GATEWAY_KYC_PERSONA_SECRET": SECRET,
        "GATEWAY_CHANGE_POLL_SECONDS": "0",
        "GATEWAY_CACHE_TTL_SECONDS": "600",
    })  # fmt: skip
    admin = Admin(gateway.url)
    created = admin.customer(
        name="Ada Researcher", kind="individual", citizenships=["US"], residence="US",
        tier="research", attributes=["academic_affiliation"], kyc_level="none",
    )  # fmt: skip
    cid = str(created["id"])
    key = admin.key(cid)
    before = chat(gateway, key)
    assert before.status_code == 403, before.text  # research needs id_verified: served as public

    ok = persona("inquiry.approved", evt="evt_e2e_ok", reference=cid, at=now())
    approved = webhook(gateway, ok)
    assert approved.status_code == 200 and approved.json()["applied"] is True, approved.text
    after = chat(gateway, key)
    assert after.status_code == 200, after.text

    time.sleep(0.01)  # the decline is the later event
    no = persona("inquiry.declined", evt="evt_e2e_no", reference=cid, at=now())
    declined = webhook(gateway, no)
    assert declined.status_code == 200 and declined.json()["applied"] is True, declined.text
    assert chat(gateway, key).status_code == 403
