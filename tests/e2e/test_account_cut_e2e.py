"""Streams in flight end when their account changes and is refused: an officer
suspends the customer, or revokes the key, mid-stream (gateway.proxy.account_cut).

Each test opens a slow stream through an official SDK (40 events, 250 ms
apart: 10 s), makes the change through the admin API once a few events have
arrived, and expects the SDK to raise the cut's error event well before the
end, and the outcome record to say why.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anthropic
import openai
import pytest

from gateway.identity.oidc import LEEWAY_SECONDS
from tests.e2e.conftest import US_ENTERPRISE, US_IP, GatewayFactory
from tests.support.oidc_issuer import LocalIssuer
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e

EVENTS = 40
PACED = {"x-forwarded-for": US_IP, "x-standin-chunks": str(EVENTS),
         "x-standin-interval-ms": "250"}  # fmt: skip
MESSAGES: Any = [{"role": "user", "content": "hi"}]


def _until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


def _outcome_error(admin: Admin, decision_id: str) -> str | None:
    url = f"/admin/v1/decisions/{decision_id}"
    _until(lambda: bool(admin.http.get(url).json()["outcomes"]))
    error: str | None = admin.http.get(url).json()["outcomes"][0]["error"]
    return error


def _read_until_cut(
    events: Iterable[object], change: Callable[[], None], errors: type[Exception]
) -> tuple[int, Exception | None]:
    """Read a stream, making ``change`` after the third event: (events read, error raised)."""
    seen = 0
    try:
        for _ in events:
            seen += 1
            if seen == 3:
                change()
    except errors as exc:
        return seen, exc
    return seen, None


def _openai_stream(gateway: Proc, key: str) -> tuple[str, Iterable[object]]:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, default_headers=PACED,
                           max_retries=0)  # fmt: skip
    raw = client.chat.completions.with_raw_response.create(
        model="haiku-lite", messages=MESSAGES, max_tokens=200, stream=True
    )
    return raw.headers["x-gateway-decision-id"], raw.parse()


def _anthropic_stream(gateway: Proc, key: str) -> tuple[str, Iterable[object]]:
    client = anthropic.Anthropic(base_url=gateway.url, api_key=key, default_headers=PACED,
                                 max_retries=0)  # fmt: skip
    raw = client.messages.with_raw_response.create(
        model="haiku-lite", messages=MESSAGES, max_tokens=200, stream=True
    )
    return raw.headers["x-gateway-decision-id"], raw.parse()


def _suspend(admin: Admin, customer_id: str) -> Callable[[], None]:
    def suspend() -> None:
        answer = admin.http.patch(f"/admin/v1/customers/{customer_id}",
                                  json={"status": "suspended"})  # fmt: skip
        assert answer.status_code == 200, answer.text

    return suspend


def _revoke(admin: Admin, key: str) -> Callable[[], None]:
    def revoke() -> None:
        answer = admin.http.delete(f"/admin/v1/keys/{key}")
        assert answer.status_code == 200, answer.text

    return revoke


def test_suspending_a_customer_ends_its_openai_stream(gateway: Proc, admin: Admin) -> None:
    customer = admin.customer(id="acme-suspended", **US_ENTERPRISE)
    key = admin.key(str(customer["id"]))
    decision_id, events = _openai_stream(gateway, key)
    seen, error = _read_until_cut(events, _suspend(admin, "acme-suspended"), openai.APIError)
    assert isinstance(error, openai.APIError), f"the stream ran to its end ({seen} events)"
    assert error.code == "customer-suspended", error.body
    assert error.type == "permission_denied", error.body
    assert seen < EVENTS / 2, seen
    assert _outcome_error(admin, decision_id) == "account_cut:customer-suspended"


def test_revoking_a_key_ends_its_anthropic_stream(gateway: Proc, admin: Admin) -> None:
    customer = admin.customer(id="acme-revoked", **US_ENTERPRISE)
    key = admin.key(str(customer["id"]))
    other = admin.key(str(customer["id"]))
    decision_id, events = _anthropic_stream(gateway, key)
    # The customer's other key keeps streaming: only the revoked key's streams end.
    other_id, other_events = _anthropic_stream(gateway, other)
    seen, error = _read_until_cut(events, _revoke(admin, key), anthropic.APIStatusError)
    assert isinstance(error, anthropic.APIStatusError), f"the stream ran to its end ({seen})"
    body: Any = error.body
    assert body["error"]["type"] == "authentication_error", body
    assert body["error"]["code"] == "key-revoked", body
    assert seen < EVENTS / 2, seen
    assert _outcome_error(admin, decision_id) == "account_cut:key-revoked"
    assert sum(1 for _ in other_events) > EVENTS, "the other key's stream was cut"
    assert _outcome_error(admin, other_id) is None


def test_a_suspension_made_on_one_replica_ends_the_stream_on_another(
    gateway_factory: GatewayFactory,
) -> None:
    # Two gateways on one SQLite database, no bus between them: the change
    # feed (1 s) is what tells the second.
    first = gateway_factory()
    second = gateway_factory()
    admin = Admin(first.url)
    customer = admin.customer(id="acme-elsewhere", **US_ENTERPRISE)
    key = admin.key(str(customer["id"]))
    decision_id, events = _openai_stream(second, key)
    seen, error = _read_until_cut(events, _suspend(admin, "acme-elsewhere"), openai.APIError)
    assert isinstance(error, openai.APIError), f"the stream ran to its end ({seen} events)"
    assert error.code == "customer-suspended", error.body
    assert seen < EVENTS - 10, seen
    assert _outcome_error(Admin(second.url), decision_id) == "account_cut:customer-suspended"


def test_a_kyc_downgrade_ends_a_stream_of_a_model_the_tier_no_longer_gets(
    gateway: Proc, admin: Admin
) -> None:
    admin.customer(id="gov-person", name="Sam Federal", kind="individual", citizenships=["US"],
                   residence="US", kyc_level="government_cleared", tier="government")  # fmt: skip
    key = admin.key("gov-person")
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, default_headers=PACED,
                           max_retries=0)  # fmt: skip
    raw = client.chat.completions.with_raw_response.create(
        model="fable-5", messages=MESSAGES, max_tokens=200, stream=True
    )

    def downgrade() -> None:
        answer = admin.http.patch("/admin/v1/customers/gov-person",
                                  json={"kyc_level": "email_verified"})  # fmt: skip
        assert answer.status_code == 200, answer.text

    seen, error = _read_until_cut(raw.parse(), downgrade, openai.APIError)
    assert isinstance(error, openai.APIError), f"the stream ran to its end ({seen} events)"
    assert error.code == "default-deny", error.body
    assert "tier public" in error.message, error.message  # the demotion is named
    assert seen < EVENTS / 2, seen
    decision_id = raw.headers["x-gateway-decision-id"]
    assert _outcome_error(admin, decision_id) == "account_cut:default-deny"
    # The same downgrade leaves a stream of a model the public tier has running.
    admin.http.patch("/admin/v1/customers/gov-person", json={"kyc_level": "government_cleared"})
    decision_id, events = _openai_stream(gateway, key)
    seen, error = _read_until_cut(events, downgrade, openai.APIError)
    assert error is None and seen > EVENTS, seen
    assert _outcome_error(admin, decision_id) is None


def test_a_key_that_expires_mid_stream_ends_its_stream(gateway: Proc, admin: Admin) -> None:
    # Nothing is written when a key's own expires_at passes: no change reaches
    # the live streams, yet a new request on that key is refused from then on,
    # so the stream ends too, as for a revocation.
    customer = admin.customer(id="acme-expiring", **US_ENTERPRISE)
    expires = datetime.now(UTC) + timedelta(seconds=3)
    answer = admin.http.post(f"/admin/v1/customers/{customer['id']}/keys",
                             json={"expires_at": expires.isoformat()})  # fmt: skip
    assert answer.status_code == 201, answer.text
    decision_id, events = _openai_stream(gateway, answer.json()["key"])
    seen, error = _read_until_cut(events, lambda: None, openai.APIError)
    assert isinstance(error, openai.APIError), f"the stream ran to its end ({seen} events)"
    assert error.code == "key-expired", error.body
    assert error.type == "authentication_error", error.body
    assert seen < EVENTS - 10, seen  # 3 s of a 10 s stream, and the cut at its next chunk
    assert _outcome_error(admin, decision_id) == "account_cut:key-expired"


@pytest.fixture()
def issuer() -> Iterator[LocalIssuer]:
    local = LocalIssuer(audience="gateway-e2e")
    yield local
    local.close()


def test_an_oidc_token_that_expires_mid_stream_ends_its_stream_alone(
    gateway_factory: GatewayFactory, issuer: LocalIssuer
) -> None:
    # As for a key's expires_at: from the instant a new request on the token is
    # refused, its stream ends too. The principal is cached per customer, not
    # per token, so two streams of one customer on two tokens must part: only
    # the one whose token expires ends. That token's exp lies 27 s in the
    # past: the verifier's 30 s leeway still admits it, and refuses it 3 s on.
    gateway = gateway_factory(
        env={"GATEWAY_OIDC_ISSUER": issuer.url, "GATEWAY_OIDC_AUDIENCE": "gateway-e2e"}
    )
    admin = Admin(gateway.url)
    admin.customer(id="alice-oidc", **US_ENTERPRISE)
    expiring = issuer.token("alice-oidc", exp=int(time.time()) + 3 - LEEWAY_SECONDS)
    decision_id, events = _openai_stream(gateway, expiring)
    other_id, other_events = _openai_stream(gateway, issuer.token("alice-oidc"))
    seen, error = _read_until_cut(events, lambda: None, openai.APIError)
    assert isinstance(error, openai.APIError), f"the stream ran to its end ({seen} events)"
    assert error.code == "token-expired", error.body
    assert error.type == "authentication_error", error.body
    assert seen < EVENTS - 10, seen  # 3 s of a 10 s stream, and the cut at its next chunk
    assert _outcome_error(admin, decision_id) == "account_cut:token-expired"
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=expiring,
                           default_headers={"x-forwarded-for": US_IP}, max_retries=0)  # fmt: skip
    with pytest.raises(openai.AuthenticationError):  # as a new request on it is refused
        client.chat.completions.create(model="haiku-lite", messages=MESSAGES, max_tokens=5)
    assert sum(1 for _ in other_events) > EVENTS, "the fresh token's stream was cut"
    assert _outcome_error(admin, other_id) is None
