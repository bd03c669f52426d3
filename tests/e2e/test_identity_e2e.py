"""Who is calling, through the real server (issue 3 acceptance)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import anthropic
import httpx
import openai
import pytest

from tests.e2e.conftest import US_ENTERPRISE, US_IP, GatewayFactory
from tests.support.oidc_issuer import LocalIssuer
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e
XFF = {"x-forwarded-for": US_IP}
CHAT = {"model": "haiku-lite", "messages": [{"role": "user", "content": "hi"}]}


def chat(gateway: Proc, headers: dict[str, str], model: str = "haiku-lite") -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers={**XFF, **headers},
        json={**CHAT, "model": model},
        timeout=10,
    )


def test_unknown_revoked_and_missing_keys_get_401_in_both_shapes(
    gateway: Proc, admin: Admin
) -> None:
    customer = admin.customer(**US_ENTERPRISE)
    created = admin.http.post(f"/admin/v1/customers/{customer['id']}/keys", json={}).json()
    key = created["key"]
    assert chat(gateway, {"authorization": f"Bearer {key}"}).status_code == 200
    assert admin.http.delete(f"/admin/v1/keys/{created['id']}").status_code in (200, 204)

    openai_client = openai.OpenAI(
        base_url=f"{gateway.url}/v1", api_key=key, default_headers=XFF, max_retries=0
    )
    with pytest.raises(openai.AuthenticationError) as caught:
        openai_client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    assert caught.value.body["type"] == "authentication_error"  # type: ignore[index]
    anthropic_client = anthropic.Anthropic(
        base_url=gateway.url, api_key=key, default_headers=XFF, max_retries=0
    )
    with pytest.raises(anthropic.AuthenticationError) as caught_a:
        anthropic_client.messages.create(
            model="haiku-lite", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught_a.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]

    forged = key[: key.rfind("_") + 1] + "A" * 52
    for headers in ({"authorization": f"Bearer {forged}"}, {"x-api-key": "gk_nope_nope"}, {}):
        response = chat(gateway, headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]["type"] == "authentication_error"
        assert response.headers["x-gateway-decision-id"]


def test_a_401_says_what_is_wrong_with_the_authorization_header(gateway: Proc) -> None:
    cases = [
        ({"authorization": "Basic dXNlcjpwYXNz"}, "unsupported authorization scheme 'Basic'"),
        # "Bearer " with its space: HTTP strips trailing whitespace, the same on the wire.
        ({"authorization": "Bearer"}, "empty bearer token"),
        ({"authorization": "gk_0123456789abcdef_notakey"}, "without a scheme"),
        ({}, "missing credential"),
    ]
    for headers, said in cases:
        response = chat(gateway, headers)
        assert response.status_code == 401, headers
        message = response.json()["error"]["message"]
        assert said in message, (headers, message)
        assert "notakey" not in message  # a credential is never echoed


@pytest.fixture()
def issuer() -> Iterator[LocalIssuer]:
    local = LocalIssuer(audience="gateway-e2e")
    yield local
    local.close()


def test_oidc_tokens_from_a_local_issuer(
    gateway_factory: GatewayFactory, issuer: LocalIssuer
) -> None:
    gateway = gateway_factory(
        env={
            "GATEWAY_OIDC_ISSUER": issuer.url,
            "GATEWAY_OIDC_AUDIENCE": "gateway-e2e",
            "GATEWAY_OIDC_JWKS_MIN_REFRESH_SECONDS": "1",
        }
    )
    admin = Admin(gateway.url)
    admin.customer(id="alice", **US_ENTERPRISE)
    bearer = {"authorization": f"Bearer {issuer.token('alice')}"}
    assert chat(gateway, bearer).status_code == 200

    expired = issuer.token("alice", exp=int(time.time()) - 60)
    assert chat(gateway, {"authorization": f"Bearer {expired}"}).status_code == 401
    other_audience = issuer.token("alice", aud="someone-else")
    assert chat(gateway, {"authorization": f"Bearer {other_audience}"}).status_code == 401
    unknown_customer = issuer.token("mallory")
    assert chat(gateway, {"authorization": f"Bearer {unknown_customer}"}).status_code == 401

    time.sleep(1.1)  # past the refetch cool-down that guards against junk kids
    rotated = issuer.rotate("k2")
    fresh = issuer.token("alice", key=rotated)
    assert chat(gateway, {"authorization": f"Bearer {fresh}"}).status_code == 200


def test_kyc_expiry_demotes_the_tier_at_that_moment(gateway: Proc, admin: Admin) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=3)
    key = admin.customer_with_key(
        **{
            **US_ENTERPRISE,
            "kind": "individual",
            "citizenships": ["US"],
            "ownership": [],
            "name": "Sam Soon-Expiring",
            "kyc_expires_at": expires.isoformat().replace("+00:00", "Z"),
        }
    )
    before = chat(gateway, {"authorization": f"Bearer {key}"}, model="fable-5")
    assert before.status_code == 200, before.text
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.3)
    after = chat(gateway, {"authorization": f"Bearer {key}"}, model="fable-5")
    assert after.status_code == 403, after.text
    # Still served on the public tier's models.
    assert chat(gateway, {"authorization": f"Bearer {key}"}).status_code == 200


def test_a_key_removed_from_the_jwks_stops_verifying_within_the_ttl(
    gateway_factory: GatewayFactory, issuer: LocalIssuer
) -> None:
    # The key set was cached for a hard-coded hour: a key the issuer withdrew
    # (compromised) went on verifying tokens for up to that long.
    gateway = gateway_factory(
        env={
            "GATEWAY_OIDC_ISSUER": issuer.url,
            "GATEWAY_OIDC_AUDIENCE": "gateway-e2e",
            "GATEWAY_OIDC_JWKS_TTL_SECONDS": "1",
            "GATEWAY_OIDC_JWKS_MIN_REFRESH_SECONDS": "1",
        }
    )
    Admin(gateway.url).customer(id="alice", **US_ENTERPRISE)
    withdrawn, kept = issuer.keys[0], issuer.new_key("k2")
    issuer.keys = [withdrawn, kept]
    old = {"authorization": f"Bearer {issuer.token('alice', key=withdrawn)}"}
    new = {"authorization": f"Bearer {issuer.token('alice', key=kept)}"}
    assert chat(gateway, old).status_code == 200
    issuer.keys = [kept]
    time.sleep(1.2)  # past the TTL: the next token waits for the refresh
    response = chat(gateway, old)
    assert response.status_code == 401, "the withdrawn key still verifies"
    assert "unknown key" in response.json()["error"]["message"]
    assert chat(gateway, new).status_code == 200


def test_a_malformed_jwks_entry_does_not_stop_jwt_traffic(
    gateway_factory: GatewayFactory, issuer: LocalIssuer
) -> None:
    # One RSA entry without its modulus made the whole key set unusable: every
    # JWT was a 503 from the start.
    broken = issuer.new_key("broken").as_dict(private=False)
    del broken["n"]
    issuer.extra = [broken]
    gateway = gateway_factory(
        env={"GATEWAY_OIDC_ISSUER": issuer.url, "GATEWAY_OIDC_AUDIENCE": "gateway-e2e"}
    )
    Admin(gateway.url).customer(id="alice", **US_ENTERPRISE)
    response = chat(gateway, {"authorization": f"Bearer {issuer.token('alice')}"})
    assert response.status_code == 200, response.text


def test_an_oversized_jwt_is_a_401_saying_it_is_too_large(
    gateway_factory: GatewayFactory, issuer: LocalIssuer
) -> None:
    gateway = gateway_factory(
        env={"GATEWAY_OIDC_ISSUER": issuer.url, "GATEWAY_OIDC_AUDIENCE": "gateway-e2e"}
    )
    # Over the token bound (16 KB), under the bound on all headers (32 KB).
    huge = issuer.token("alice", padding="x" * 20_000)
    response = chat(gateway, {"authorization": f"Bearer {huge}"})
    assert response.status_code == 401
    message = response.json()["error"]["message"]
    assert "too large" in message and "malformed" not in message, message
    # Larger still, the request's headers are over their bound: a 431, also
    # refused before the token is read (gateway/proxy/header_limits.py).
    huger = issuer.token("alice", padding="x" * 200_000)
    assert chat(gateway, {"authorization": f"Bearer {huger}"}).status_code == 431
    assert issuer.jwks_hits == 0  # refused before anything was asked of the issuer
