"""A KYC event of the gateway's own shape dated in the future is refused.

An event older than the stored ``kyc_verified_at`` is not applied (it would
roll the KYC state back). So one dated in the future (a relay's clock fault, a
mistyped year), once applied, outranked every later event until its date: the
vendor's later downgrade (to ``none``, a verification withdrawn) was answered
200 ``applied: false`` and never retried, and the customer kept its level.
The vendors' native events were already refused (422) for this reason.
"""

from __future__ import annotations

import json
from datetime import timedelta

from gateway.admin.kyc_webhook import sign
from tests.admin.conftest import WEBHOOK_SECRET, AdminEnv
from tests.admin.test_webhook import URL, _customer_w1, _send, _stored, events


async def test_a_future_dated_own_event_is_422_and_a_later_downgrade_applies(
    env: AdminEnv,
) -> None:
    await _customer_w1(env)
    now = env.clock.now
    future = (now + timedelta(days=365 * 30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = json.dumps({"id": "evt-future", "customer_id": "w1", "kyc_level": "government_cleared",
                       "kyc_verified_at": future}).encode()  # fmt: skip
    ts = int(now.timestamp())
    r = await env.client.post(URL, content=body, headers={
        "x-gateway-kyc-signature": f"t={ts},v1={sign(WEBHOOK_SECRET, ts, body)}",
        "content-type": "application/json"})  # fmt: skip
    assert r.status_code == 422, r.text
    assert "kyc_verified_at" in r.json()["detail"] and "future" in r.json()["detail"]
    assert (await _stored(env)).kyc_level == "none" and await events(env) == 0
    # Within the signature's tolerance of now is not the future (clocks differ a little).
    soon = (now + timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    granted = await _send(env, id="evt-now", kyc_level="government_cleared",
                          kyc_verified_at=soon)  # fmt: skip
    assert granted["applied"] is True
    later = (now + timedelta(seconds=120)).strftime("%Y-%m-%dT%H:%M:%SZ")
    withdrawn = await _send(env, id="evt-withdrawn", kyc_level="none", kyc_verified_at=later)
    assert withdrawn["applied"] is True, withdrawn
    assert (await _stored(env)).kyc_level == "none"
