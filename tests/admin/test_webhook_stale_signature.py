"""A captured, genuine but stale KYC webhook signature gets the same answer as
a forged one: telling them apart would confirm to whoever holds a captured
request that its signature is genuine (and so which secret signed it). The
server log keeps the distinction for the operator."""

from __future__ import annotations

import logging

import pytest

from tests.admin.conftest import AdminEnv
from tests.admin.test_webhook import event, header, post


async def test_stale_and_forged_signatures_are_answered_alike(
    env: AdminEnv, caplog: pytest.LogCaptureFixture
) -> None:
    await env.client.post(
        "/admin/v1/customers", json={"id": "w1", "name": "Wanda"}, headers=env.auth("admin")
    )
    now = int(env.clock.now.timestamp())
    body = event()
    with caplog.at_level(logging.WARNING, logger="gateway.admin.kyc_webhook"):
        stale = await post(env, body, header(body, now - 3600))
        forged = await post(env, body, header(body, now, "not-the-secret"))
        future = await post(env, body, header(body, now + 3600))
    answers = [(r.status_code, r.json()) for r in (stale, forged, future)]
    assert answers[0] == answers[1] == answers[2], answers
    assert answers[0][0] == 401
    # The operator still learns which it was.
    assert "timestamp outside tolerance" in caplog.text, caplog.text
    assert "signature mismatch" in caplog.text, caplog.text
