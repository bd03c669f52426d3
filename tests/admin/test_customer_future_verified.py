"""A customer's ``kyc_verified_at`` cannot be set in the future through the
admin API (POST, PATCH) or ``gateway customers import``.

An event older than the stored ``kyc_verified_at`` is not applied (it would
roll the KYC state back), so a verification dated in the future outranked
every later KYC webhook until its date: the vendor's later downgrade was
answered ``applied: false`` and the customer kept its level. The webhook
refuses such a date (``test_webhook_future_dated.py``); the admin API and the
CLI now refuse it the same way, with the same tolerance
(``GATEWAY_KYC_WEBHOOK_TOLERANCE_SECONDS``: clocks differ a little)."""

from __future__ import annotations

from datetime import timedelta

from tests.admin.conftest import AdminEnv
from tests.admin.test_webhook import _send

URL = "/admin/v1/customers"


def _at(env: AdminEnv, seconds: int) -> str:
    return (env.clock.now + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_patch_with_a_future_verification_is_422_naming_the_field(env: AdminEnv) -> None:
    created = await env.client.post(URL, json={"id": "w1", "name": "Wendy Webhook"},
                                    headers=env.auth("admin"))  # fmt: skip
    assert created.status_code == 201, created.text
    r = await env.client.patch(f"{URL}/w1", headers=env.auth("admin"), json={
        "kyc_level": "government_cleared", "kyc_verified_at": _at(env, 365 * 86400)})
    assert r.status_code == 422, r.text
    [problem] = r.json()["detail"]
    assert problem["loc"] == ["body", "kyc_verified_at"], problem
    assert "future" in problem["msg"], problem
    stored = (await env.client.get(f"{URL}/w1", headers=env.auth("admin"))).json()
    assert stored["kyc_level"] == "none" and stored["kyc_verified_at"] is None, stored

    # Within the tolerance of now is not the future; and a later webhook still applies.
    r = await env.client.patch(f"{URL}/w1", headers=env.auth("admin"), json={
        "kyc_level": "government_cleared", "kyc_verified_at": _at(env, 60)})
    assert r.status_code == 200, r.text
    withdrawn = await _send(env, id="evt-later", kyc_level="none", kyc_verified_at=_at(env, 120))
    assert withdrawn["applied"] is True, withdrawn


async def test_create_with_a_future_verification_is_422(env: AdminEnv) -> None:
    r = await env.client.post(URL, headers=env.auth("admin"), json={
        "id": "w2", "name": "Future Fay", "kyc_verified_at": _at(env, 86400)})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "kyc_verified_at"], r.text
    missing = await env.client.get(f"{URL}/w2", headers=env.auth("admin"))
    assert missing.status_code == 404
